//! The embedding queue: concurrent requests are merged into shared forward
//! passes, and the model's time is shared fairly between clients.
//!
//! One worker thread owns the model's compute: requests never call the
//! model themselves. Each request enqueues a job and awaits its reply. While
//! the worker is busy with one call, new jobs pile up; when it comes back it
//! plans the next call ([`fair::plan_call`]): queued embedding jobs in
//! start-time fair order, up to a token budget, all their texts embedded in
//! one [`Embedder::embed`] call, whose length-sorted batch planner then
//! packs texts of different requests into the same forwards. So an idle
//! server answers a lone request at once, and a loaded one does few large
//! forwards instead of one per request.
//!
//! Fairness: a job is tagged by its client's place in the fair order, so a
//! client's new request is served before another client's backlog; a job
//! larger than the call budget is cut between texts, the rest waiting its
//! turn; and while several clients are active the budget is small
//! ([`fair::call_budget`]), so nobody waits behind more than one short call.
//! Admission is bounded by queued tokens, shared between the clients in the
//! queue ([`fair::admit`]): past it a request is refused (HTTP 429) instead
//! of waiting in an unbounded queue.
//!
//! Work that needs the model for more than a plain embedding (related-work
//! lists embed drafts and explanation sentences) runs as a task on the same
//! thread, so the cores are never oversubscribed by two forwards at once.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::fair::{self, Client, FairClock, Pending, Refusal};
use super::metrics::Metrics;
use crate::embed::{EmbedError, Embedder};

/// A client that queued work this recently still counts as active, for
/// [`fair::call_budget`]: a polite client between two requests must not
/// find a full-size call of someone else's in its way.
const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

/// A job is refused: why, and how many seconds the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Queue full, or the client's share of it taken.
    pub reason: Refusal,
    /// For `Retry-After`.
    pub retry_after: u64,
}

/// Splits the rows of a merged embedding back into each request's share:
/// `counts[i]` texts per request, `dim` floats per text, in order.
pub fn split_rows(mut rows: Vec<f32>, counts: &[usize], dim: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(counts.len());
    for &c in counts.iter().rev() {
        let at = rows.len().saturating_sub(c * dim);
        out.push(rows.split_off(at));
    }
    out.reverse();
    out
}

type Reply = oneshot::Sender<Result<Vec<f32>, EmbedError>>;
type TaskFn = Box<dyn FnOnce(&Embedder) + Send>;

enum Work {
    /// Texts still to embed (with their token counts), the rows of those
    /// already embedded, and where the whole answer goes.
    Embed {
        texts: Vec<String>,
        tokens: Vec<usize>,
        done: Vec<f32>,
        reply: Reply,
    },
    Task {
        run: TaskFn,
        cost: [usize; 1],
    },
}

struct Job {
    work: Work,
    client: Client,
    start: u64,
    seq: u64,
    enqueued: Instant,
}

impl Job {
    fn pending(&self) -> (bool, &[usize]) {
        match &self.work {
            Work::Embed { tokens, .. } => (false, tokens),
            Work::Task { cost, .. } => (true, cost),
        }
    }

    fn tokens(&self) -> usize {
        match &self.work {
            Work::Embed { tokens, .. } => tokens.iter().sum(),
            Work::Task { cost, .. } => cost[0],
        }
    }
}

/// Token budgets of the queue, both in tokens as the model counts them.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Tokens of queued work merged into one `embed` call (which cuts them
    /// into forwards of its own token budget).
    pub batch_tokens: usize,
    /// Tokens per call while several clients are active.
    pub fair_batch_tokens: usize,
    /// Tokens that may wait in the queue, shared between clients; more is
    /// refused.
    pub max_queued_tokens: usize,
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    /// Tokens queued in all, and per client; a job being embedded counts
    /// until it is done.
    tokens: usize,
    per_client: HashMap<Client, usize>,
    /// When each client last queued work.
    last_seen: HashMap<Client, Instant>,
    clock: FairClock,
    seq: u64,
    /// Tokens a second the model has been embedding (moving average), for
    /// `Retry-After`.
    tokens_per_s: f64,
    closed: bool,
}

impl State {
    fn release(&mut self, client: Client, tokens: usize) {
        self.tokens = self.tokens.saturating_sub(tokens);
        if let Some(t) = self.per_client.get_mut(&client) {
            *t = t.saturating_sub(tokens);
            if *t == 0 {
                self.per_client.remove(&client);
            }
        }
    }

    /// Clients with queued work or seen within [`ACTIVE_WINDOW`].
    fn active_clients(&mut self, now: Instant) -> usize {
        let per_client = &self.per_client;
        self.last_seen
            .retain(|c, t| now.duration_since(*t) < ACTIVE_WINDOW || per_client.contains_key(c));
        self.last_seen.len()
    }
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    limits: QueueLimits,
    metrics: Arc<Metrics>,
}

