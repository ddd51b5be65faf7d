//! `papersim bench embed`: embedding throughput on real abstracts, per
//! device, with batch latency percentiles; a markdown table, JSON, or an SVG
//! bar chart.

use std::cell::RefCell;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{self, CorpusError, ReadOptions, TextTemplate};
use crate::embed::{EmbedError, Embedder};

/// One device's result from [`embed`]: one row of the markdown table and one
/// bar of the SVG chart.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedBench {
    /// The backend's device name, e.g. `cpu (avx2, 8 threads)` or `cuda:0`.
    pub device: String,
    /// The weights' numeric precision, e.g. `f32`.
    pub precision: String,
    /// CPU worker threads (see [`cpu_threads`]); 1 for accelerator devices.
    pub threads: usize,
    /// Texts embedded in the timed run.
    pub docs: usize,
    /// Real tokens embedded (special tokens included, after truncation, no
    /// padding).
    pub tokens: usize,
    /// Wall-clock time of the timed run, tokenization included, in seconds.
    pub seconds: f64,
    /// Texts per second of wall-clock time.
    pub docs_per_s: f64,
    /// Real (unpadded) tokens per second of wall-clock time.
    pub tokens_per_s: f64,
    /// Token slots computed per real token; 1.0 means no padding waste.
    pub padding_ratio: f64,
    /// Forward passes run.
    pub batches: usize,
    /// The token budget of one forward (padded slots).
    pub batch_tokens: usize,
    /// Median time between consecutive batch completions, in milliseconds
    /// (nearest rank).
    pub p50_batch_ms: f64,
    /// 95th-percentile time between consecutive batch completions, in
    /// milliseconds (nearest rank).
    pub p95_batch_ms: f64,
}

/// The corpus `bench embed` reads when none is named: the 74,728 real
/// arXiv papers of `../shared` when present, else the bundled sample.
pub fn default_corpus() -> PathBuf {
    let shared = PathBuf::from("../shared/data/arxiv-cs.jsonl.gz");
    if shared.is_file() {
        shared
    } else {
        PathBuf::from("data/arxiv-sample.jsonl.gz")
    }
}

/// The texts of the first `n` good papers of `corpus`, rendered with the
/// default template (what `build` embeds).
pub fn abstracts(corpus: &Path, n: usize) -> Result<Vec<String>, CorpusError> {
    let reader = corpus::open(corpus, &ReadOptions::default())?;
    let template = TextTemplate::default();
    reader
        .take(n)
        .map(|p| p.map(|p| template.render(&p)))
        .collect()
}

/// Worker threads the CPU path uses: `PAPERSIM_THREADS` when set, else
/// every available core.
pub fn cpu_threads() -> usize {
    crate::threads::threads(None).unwrap_or_else(|_| crate::threads::cores())
}

/// Embeds `texts` once to warm up (first-touch allocations, lazy
/// initialisation), then once timed.
pub fn embed(embedder: &Embedder, texts: &[&str]) -> Result<EmbedBench, EmbedError> {
    let warm = &texts[..texts.len().min(16)];
    embedder.embed(warm, &|_| {})?;
    let marks: RefCell<Vec<Instant>> = RefCell::new(vec![Instant::now()]);
    let (_, stats) = embedder.embed(texts, &|_| marks.borrow_mut().push(Instant::now()))?;
    let marks = marks.into_inner();
    let mut latencies: Vec<f64> = marks
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let device = embedder.device_name();
    Ok(EmbedBench {
        threads: if device.starts_with("cpu") {
            cpu_threads()
        } else {
            1
        },
        device,
        precision: embedder.info().precision.to_string(),
        docs: stats.docs,
        tokens: stats.tokens,
        seconds: stats.seconds,
        docs_per_s: stats.docs_per_s(),
        tokens_per_s: stats.tokens_per_s(),
        padding_ratio: stats.padding_ratio(),
        batches: stats.batches,
        batch_tokens: embedder.limits().max_tokens,
        p50_batch_ms: percentile(&latencies, 0.50),
        p95_batch_ms: percentile(&latencies, 0.95),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A markdown table; speed-up is relative to the first row.
pub fn markdown(rows: &[EmbedBench]) -> String {
    let mut out = String::from(
        "| device | precision | threads | docs | docs/s | tokens/s | padding | batch tokens | p50 batch ms | p95 batch ms | speed-up |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let base = rows.first().map_or(1.0, |r| r.docs_per_s);
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.3} | {} | {:.1} | {:.1} | {:.2}x |",
            r.device,
            r.precision,
            r.threads,
            r.docs,
            r.docs_per_s,
            r.tokens_per_s,
            r.padding_ratio,
            r.batch_tokens,
            r.p50_batch_ms,
            r.p95_batch_ms,
            r.docs_per_s / base.max(1e-9)
        );
    }
    out
}

/// A horizontal bar chart of docs/s per device, as a standalone SVG.
pub fn svg(rows: &[EmbedBench], title: &str) -> String {
    // Each row: the device label on a line of its own, the bar beneath it.
    let (w, bar_h, row_h, left) = (640.0, 26.0, 58.0, 12.0);
    let h = 50.0 + rows.len() as f64 * row_h;
    let max = rows.iter().map(|r| r.docs_per_s).fold(1e-9, f64::max);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"14\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"26\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 48.0 + i as f64 * row_h;
        let len = (w - left - 120.0) * r.docs_per_s / max;
        let _ = write!(
            out,
            "<text x=\"{left}\" y=\"{:.0}\">{}, {}</text>\n\
             <rect x=\"{left}\" y=\"{:.0}\" width=\"{len:.1}\" height=\"{bar_h}\" fill=\"#3b6ea8\"/>\n\
             <text x=\"{:.1}\" y=\"{:.0}\">{:.1} docs/s</text>\n",
            y + 12.0,
            esc(&r.device),
            esc(&r.precision),
            y + 20.0,
            left + len + 8.0,
            y + 20.0 + bar_h * 0.7,
            r.docs_per_s
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, dps: f64) -> EmbedBench {
        EmbedBench {
            device: device.into(),
            precision: "f32".into(),
            threads: 2,
            docs: 100,
            tokens: 20_000,
            seconds: 100.0 / dps,
            docs_per_s: dps,
            tokens_per_s: dps * 200.0,
            padding_ratio: 1.01,
            batches: 4,
            batch_tokens: 4096,
            p50_batch_ms: 10.0,
            p95_batch_ms: 20.0,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
    }

    #[test]
    fn table_and_chart_show_every_device() {
        let rows = [row("cpu", 10.0), row("cuda:0", 250.0)];
        let t = markdown(&rows);
        assert!(t.contains("| cuda:0 |"), "{t}");
        assert!(t.contains("25.00x"), "{t}");
        let s = svg(&rows, "embed <bench>");
        assert_eq!(s.matches("<rect").count(), 3);
        assert!(s.contains("embed &lt;bench&gt;"));
        assert!(s.contains("250.0 docs/s"));
    }
}
