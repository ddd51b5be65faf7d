//! Plain-text renderings for people. `--json` output is serde's, not here.

use std::fmt::Write;

mod bibtex;
mod feed;

pub use bibtex::{bibtex, latex_text};

pub use feed::{render_feed, FeedFormat};

use crate::eval::ModeResult;
use crate::pipeline::{AddReport, BuildReport};
use crate::query::Hit;
use crate::store::{Library, VerifyReport};

/// Cuts `s` to at most `max` characters, marking the cut with "…".
pub fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn year(date: &Option<String>) -> &str {
    date.as_deref().and_then(|d| d.get(..4)).unwrap_or("")
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// A numbered related-work list.
    Markdown,
    /// BibTeX entries ([`bibtex`]).
    Bibtex,
    /// One JSON object `{"query", "results"}`.
    Json,
    /// CSV with a header row ([`csv`](fn@csv)).
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "markdown" | "md" => Ok(Format::Markdown),
            "bibtex" | "bib" => Ok(Format::Bibtex),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(format!(
                "unknown format {s:?}: expected table, markdown, bibtex, json or csv"
            )),
        }
    }
}

/// Renders `hits` for `query` (a string, or an object for related lists).
pub fn render(format: Format, query: &serde_json::Value, hits: &[Hit], width: usize) -> String {
    match format {
        Format::Table => hits_table(hits, width),
        Format::Markdown => markdown(hits),
        Format::Bibtex => bibtex(hits),
        Format::Csv => csv(hits),
        Format::Json => {
            let v = serde_json::json!({ "query": query, "results": hits });
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
    }
}

/// A results table: rank, score, id, year, title, and the reason beneath
/// when there is one.
pub fn hits_table(hits: &[Hit], width: usize) -> String {
    let id_w = hits
        .iter()
        .map(|h| h.id.chars().count())
        .max()
        .unwrap_or(2)
        .clamp(2, 40);
    let title_w = width.saturating_sub(id_w + 22).max(20);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4}  {:>6}  {:<id_w$}  {:<4}  TITLE",
        "#", "SCORE", "ID", "YEAR"
    );
    for h in hits {
        let _ = writeln!(
            out,
            "{:>4}  {:>6.4}  {:<id_w$}  {:<4}  {}",
            h.rank,
            h.score,
            ellipsize(&h.id, id_w),
            year(&h.date),
            ellipsize(&h.title, title_w)
        );
        if let Some(why) = &h.why {
            let indent = " ".repeat(14);
            let w = width.saturating_sub(indent.len() + 12).max(30);
            let _ = writeln!(
                out,
                "{indent}matches {}: \"{}\"",
                why.source,
                ellipsize(&why.source_sentence, w)
            );
            let _ = writeln!(
                out,
                "{indent}with ({:.2}): \"{}\"",
                why.similarity,
                ellipsize(&why.paper_sentence, w)
            );
            if !why.shared_terms.is_empty() {
                let _ = writeln!(out, "{indent}shared terms: {}", why.shared_terms.join(", "));
            }
        }
    }
    out
}

fn authors_short(a: &[String]) -> String {
    match a {
        [] => String::new(),
        [one] => one.clone(),
        [one, two] => format!("{one} and {two}"),
        [first, ..] => format!("{first} et al."),
    }
}

/// A related-work list ready to paste: title, authors, year, link, and why.
pub fn markdown(hits: &[Hit]) -> String {
    let mut out = String::new();
    for h in hits {
        let title = match &h.url {
            Some(u) => format!("[{}]({u})", h.title),
            None => h.title.clone(),
        };
        let mut line = format!("{}. {title}", h.rank);
        let who = authors_short(&h.authors);
        if !who.is_empty() {
            line.push_str(&format!(" — {who}"));
        }
        let y = year(&h.date);
        if !y.is_empty() {
            line.push_str(&format!(" ({y})"));
        }
        let _ = writeln!(out, "{line}");
        if let Some(why) = &h.why {
            let terms = if why.shared_terms.is_empty() {
                String::new()
            } else {
                format!(" Shared terms: {}.", why.shared_terms.join(", "))
            };
            let _ = writeln!(
                out,
                "   - Why: \"{}\" matches {} \"{}\".{terms}",
                ellipsize(&why.paper_sentence, 160),
                why.source,
                ellipsize(&why.source_sentence, 160)
            );
        }
    }
    out
}

