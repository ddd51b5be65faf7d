//! Plain-text renderings for people. `--json` output is serde's, not here.

use std::fmt::Write;

use crate::pipeline::BuildReport;
use crate::query::Hit;
use crate::store::Library;

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

/// A results table: rank, score, id, year, title.
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
    }
    out
}

pub fn build_summary(r: &BuildReport) -> String {
    let mut out = String::new();
    let rows = [
        ("library", r.library.clone()),
        ("corpus", format!("{} ({})", r.corpus, r.format)),
        ("papers", r.papers.to_string()),
        ("skipped", r.skipped.to_string()),
        ("device", r.device.clone()),
        ("embed seconds", format!("{:.1}", r.embed.seconds)),
        ("docs/s", format!("{:.1}", r.docs_per_s)),
        ("tokens/s", format!("{:.0}", r.tokens_per_s)),
        ("padding ratio", format!("{:.3}", r.padding_ratio)),
        ("index seconds", format!("{:.1}", r.index_seconds)),
        ("total seconds", format!("{:.1}", r.total_seconds)),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    out
}

pub fn library_info(lib: &Library) -> String {
    let m = lib.manifest();
    let mut out = String::new();
    let rows = [
        ("library", lib.dir().display().to_string()),
        ("format", format!("{} v{}", m.format, m.format_version)),
        ("generation", m.generation.to_string()),
        ("papers", m.papers.to_string()),
        ("model", m.model.id.clone()),
        ("weights sha256", m.model.weights_sha256.clone()),
        ("dim", m.dim.to_string()),
        ("pooling", format!("{:?}", m.model.pooling).to_lowercase()),
        ("max seq length", m.model.max_seq_length.to_string()),
        ("text template", m.text_template.as_str().to_string()),
        (
            "index",
            format!(
                "hnsw M={} ef_construction={} ef_search={}",
                m.index.m, m.index.ef_construction, m.index.ef_search
            ),
        ),
        ("disk bytes", lib.disk_bytes().to_string()),
        ("created", m.created.clone()),
        ("updated", m.updated.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    out
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
            authors: vec![],
            date: Some("2021-01-01".into()),
            url: None,
        };
        let t = hits_table(&[hit.clone(), Hit { rank: 2, ..hit }], 80);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("2021"));
        assert!(t.contains("0.5000"));
    }
}
