//! Sharing one server fairly between its clients: pure functions, so the
//! policy is unit tested without a model or a socket.
//!
//! A client is an API key, or the client's address where no key is
//! configured. Three things are shared:
//!
//! - **Queue space** ([`admit`]): the embedding queue's token budget is
//!   split evenly between the clients with work in it. A client with nothing
//!   queued is always let in, so one client's backlog never locks another
//!   out; a client already holding its share gets 429.
//! - **The model's time** ([`FairClock`], [`plan_call`]): queued work is
//!   served in start-time fair queueing order, so a client's new request
//!   goes ahead of another client's backlog instead of behind it, and large
//!   requests are cut between texts into calls of a bounded size
//!   ([`call_budget`]), so a small request waits for at most one such call.
//! - **Request rate** ([`Bucket`]): a token bucket per client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Who sent a request: the key's index (in file order), or its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// API key number n (0-based; logged and shown 1-based, as its line in
    /// the file would be without comments).
    Key(usize),
    /// The peer address of a server without keys.
    Addr(IpAddr),
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Key(n) => write!(f, "key {}", n + 1),
            Client::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Why a request was refused, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// No or a wrong API key (401).
    Unauthorized,
    /// The client sent more requests than its rate allows (429).
    ClientRate,
    /// The client already holds its share of the embedding queue (429).
    ClientShare,
    /// The embedding queue is full (429).
    QueueFull,
    /// Too many ranking requests wait for a core (429).
    IndexQueueFull,
}

impl Refusal {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::ClientRate => "client_rate",
            Refusal::ClientShare => "client_queue_share",
            Refusal::QueueFull => "queue_full",
            Refusal::IndexQueueFull => "index_queue_full",
        }
    }
}

/// Whether a job of `new` tokens may join the embedding queue, which holds
/// `total` tokens, `own` of them this client's, for `others` other clients.
/// Each client's share is `max_queued / (others + 1)`; a client with
/// nothing queued always gets in (so the queue can pass `max_queued` by one
/// request per client, which the per-request limits bound).
pub fn admit(
    own: usize,
    total: usize,
    others: usize,
    new: usize,
    max_queued: usize,
) -> Result<(), Refusal> {
    if own == 0 {
        return Ok(());
    }
    if others > 0 && own + new > max_queued / (others + 1) {
        return Err(Refusal::ClientShare);
    }
    if total + new > max_queued {
        return Err(Refusal::QueueFull);
    }
    Ok(())
}

/// Tokens per embedding call: `batch_tokens` while one client is active,
/// `fair_tokens` (smaller) while several are, so that a request never
/// waits behind more than one short call of another client's work.
pub fn call_budget(active_clients: usize, batch_tokens: usize, fair_tokens: usize) -> usize {
    if active_clients > 1 {
        fair_tokens.min(batch_tokens).max(1)
    } else {
        batch_tokens.max(1)
    }
}

/// Seconds a refused client should wait: until the `queued` tokens it
/// already has are done at `tokens_per_s`, from 1 to 60.
pub fn retry_after_secs(queued: usize, tokens_per_s: f64) -> u64 {
    if tokens_per_s.is_finite() && tokens_per_s > 0.0 {
        ((queued as f64 / tokens_per_s).ceil() as u64).clamp(1, 60)
    } else {
        1
    }
}

/// Start-time fair queueing's virtual clock: a job's start tag is the later
/// of the clock and its client's previous finish tag, and jobs are served
/// in start-tag order. The clock is the start tag of the job last served,
/// so a client that was idle starts "now", ahead of any backlog.
#[derive(Debug, Default)]
pub struct FairClock {
    now: u64,
    finish: HashMap<Client, u64>,
}

impl FairClock {
    /// The start tag of a new job of `tokens` from `client`.
    pub fn tag(&mut self, client: Client, tokens: usize) -> u64 {
        let last = self.finish.get(&client).copied().unwrap_or(0);
        let start = self.now.max(last);
        self.finish.insert(client, start + tokens.max(1) as u64);
        start
    }