/// CSV with a header: rank, id, title, authors (`; `-joined), year, score
/// (the cosine), url, why, fused (hybrid's fusion value), bm25 (keyword's).
pub fn csv(hits: &[Hit]) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "rank", "id", "title", "authors", "year", "score", "url", "why", "fused", "bm25",
    ]);
    for h in hits {
        let _ = w.write_record([
            h.rank.to_string(),
            h.id.clone(),
            h.title.clone(),
            h.authors.join("; "),
            year(&h.date).to_string(),
            format!("{:.6}", h.score),
            h.url.clone().unwrap_or_default(),
            h.why
                .as_ref()
                .map(|w| w.paper_sentence.clone())
                .unwrap_or_default(),
            h.fused.map(|f| format!("{f:.6}")).unwrap_or_default(),
            h.bm25.map(|b| format!("{b:.6}")).unwrap_or_default(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// `papersim build`'s summary, one `name  value` row per line.
pub fn build_summary(r: &BuildReport) -> String {
    let mut out = String::new();
    let rows = [
        ("library", r.library.clone()),
        ("corpus", format!("{} ({})", r.corpus, r.format)),
        ("papers", r.papers.to_string()),
        ("skipped", r.skipped.to_string()),
        ("resumed", r.resumed.to_string()),
        ("device", r.device.clone()),
        ("embed seconds", format!("{:.1}", r.embed.seconds)),
        ("docs/s", format!("{:.1}", r.docs_per_s)),
        ("tokens/s", format!("{:.0}", r.tokens_per_s)),
        ("padding ratio", format!("{:.3}", r.padding_ratio)),
        ("sentences", r.sentences.to_string()),
        // Most sentences are pooled from their paper's pass; the rest cost
        // a pass of their own.
        ("embedded alone", r.sentences_alone.to_string()),
        ("sentence secs", format!("{:.1}", r.sentence_seconds)),
        ("space secs", format!("{:.1}", r.space_seconds)),
        ("index seconds", format!("{:.1}", r.index_seconds)),
        ("total seconds", format!("{:.1}", r.total_seconds)),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    out
}

/// `papersim add`'s summary, one `name  value` row per line.
pub fn add_summary(r: &AddReport) -> String {
    let mut out = String::new();
    let rows = [
        ("library", r.library.clone()),
        ("corpus", r.corpus.clone()),
        ("read", r.read.to_string()),
        ("new", r.new.to_string()),
        (
            "replaced",
            format!(
                "{} ({} with unchanged text, not re-embedded)",
                r.replaced, r.vectors_reused
            ),
        ),
        ("unchanged", r.unchanged.to_string()),
        ("skipped", r.skipped.to_string()),
        ("resumed", r.resumed.to_string()),
        ("embedded", r.embed.docs.to_string()),
        ("docs/s", format!("{:.1}", r.docs_per_s)),
        ("update seconds", format!("{:.1}", r.update_seconds)),
        ("total seconds", format!("{:.1}", r.total_seconds)),
        (
            "now",
            format!(
                "{} live papers, {:.1}% dead rows",
                r.live,
                100.0 * r.dead_fraction
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    if !r.absent.is_empty() {
        const SHOWN: usize = 10;
        let more = r.absent.len().saturating_sub(SHOWN);
        let _ = writeln!(
            out,
            "{:>14}  {} papers of the library are not in the corpus (kept; `papersim remove` drops them): {}{}",
            "absent",
            r.absent.len(),
            r.absent[..r.absent.len().min(SHOWN)].join(" "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    out
}

/// `papersim bench index`'s header and a Markdown table, one row per ef.
pub fn index_bench(r: &crate::bench::index::IndexBench) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} vectors indexed, {} queries, dim {}, M={} ef_construction={}\n\
         build ({} builder) {:.2} s on {} threads, peak RSS {:.0} MB (raw vectors {:.0} MB), exact scan {:.0} q/s on 1 thread\n",
        r.source,
        r.indexed,
        r.queries,
        r.dim,
        r.m,
        r.ef_construction,
        r.builder,
        r.build_s,
        r.build_threads,
        r.peak_rss_mb,
        r.raw_vectors_mb,
        r.exact_qps_1t
    );
    let _ = writeln!(out, "| ef | recall@10 | q/s 1 thread | q/s 2 threads |");
    let _ = writeln!(out, "|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.0} | {:.0} |",
            row.ef, row.recall_at_10, row.qps_1t, row.qps_2t
        );
    }
    out
}

/// One row per (query set, mode).
pub fn eval_table(results: &[(String, ModeResult)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:>7} {:>8} {:>8} {:>10} {:>7} {:>7}  SET",
        "MODE", "QUERIES", "nDCG@10", "nDCG@20", "Recall@100", "MRR@10", "MAP"
    );
    for (set, r) in results {
        let m = &r.metrics;
        let _ = writeln!(
            out,
            "{:<9} {:>7} {:>8.4} {:>8.4} {:>10.4} {:>7.4} {:>7.4}  {set}",
            r.mode.to_string(),
            r.queries,
            m.ndcg10,
            m.ndcg20,
            m.recall100,
            m.mrr10,
            m.map100
        );
    }
    out
}

/// One line per check: ok or the problem.
pub fn verify_report(r: &VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "library {} (generation {}, {} papers)",
        r.library.display(),
        r.generation,
        r.papers
    );
    for c in &r.checks {
        match &c.problem {
            None => {
                let _ = writeln!(out, "  ok    {}: {}", c.file, c.what);
            }
            Some(p) => {
                let _ = writeln!(out, "  FAIL  {}: {}: {p}", c.file, c.what);
            }
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if r.ok {
            "all checks passed"
        } else {
            "library is damaged"
        }
    );
    out
}

/// `papersim info`: the manifest, one `name  value` row per line.
pub fn library_info(lib: &Library) -> String {
    let m = lib.manifest();
    let mut out = String::new();
    let rows = [
        ("library", lib.dir().display().to_string()),
        ("format", format!("{} v{}", m.format, m.format_version)),
        ("generation", m.generation.to_string()),
        ("papers", lib.live_len().to_string()),
        (
            "dead rows",
            format!(
                "{} of {} ({:.1}%; `papersim compact` drops them)",
                m.dead.len(),
                m.papers,
                100.0 * lib.dead_fraction()
            ),
        ),
        ("model", m.model.id.clone()),
        ("weights sha256", m.model.weights_sha256.clone()),
        ("dim", m.dim.to_string()),
        ("pooling", format!("{:?}", m.model.pooling).to_lowercase()),
        ("max seq length", m.model.max_seq_length.to_string()),
        ("text template", m.text_template.as_str().to_string()),
        (
            "index",
            format!(
                "hnsw M={} ef_construction={} ef_search={}, seed {}",
                m.index.m, m.index.ef_construction, m.index.ef_search, m.index.seed
            ),
        ),
        ("sentences", sentences_line(lib)),
        ("disk bytes", lib.disk_bytes().to_string()),
        ("created", m.created.clone()),
        ("updated", m.updated.clone()),
        ("cpu kernels", cpu_kernels_line()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    out
}

/// What the `sentences` mode of `similar` and `related` has to work with.
fn sentences_line(lib: &Library) -> String {
    match lib.sentences() {
        Ok(None) => "none (built with --no-sentences: similar and related rank by hybrid)".into(),
        Ok(Some(s)) if s.space().is_some() => format!(
            "{} vectors ({}), re-ranking space fitted (similar and related re-rank by them)",
            s.len(),
            s.method()
        ),
        Ok(Some(s)) => format!(
            "{} vectors ({}), no re-ranking space (fewer papers than dimensions at build, \
             or built by an older papersim; rebuild to fit one)",
            s.len(),
            s.method()
        ),
        Err(e) => e.to_string(),
    }
}

/// The kernels this machine's CPU encoder runs, and the others it could.
fn cpu_kernels_line() -> String {
    match crate::embed::cpu_kernels() {
        Ok(k) => format!(
            "{} (this CPU runs {}; PAPERSIM_ISA picks one)",
            k.selected,
            k.available.join(", ")
        ),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsize_counts_chars_not_bytes() {
        assert_eq!(ellipsize("abc", 3), "abc");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("日本語テキスト", 3), "日本…");
    }

    #[test]
    fn table_has_one_row_per_hit() {
        let hit = Hit {
            rank: 1,
            id: "2101.00001".into(),
            title: "A title".into(),
            score: 0.5,
            fused: None,
            bm25: None,
            authors: vec![],
            date: Some("2021-01-01".into()),
            url: None,
            categories: vec![],
            doi: None,
            journal: None,
            booktitle: None,
            eprint: None,
            why: None,
        };
        let t = hits_table(&[hit.clone(), Hit { rank: 2, ..hit }], 80);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("2021"));
        assert!(t.contains("0.5000"));
    }
}