impl Shared {
    // A panic while the lock is held cannot leave `State` half-updated (every
    // update is a push/pop plus counters), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle requests submit to; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    /// Starts the worker thread that owns the model's compute.
    pub fn start(
        embedder: Arc<Embedder>,
        limits: QueueLimits,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Queue, std::thread::JoinHandle<()>)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            limits,
            metrics,
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("embed-queue".into())
            .spawn(move || worker(&s, &embedder))?;
        Ok((Queue { shared }, handle))
    }

    /// Whether `client`'s job of `tokens` would be let in now.
    fn admit(&self, st: &mut State, client: Client, tokens: usize) -> Result<(), Refused> {
        let now = Instant::now();
        let own = st.per_client.get(&client).copied().unwrap_or(0);
        // Shared between the clients active lately, not only those with work
        // queued this instant: a polite client between two requests still
        // holds its place.
        let active = st.active_clients(now);
        let others = active - usize::from(st.last_seen.contains_key(&client));
        let admitted = if st.closed {
            Err(Refusal::QueueFull)
        } else {
            fair::admit(
                own,
                st.tokens,
                others,
                tokens,
                self.shared.limits.max_queued_tokens,
            )
        };
        admitted.map_err(|reason| Refused {
            reason,
            retry_after: fair::retry_after_secs(own.max(tokens), st.tokens_per_s),
        })
    }

    /// Refuses `client` before its texts are even tokenized when it already
    /// holds its share of the queue: a client hammering a full queue costs
    /// little.
    pub fn precheck(&self, client: Client) -> Result<(), Refused> {
        let mut st = self.shared.lock();
        self.admit(&mut st, client, 1)
    }

    fn push(&self, client: Client, work: Work, tokens: usize) -> Result<(), Refused> {
        let mut st = self.shared.lock();
        self.admit(&mut st, client, tokens)?;
        let now = Instant::now();
        st.tokens += tokens;
        *st.per_client.entry(client).or_default() += tokens;
        st.last_seen.insert(client, now);
        let start = st.clock.tag(client, tokens);
        st.seq += 1;
        let seq = st.seq;
        st.jobs.push(Job {
            work,
            client,
            start,
            seq,
            enqueued: now,
        });
        self.shared.metrics.set_queue(st.jobs.len(), st.tokens);
        drop(st);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues `texts` (`tokens[i]` tokens each) for embedding on behalf of
    /// `client`; the reply holds `texts.len() * dim` floats in input order.
    pub fn embed(
        &self,
        client: Client,
        texts: Vec<String>,
        tokens: Vec<usize>,
    ) -> Result<oneshot::Receiver<Result<Vec<f32>, EmbedError>>, Refused> {
        let (tx, rx) = oneshot::channel();
        let total = tokens.iter().sum();
        let work = Work::Embed {
            texts,
            tokens,
            done: Vec::new(),
            reply: tx,
        };
        self.push(client, work, total)?;
        Ok(rx)
    }

    /// Runs `f` with the model on the worker thread; `cost` is its
    /// admission weight in tokens. The receiver errs if `f` panicked.
    pub fn task<R: Send + 'static>(
        &self,
        client: Client,
        cost: usize,
        f: impl FnOnce(&Embedder) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, Refused> {
        let (tx, rx) = oneshot::channel();
        let run: TaskFn = Box::new(move |e: &Embedder| {
            // The requester may have given up (timeout); nothing to do then.
            let _ = tx.send(f(e));
        });
        let work = Work::Task { run, cost: [cost] };
        self.push(client, work, cost)?;
        Ok(rx)
    }

    /// Refuses new jobs; the worker finishes the queued ones, then exits.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Part of a job in the current call: the job itself (out of the queue
/// meanwhile) and how many of its texts the call embeds.
struct Taken {
    job: Job,
    texts: Vec<String>,
    taken_tokens: usize,
}

fn worker(shared: &Shared, embedder: &Embedder) {
    loop {
        let taken: Vec<Taken> = {
            let mut st = shared.lock();
            while st.jobs.is_empty() && !st.closed {
                st = shared.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.jobs.is_empty() {
                return;
            }
            let budget = fair::call_budget(
                st.active_clients(Instant::now()),
                shared.limits.batch_tokens,
                shared.limits.fair_batch_tokens,
            );
            let plan = {
                let pending: Vec<Pending> = st
                    .jobs
                    .iter()
                    .map(|j| {
                        let (task, tokens) = j.pending();
                        Pending {
                            task,
                            start: j.start,
                            seq: j.seq,
                            tokens,
                        }
                    })
                    .collect();
                fair::plan_call(&pending, budget)
            };
            if let Some(first) = plan.first() {
                let start = st.jobs[first.job].start;
                st.clock.serve(start);
            }
            // Out of the queue, highest index first so the others stay valid.
            let mut picks: Vec<(usize, usize)> = plan.iter().map(|t| (t.job, t.texts)).collect();
            picks.sort_by_key(|p| std::cmp::Reverse(p.0));
            let mut taken: Vec<Taken> = picks
                .into_iter()
                .map(|(i, n)| {
                    let mut job = st.jobs.swap_remove(i);
                    let (texts, taken_tokens) = match &mut job.work {
                        Work::Embed { texts, tokens, .. } => {
                            let n = n.min(texts.len());
                            let t: usize = tokens.drain(..n).sum();
                            // The rest of the job keeps its place in the
                            // fair order, behind what was taken.
                            job.start += t as u64;
                            (texts.drain(..n).collect(), t)
                        }
                        Work::Task { .. } => (Vec::new(), 0),
                    };
                    Taken {
                        job,
                        texts,
                        taken_tokens,
                    }
                })
                .collect();
            taken.sort_by_key(|t| t.job.seq);
            shared.metrics.set_queue(st.jobs.len(), st.tokens);
            taken
        };
        if let Some(w) = taken.iter().map(|t| t.job.enqueued.elapsed()).max() {
            shared.metrics.queue_wait.observe(w.as_secs_f64());
        }
        run_call(shared, embedder, taken);
    }
}

fn run_call(shared: &Shared, embedder: &Embedder, taken: Vec<Taken>) {
    let mut texts: Vec<String> = Vec::new();
    let mut counts = Vec::new();
    let mut jobs = Vec::new();
    for t in taken {
        let client = t.job.client;
        match t.job.work {
            Work::Task { run, cost } => {
                // A panic must not kill the only worker: the task's sender is
                // dropped, so its requester gets an error instead.
                let _ = catch_unwind(AssertUnwindSafe(|| run(embedder)));
                shared.lock().release(client, cost[0]);
            }
            // The requester gave up (timed out): the job goes, unrun.
            Work::Embed { ref reply, .. } if reply.is_closed() => {
                let left = t.taken_tokens + t.job.tokens();
                shared.lock().release(client, left);
            }
            Work::Embed { .. } => {
                counts.push(t.texts.len());
                texts.extend(t.texts);
                jobs.push((t.job, t.taken_tokens));
            }
        }
    }
    if jobs.is_empty() {
        return;
    }
    let started = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let result = catch_unwind(AssertUnwindSafe(|| embedder.embed(&refs, &|_| {})));
    let seconds = started.elapsed().as_secs_f64();
    let m = &shared.metrics;
    m.forward_seconds.observe(seconds);
    m.batch_texts.observe(texts.len() as f64);
    m.batch_requests.observe(jobs.len() as f64);
    let parts: Result<Vec<Vec<f32>>, Option<String>> = match result {
        Ok(Ok((rows, _))) => Ok(split_rows(rows, &counts, embedder.info().dim)),
        Ok(Err(e)) => Err(Some(e.to_string())),
        // Panicked: dropping the senders tells every requester.
        Err(_) => Err(None),
    };
    let mut st = shared.lock();
    let done: usize = jobs.iter().map(|(_, t)| t).sum();
    if parts.is_ok() && seconds > 0.0 {
        let rate = done as f64 / seconds;
        st.tokens_per_s = if st.tokens_per_s > 0.0 {
            0.8 * st.tokens_per_s + 0.2 * rate
        } else {
            rate
        };
    }
    let mut parts = match parts {
        Ok(p) => p.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e); jobs.len()],
    };
    for ((mut job, taken_tokens), part) in jobs.into_iter().zip(parts.drain(..)) {
        st.release(job.client, taken_tokens);
        match part {
            Ok(rows) => {
                if let Work::Embed { texts, done, .. } = &mut job.work {
                    done.extend(rows);
                    if !texts.is_empty() {
                        // The rest waits for its turn.
                        st.jobs.push(job);
                        continue;
                    }
                }
                if let Work::Embed { done, reply, .. } = job.work {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(msg) => {
                let left = job.tokens();
                st.release(job.client, left);
                if let (Some(msg), Work::Embed { reply, .. }) = (msg, job.work) {
                    let _ = reply.send(Err(EmbedError::Forward(msg)));
                }
            }
        }
    }
    shared.metrics.set_queue(st.jobs.len(), st.tokens);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_routes_results_back_in_order() {
        let rows: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let parts = split_rows(rows, &[1, 0, 2, 3], 2);
        assert_eq!(
            parts,
            vec![
                vec![0.0, 1.0],
                vec![],
                vec![2.0, 3.0, 4.0, 5.0],
                vec![6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
            ]
        );
    }
}