    /// A job tagged `start` is being served: the clock moves to it, and
    /// clients whose work all finished before it are forgotten.
    pub fn serve(&mut self, start: u64) {
        self.now = self.now.max(start);
        let now = self.now;
        self.finish.retain(|_, f| *f > now);
    }
}

/// A queued job as [`plan_call`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    /// A closure that uses the model itself (runs alone), not texts.
    pub task: bool,
    /// Its start tag ([`FairClock::tag`]).
    pub start: u64,
    /// Arrival order, to break ties.
    pub seq: u64,
    /// Tokens of each text still to embed (a task: its cost, one entry).
    pub tokens: &'a [usize],
}

/// Part of a job taken into the next call: `texts` of its texts, from the
/// front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Index into the `jobs` given to [`plan_call`].
    pub job: usize,
    /// How many of its texts (all of them for a task).
    pub texts: usize,
}

/// What the next model call does: jobs in start-tag order, a task alone, or
/// the texts of embedding jobs up to `budget` tokens. A job whose texts do
/// not all fit is cut between texts (its rest waits for a later call); the
/// first text is taken however long it is. A job never overtakes one with
/// an earlier tag.
pub fn plan_call(jobs: &[Pending], budget: usize) -> Vec<Take> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].start, jobs[i].seq));
    let mut takes = Vec::new();
    let mut used = 0;
    for i in order {
        let job = &jobs[i];
        if job.task {
            if takes.is_empty() {
                takes.push(Take {
                    job: i,
                    texts: job.tokens.len(),
                });
            }
            break;
        }
        let mut n = 0;
        for &t in job.tokens {
            if used + t > budget && (used > 0 || n > 0) {
                break;
            }
            used += t;
            n += 1;
        }
        // A job with no texts is taken too, or it would wait forever.
        if n > 0 || job.tokens.is_empty() {
            takes.push(Take { job: i, texts: n });
        }
        if n < job.tokens.len() {
            break;
        }
    }
    takes
}

