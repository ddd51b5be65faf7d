//! The embedding queue: concurrent requests are merged into shared forward
//! passes.
//!
//! One worker thread owns the model's compute: requests never call the
//! model themselves. Each request enqueues a job and awaits its reply. While
//! the worker is busy with one batch, new jobs pile up; when it comes back it
//! takes every queued embedding job that fits a token budget and embeds all
//! their texts in one [`Embedder::embed`] call, whose length-sorted batch
//! planner then packs texts of different requests into the same forwards.
//! So an idle server answers a lone request at once, and a loaded one does
//! few large forwards instead of one per request. Admission is bounded by
//! queued tokens: past the bound a request is refused ([`Overloaded`], HTTP
//! 429) instead of waiting in an unbounded queue.
//!
//! Work that needs the model for more than a plain embedding (related-work
//! lists embed drafts and explanation sentences) runs as a task on the same
//! thread, so the cores are never oversubscribed by two forwards at once.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::embed::{EmbedError, Embedder};

/// A job is refused: the queue already holds its budget of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// What kind of job sits in the queue, for [`next_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain embedding of texts; can be merged with its neighbours.
    Embed,
    /// A closure that uses the model itself; always runs alone.
    Task,
}

/// How many jobs from the front of the queue the worker takes next: one
/// task alone, or the run of embedding jobs at the front whose tokens fit
/// `budget` (at least one, however large: admission already bounded it).
/// FIFO: an embedding job never overtakes a task queued before it.
pub fn next_batch(queue: impl IntoIterator<Item = (Kind, usize)>, budget: usize) -> usize {
    let mut taken = 0;
    let mut tokens = 0;
    for (kind, t) in queue {
        match kind {
            Kind::Task if taken == 0 => return 1,
            Kind::Task => break,
            Kind::Embed if taken > 0 && tokens + t > budget => break,
            Kind::Embed => {
                taken += 1;
                tokens += t;
            }
        }
    }
    taken
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
    Embed { texts: Vec<String>, reply: Reply },
    Task(TaskFn),
}

struct Job {
    work: Work,
    tokens: usize,
    enqueued: Instant,
}

impl Job {
    fn kind(&self) -> Kind {
        match self.work {
            Work::Embed { .. } => Kind::Embed,
            Work::Task(_) => Kind::Task,
        }
    }
}

/// Token budgets of the queue, both in tokens as the model counts them.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Tokens of queued work merged into one `embed` call (which cuts them
    /// into forwards of its own token budget).
    pub batch_tokens: usize,
    /// Tokens that may wait in the queue; more is refused.
    pub max_queued_tokens: usize,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    tokens: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    limits: QueueLimits,
    metrics: Arc<Metrics>,
}

impl Shared {
    // A panic while the lock is held cannot leave `State` half-updated (every
    // update is a push/pop plus a counter), so a poisoned lock is still usable.
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

