//! Plain-text renderings for people. `--json` output is serde's, not here.

use std::fmt::Write;

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
    /// An aligned plain-text table for the terminal ([`hits_table`]).
    Table,
    /// A numbered related-work list with links ([`markdown`]).
    Markdown,
    /// BibTeX `@misc` entries ([`bibtex`]).
    Bibtex,
    /// Pretty-printed JSON: the query and the hits as serde writes them.
    Json,
    /// CSV with a header row ([`csv()`]).
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

/// CSV with a header: rank, id, title, authors (`; `-joined), year, score, url.
pub fn csv(hits: &[Hit]) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "rank", "id", "title", "authors", "year", "score", "url", "why",
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
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// BibTeX `@misc` entries. Keys are `lastnameYEARfirstword`, made unique
/// within the list by a letter suffix, so the same paper gets the same key
/// run after run; arXiv ids become `eprint` with `archivePrefix = {arXiv}`.
pub fn bibtex(hits: &[Hit]) -> String {
    let mut used: Vec<String> = Vec::new();
    let mut out = String::new();
    for h in hits {
        let base = bib_key(h);
        let mut key = base.clone();
        let mut suffix = b'a';
        while used.contains(&key) {
            key = format!("{base}{}", suffix as char);
            suffix = suffix.saturating_add(1);
        }
        used.push(key.clone());
        let mut fields: Vec<(&str, String)> =
            vec![("title", format!("{{{}}}", bib_escape(&h.title)))];
        if !h.authors.is_empty() {
            let a: Vec<String> = h.authors.iter().map(|a| bib_escape(a)).collect();
            fields.push(("author", a.join(" and ")));
        }
        let y = year(&h.date);
        if !y.is_empty() {
            fields.push(("year", y.to_string()));
        }
        if is_arxiv_id(&h.id) {
            fields.push(("eprint", h.id.clone()));
            fields.push(("archivePrefix", "arXiv".into()));
            if let Some(c) = h.categories.first() {
                fields.push(("primaryClass", bib_escape(c)));
            }
        }
        if let Some(u) = &h.url {
            fields.push(("url", u.replace(['{', '}'], "")));
        }
        let _ = writeln!(out, "@misc{{{key},");
        for (name, value) in &fields {
            let _ = writeln!(out, "  {name} = {{{value}}},");
        }
        let _ = writeln!(out, "}}\n");
    }
    out
}

fn bib_key(h: &Hit) -> String {
    let ascii = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    let last = h
        .authors
        .first()
        .and_then(|a| a.split_whitespace().last())
        .map(ascii)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "anon".into());
    let word = h
        .title
        .split_whitespace()
        .map(ascii)
        .find(|w| w.len() > 3)
        .unwrap_or_else(|| "paper".into());
    format!("{last}{}{word}", year(&h.date))
}

/// Escapes LaTeX's special characters and drops braces (an unbalanced brace
/// would break the whole file).
fn bib_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '{' | '}' | '\\' => {}
            '&' | '%' | '#' | '_' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// New-style (`2101.00001`, optional version) or old-style (`cs/0112017`) arXiv ids.
fn is_arxiv_id(id: &str) -> bool {
    let id = id
        .split_once('v')
        .filter(|(_, v)| v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty())
        .map_or(id, |(b, _)| b);
    let new = id.len() >= 9
        && id.split_once('.').is_some_and(|(a, b)| {
            a.len() == 4
                && a.chars().all(|c| c.is_ascii_digit())
                && (4..=5).contains(&b.len())
                && b.chars().all(|c| c.is_ascii_digit())
        });
    let old = id.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '.')
            && b.len() == 7
            && b.chars().all(|c| c.is_ascii_digit())
    });
    new || old
}

/// What `papersim build` did, one `key  value` line each: counts, device,
/// throughput and timings.
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
        ("index seconds", format!("{:.1}", r.index_seconds)),
        ("total seconds", format!("{:.1}", r.total_seconds)),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>14}  {v}");
    }
    out
}

/// What `papersim add` did, one `key  value` line each: papers new,
/// replaced, unchanged and skipped, throughput, and the library's live and
/// dead rows afterwards.
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
    out
}

/// The `bench index` result: a header paragraph on the build, then a
/// markdown table of recall@10 and queries/s per `ef`.
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
        "{:<8} {:>7} {:>8} {:>8} {:>10} {:>7} {:>7}  SET",
        "MODE", "QUERIES", "nDCG@10", "nDCG@20", "Recall@100", "MRR@10", "MAP"
    );
    for (set, r) in results {
        let m = &r.metrics;
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>8.4} {:>8.4} {:>10.4} {:>7.4} {:>7.4}  {set}",
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

/// What `papersim info` prints, one `key  value` line each: size, dead rows,
/// model, index parameters and dates, from the library's manifest.
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
            categories: vec![],
            why: None,
        };
        let t = hits_table(&[hit.clone(), Hit { rank: 2, ..hit }], 80);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("2021"));
        assert!(t.contains("0.5000"));
    }

    #[test]
    fn arxiv_ids_are_recognised() {
        assert!(is_arxiv_id("2101.00001"));
        assert!(is_arxiv_id("1812.06145v2"));
        assert!(is_arxiv_id("cs/0112017"));
        assert!(!is_arxiv_id("objective-mismatch"));
        assert!(!is_arxiv_id("4983"));
    }

    #[test]
    fn bibtex_keys_are_unique_and_special_characters_escaped() {
        let hit = Hit {
            rank: 1,
            id: "2101.00001".into(),
            title: "Fast {Unbalanced & Sparse} 100% attention".into(),
            score: 0.5,
            authors: vec!["Ada Lovelace".into(), "Alan Turing".into()],
            date: Some("2021-01-01".into()),
            url: Some("https://arxiv.org/abs/2101.00001".into()),
            categories: vec!["cs.LG".into()],
            why: None,
        };
        let b = bibtex(&[hit.clone(), Hit { rank: 2, ..hit }]);
        assert!(b.contains("@misc{lovelace2021fast,"), "{b}");
        assert!(b.contains("@misc{lovelace2021fasta,"), "{b}");
        assert!(b.contains(r"Unbalanced \& Sparse 100\% attention"), "{b}");
        assert!(b.contains("eprint = {2101.00001}"), "{b}");
        assert!(b.contains("author = {Ada Lovelace and Alan Turing}"), "{b}");
    }
}