/// A token bucket: `burst` requests at once, refilled at `rate` a second.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            level: burst,
            at: now,
        }
    }

    /// Takes one request; `Err(wait)` when empty, `wait` being how long
    /// until one is available.
    pub fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * rate).min(burst);
        self.at = now;
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.level) / rate))
        }
    }

    /// Whether the bucket has refilled completely by `now` (it can then be
    /// forgotten: a new full one is the same).
    pub fn is_full(&self, now: Instant, rate: f64, burst: f64) -> bool {
        self.level + now.saturating_duration_since(self.at).as_secs_f64() * rate >= burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEDY: Client = Client::Key(0);
    const POLITE: Client = Client::Key(1);

    #[test]
    fn the_queue_is_shared_between_the_clients_in_it() {
        // Alone, a client may fill the whole queue.
        assert_eq!(admit(60, 60, 0, 40, 100), Ok(()));
        assert_eq!(admit(60, 60, 0, 41, 100), Err(Refusal::QueueFull));
        // With one other client, half of it.
        assert_eq!(admit(40, 45, 1, 10, 100), Ok(()));
        assert_eq!(admit(40, 45, 1, 11, 100), Err(Refusal::ClientShare));
        // A client with nothing queued always gets in, even past the bound:
        // the greedy one's backlog cannot lock it out.
        assert_eq!(admit(0, 100, 1, 30, 100), Ok(()));
        assert_eq!(admit(0, 100, 5, 30, 100), Ok(()));
        // Within its share but the queue is full.
        assert_eq!(admit(10, 95, 1, 10, 100), Err(Refusal::QueueFull));
    }

    #[test]
    fn an_idle_clients_job_goes_ahead_of_a_backlog() {
        let mut clock = FairClock::default();
        let backlog: Vec<u64> = (0..4).map(|_| clock.tag(GREEDY, 1000)).collect();
        assert_eq!(backlog, [0, 1000, 2000, 3000]);
        clock.serve(0);
        // The polite client starts at the clock: right after the job in service.
        assert_eq!(clock.tag(POLITE, 50), 0);
        assert_eq!(clock.tag(POLITE, 50), 50);
        clock.serve(1000);
        // Its finish (100) is past: forgotten, and it starts at the clock again.
        assert_eq!(clock.tag(POLITE, 50), 1000);
        assert_eq!(clock.finish.len(), 2);
    }

    fn embed(start: u64, seq: u64, tokens: &[usize]) -> Pending<'_> {
        Pending {
            task: false,
            start,
            seq,
            tokens,
        }
    }

    #[test]
    fn calls_take_jobs_in_tag_order_and_cut_big_ones_between_texts() {
        let big = [100; 10];
        let small = [30];
        let jobs = [embed(0, 0, &big), embed(0, 1, &small)];
        // The big one came first (equal tags): 2 of its texts fit 250.
        assert_eq!(plan_call(&jobs, 250), vec![Take { job: 0, texts: 2 }]);
        // Once the big job's tag has moved on, the small one goes first.
        let jobs = [embed(200, 0, &big[2..]), embed(0, 1, &small)];
        assert_eq!(
            plan_call(&jobs, 250),
            vec![Take { job: 1, texts: 1 }, Take { job: 0, texts: 2 }]
        );
        // A large budget merges everything, as one client's burst needs.
        assert_eq!(
            plan_call(&jobs, 10_000),
            vec![Take { job: 1, texts: 1 }, Take { job: 0, texts: 8 }]
        );
        // A text over the budget still runs, alone.
        assert_eq!(
            plan_call(&[embed(0, 0, &[900, 10])], 100),
            vec![Take { job: 0, texts: 1 }]
        );
        assert!(plan_call(&[], 100).is_empty());
        assert_eq!(
            plan_call(&[embed(0, 0, &[])], 100),
            vec![Take { job: 0, texts: 0 }]
        );
    }

    #[test]
    fn tasks_run_alone_in_their_turn() {
        let cost = [4096];
        let task = Pending {
            task: true,
            start: 10,
            seq: 1,
            tokens: &cost,
        };
        let texts = [5, 5];
        assert_eq!(
            plan_call(&[embed(0, 0, &texts), task], 100),
            vec![Take { job: 0, texts: 2 }]
        );
        assert_eq!(
            plan_call(&[embed(20, 0, &texts), task], 100),
            vec![Take { job: 1, texts: 1 }]
        );
    }

    #[test]
    fn small_calls_only_while_several_clients_are_active() {
        assert_eq!(call_budget(1, 8192, 256), 8192);
        assert_eq!(call_budget(3, 8192, 256), 256);
        assert_eq!(call_budget(3, 100, 256), 100);
        assert_eq!(call_budget(0, 8192, 256), 8192);
    }

    #[test]
    fn retry_after_is_the_clients_own_backlog() {
        assert_eq!(retry_after_secs(9000, 4500.0), 2);
        assert_eq!(retry_after_secs(1, 4500.0), 1);
        assert_eq!(retry_after_secs(10_000_000, 4500.0), 60);
        assert_eq!(retry_after_secs(100, 0.0), 1);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(2.0, t0);
        assert!(b.take(t0, 1.0, 2.0).is_ok());
        assert!(b.take(t0, 1.0, 2.0).is_ok());
        let wait = b.take(t0, 1.0, 2.0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-9, "{wait:?}");
        let t1 = t0 + Duration::from_millis(500);
        let wait = b.take(t1, 1.0, 2.0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        let t2 = t0 + Duration::from_millis(1000);
        assert!(b.take(t2, 1.0, 2.0).is_ok());
        assert!(!b.is_full(t2, 1.0, 2.0));
        assert!(b.is_full(t2 + Duration::from_secs(2), 1.0, 2.0));
    }
}