    fn push(&self, work: Work, tokens: usize) -> Result<(), Overloaded> {
        let mut st = self.shared.lock();
        // An empty queue always admits, so a request within the per-request
        // limits can never be refused forever.
        if st.closed
            || (!st.jobs.is_empty() && st.tokens + tokens > self.shared.limits.max_queued_tokens)
        {
            return Err(Overloaded);
        }
        st.tokens += tokens;
        st.jobs.push_back(Job {
            work,
            tokens,
            enqueued: Instant::now(),
        });
        self.shared.metrics.set_queue(st.jobs.len(), st.tokens);
        drop(st);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues `texts` (`tokens` in all) for embedding; the reply holds
    /// `texts.len() * dim` floats in input order.
    pub fn embed(
        &self,
        texts: Vec<String>,
        tokens: usize,
    ) -> Result<oneshot::Receiver<Result<Vec<f32>, EmbedError>>, Overloaded> {
        let (tx, rx) = oneshot::channel();
        self.push(Work::Embed { texts, reply: tx }, tokens)?;
        Ok(rx)
    }

    /// Runs `f` with the model on the worker thread; `cost` is its
    /// admission weight in tokens. The receiver errs if `f` panicked.
    pub fn task<R: Send + 'static>(
        &self,
        cost: usize,
        f: impl FnOnce(&Embedder) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, Overloaded> {
        let (tx, rx) = oneshot::channel();
        let run: TaskFn = Box::new(move |e: &Embedder| {
            // The requester may have given up (timeout); nothing to do then.
            let _ = tx.send(f(e));
        });
        self.push(Work::Task(run), cost)?;
        Ok(rx)
    }

    /// Refuses new jobs; the worker finishes the queued ones, then exits.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn worker(shared: &Shared, embedder: &Embedder) {
    loop {
        let batch: Vec<Job> = {
            let mut st = shared.lock();
            while st.jobs.is_empty() && !st.closed {
                st = shared.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.jobs.is_empty() {
                return;
            }
            let n = next_batch(
                st.jobs.iter().map(|j| (j.kind(), j.tokens)),
                shared.limits.batch_tokens,
            );
            let batch: Vec<Job> = st.jobs.drain(..n).collect();
            st.tokens -= batch.iter().map(|j| j.tokens).sum::<usize>();
            shared.metrics.set_queue(st.jobs.len(), st.tokens);
            batch
        };
        let waited = batch.first().map(|j| j.enqueued.elapsed());
        if let Some(w) = waited {
            shared.metrics.queue_wait.observe(w.as_secs_f64());
        }
        run_batch(shared, embedder, batch);
    }
}

fn run_batch(shared: &Shared, embedder: &Embedder, batch: Vec<Job>) {
    let mut texts: Vec<String> = Vec::new();
    let mut replies: Vec<(Reply, usize)> = Vec::new();
    for job in batch {
        match job.work {
            Work::Task(f) => {
                // A panic must not kill the only worker: the task's sender is
                // dropped, so its requester gets an error instead.
                let _ = catch_unwind(AssertUnwindSafe(|| f(embedder)));
            }
            // Skip work whose requester already gave up (timed out).
            Work::Embed { reply, .. } if reply.is_closed() => {}
            Work::Embed { texts: t, reply } => {
                replies.push((reply, t.len()));
                texts.extend(t);
            }
        }
    }
    if replies.is_empty() {
        return;
    }
    let started = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let result = catch_unwind(AssertUnwindSafe(|| embedder.embed(&refs, &|_| {})));
    let m = &shared.metrics;
    m.forward_seconds.observe(started.elapsed().as_secs_f64());
    m.batch_texts.observe(texts.len() as f64);
    m.batch_requests.observe(replies.len() as f64);
    match result {
        Ok(Ok((rows, _))) => {
            let counts: Vec<usize> = replies.iter().map(|(_, c)| *c).collect();
            let parts = split_rows(rows, &counts, embedder.info().dim);
            for ((reply, _), part) in replies.into_iter().zip(parts) {
                let _ = reply.send(Ok(part));
            }
        }
        Ok(Err(e)) => {
            let msg = e.to_string();
            for (reply, _) in replies {
                let _ = reply.send(Err(EmbedError::Forward(msg.clone())));
            }
        }
        // Panicked: dropping the senders tells every requester.
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::Kind::{Embed, Task};

    #[test]
    fn merges_embed_jobs_up_to_the_budget() {
        let q = [(Embed, 100), (Embed, 200), (Embed, 300), (Embed, 50)];
        assert_eq!(next_batch(q, 600), 3);
        assert_eq!(next_batch(q, 10_000), 4);
        assert_eq!(next_batch(q, 300), 2);
    }

    #[test]
    fn an_oversized_job_still_runs_alone() {
        assert_eq!(next_batch([(Embed, 5000), (Embed, 1)], 100), 1);
    }

    #[test]
    fn tasks_run_alone_and_keep_their_place() {
        assert_eq!(next_batch([(Task, 10), (Embed, 1)], 100), 1);
        assert_eq!(
            next_batch([(Embed, 1), (Embed, 1), (Task, 1), (Embed, 1)], 100),
            2
        );
        assert_eq!(next_batch(std::iter::empty(), 100), 0);
    }

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
