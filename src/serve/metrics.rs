//! Prometheus text-format metrics, kept by hand: a few counters, gauges and
//! fixed-bucket histograms need no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::fair::Refusal;

/// Every reason a request may be refused, in the order `/metrics` lists them.
pub const REFUSALS: [Refusal; 5] = [
    Refusal::Unauthorized,
    Refusal::ClientRate,
    Refusal::ClientShare,
    Refusal::QueueFull,
    Refusal::IndexQueueFull,
];

/// Latency buckets (seconds): from a cached /health to a queued batch.
const LATENCY: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Texts or requests per merged embedding call.
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A Prometheus histogram with fixed bucket bounds; thread-safe, so shared
/// handlers observe through `&self`.
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramData>,
}

#[derive(Clone, Default)]
struct HistogramData {
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new(HistogramData {
                counts: vec![0; bounds.len() + 1],
                ..HistogramData::default()
            }),
        }
    }

    /// Records one value (in the histogram's unit: seconds or a count) into
    /// the first bucket whose bound is at least `v`.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        let mut d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        d.counts[i] += 1;
        d.sum += v;
        d.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let d = self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&d.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", d.count);
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), d.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), d.count);
    }
}

/// Everything `/metrics` reports, updated by the request middleware, the
/// queue worker and the library watcher.
pub struct Metrics {
    /// (route, status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    in_flight: AtomicUsize,
    queue_jobs: AtomicUsize,
    queue_tokens: AtomicUsize,
    /// Seconds the oldest job of each merged batch waited in the queue.
    pub queue_wait: Histogram,
    /// Texts per merged embedding call.
    pub batch_texts: Histogram,
    /// Requests merged into one embedding call.
    pub batch_requests: Histogram,
    /// Seconds per merged embedding call.
    pub forward_seconds: Histogram,
    /// Requests refused (401 or 429), per [`Refusal`], in [`REFUSALS`] order.
    refused: [AtomicU64; REFUSALS.len()],
    /// Requests that ran past the per-request timeout (answered 503).
    pub timeouts: AtomicU64,
    /// New library generations switched to.
    pub reloads_ok: AtomicU64,
    /// New generations not switched to (unopenable or embedded by another
    /// model); the old one kept serving.
    pub reloads_failed: AtomicU64,
    /// Generation number of the library being served.
    pub generation: AtomicU64,
    /// Papers in the library being served.
    pub papers: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            queue_jobs: AtomicUsize::new(0),
            queue_tokens: AtomicUsize::new(0),
            queue_wait: Histogram::new(LATENCY),
            batch_texts: Histogram::new(SIZES),
            batch_requests: Histogram::new(SIZES),
            forward_seconds: Histogram::new(LATENCY),
            refused: Default::default(),
            timeouts: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            papers: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Sets the queue gauges: jobs and tokens waiting in the embedding queue.
    pub fn set_queue(&self, jobs: usize, tokens: usize) {
        self.queue_jobs.store(jobs, Ordering::Relaxed);
        self.queue_tokens.store(tokens, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn refuse(&self, why: Refusal) {
        if let Some(i) = REFUSALS.iter().position(|&r| r == why) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request in flight; pair with [`end_request`](Self::end_request).
    pub fn start_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends a request started with [`start_request`](Self::start_request):
    /// counts it by route and status and records its latency in seconds.
    pub fn end_request(&self, route: &str, status: u16, seconds: f64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
        let h = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route.to_string())
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY)))
            .clone();
        h.observe(seconds);
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        o.push_str("# HELP papersim_http_requests_total HTTP requests by route and status.\n");
        o.push_str("# TYPE papersim_http_requests_total counter\n");
        for ((route, status), n) in &requests {
            let _ = writeln!(
                o,
                "papersim_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        o.push_str("# HELP papersim_http_request_duration_seconds Request latency by route.\n");
        o.push_str("# TYPE papersim_http_request_duration_seconds histogram\n");
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (route, h) in &latency {
            h.render(
                &mut o,
                "papersim_http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        let gauge = |o: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed) as f64;
        let load64 = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut o,
            "papersim_http_in_flight",
            "Requests being answered.",
            load(&self.in_flight),
        );
        gauge(
            &mut o,
            "papersim_queue_depth",
            "Jobs waiting in the embedding queue.",
            load(&self.queue_jobs),
        );
        gauge(
            &mut o,
            "papersim_queue_tokens",
            "Tokens waiting in the embedding queue.",
            load(&self.queue_tokens),
        );
        let hist = |o: &mut String, name: &str, help: &str, h: &Histogram| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
            h.render(o, name, "");
        };
        hist(
            &mut o,
            "papersim_queue_wait_seconds",
            "Time the oldest job of a batch waited in the queue.",
            &self.queue_wait,
        );
        hist(
            &mut o,
            "papersim_embed_batch_texts",
            "Texts per merged embedding call.",
            &self.batch_texts,
        );
        hist(
            &mut o,
            "papersim_embed_batch_requests",
            "Requests merged into one embedding call.",
            &self.batch_requests,
        );
        hist(
            &mut o,
            "papersim_embed_batch_seconds",
            "Duration of one merged embedding call.",
            &self.forward_seconds,
        );
        o.push_str("# HELP papersim_rejected_total Requests refused, by reason (401: unauthorized; 429: the others).\n");
        o.push_str("# TYPE papersim_rejected_total counter\n");
        for (r, n) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(
                o,
                "papersim_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                load64(n)
            );
        }
        counter(
            &mut o,
            "papersim_request_timeouts_total",
            "Requests that ran past the per-request timeout.",
            load64(&self.timeouts),
        );
        counter(
            &mut o,
            "papersim_library_reloads_total",
            "Library generations switched to.",
            load64(&self.reloads_ok),
        );
        counter(
            &mut o,
            "papersim_library_reload_failures_total",
            "New generations that could not be opened (the old one kept serving).",
            load64(&self.reloads_failed),
        );
        gauge(
            &mut o,
            "papersim_library_generation",
            "Generation of the library being served.",
            load64(&self.generation) as f64,
        );
        gauge(
            &mut o,
            "papersim_library_papers",
            "Papers in the library being served.",
            load64(&self.papers) as f64,
        );
        if let Some((rss, peak)) = rss_bytes() {
            gauge(
                &mut o,
                "process_resident_memory_bytes",
                "Resident set size.",
                rss as f64,
            );
            gauge(
                &mut o,
                "papersim_peak_resident_memory_bytes",
                "Peak resident set size (VmHWM).",
                peak as f64,
            );
        }
        o
    }
}

/// (VmRSS, VmHWM) in bytes from /proc/self/status; None off Linux.
pub fn rss_bytes() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "route=\"/a\"");
        assert!(s.contains("x_bucket{route=\"/a\",le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{route=\"/a\",le=\"2\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{route=\"/a\",le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_sum{route=\"/a\"} 6\n"), "{s}");
    }
}
