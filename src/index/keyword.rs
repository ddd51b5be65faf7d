//! BM25 keyword search (tantivy) over the same text the model embeds.
//!
//! One text field, analysed with tantivy's English stemmer, and a fast `row`
//! field mapping each document back to its vector row. Queries are built
//! from the analysed query terms directly (an OR of term queries, scored by
//! BM25) rather than through tantivy's query language, so that colons,
//! quotes or a pasted abstract never turn into a syntax error.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};

use super::{IndexError, Neighbor};

const TOKENIZER: &str = "en_stem";
/// The indexer's memory budget; tantivy's minimum is 15 MB per thread.
const WRITER_BYTES: usize = 64 << 20;

/// An opened BM25 keyword index over a library's texts (one document per
/// row); built with [`KeywordIndex::build`] or [`KeywordIndex::extend`].
pub struct KeywordIndex {
    index: Index,
    reader: IndexReader,
    text: Field,
}

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let text = b.add_text_field("text", opts);
    let row = b.add_u64_field("row", FAST);
    (b.build(), text, row)
}

fn err(dir: &Path) -> impl Fn(tantivy::TantivyError) -> IndexError + '_ {
    move |e| IndexError::Keyword {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

impl KeywordIndex {
    /// Indexes `texts` (row i is `texts[i]`) into the empty directory `dir`.
    pub fn build(dir: &Path, texts: &[String]) -> Result<(), IndexError> {
        let e = err(dir);
        let (schema, text, row) = schema();
        let index = Index::create_in_dir(dir, schema).map_err(&e)?;
        // One thread, one segment: deterministic, and fast enough (tens of
        // thousands of abstracts per second).
        let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_BYTES).map_err(&e)?;
        for (i, t) in texts.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(text, t);
            doc.add_u64(row, i as u64);
            writer.add_document(doc).map_err(&e)?;
        }
        writer.commit().map_err(&e)?;
        writer.wait_merging_threads().map_err(&e)?;
        Ok(())
    }

    /// Makes `to` (an empty directory) the index of `from` plus `texts` as
    /// rows `first_row`, ... . `from` is never written: tantivy's segment
    /// files are immutable, so they are hard-linked (copied across
    /// filesystems), and only the new documents are indexed.
    pub fn extend(
        from: &Path,
        to: &Path,
        first_row: usize,
        texts: &[String],
    ) -> Result<(), IndexError> {
        let io = |path: &Path, e: std::io::Error| IndexError::Keyword {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
            let src = entry.map_err(|e| io(from, e))?.path();
            let Some(name) = src.file_name() else {
                continue;
            };
            if !src.is_file() || name.to_string_lossy().ends_with(".lock") {
                continue;
            }
            let dst = to.join(name);
            // tantivy replaces meta.json and .managed.json by rename, never in
            // place, so even those may share an inode with `from`.
            if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).map_err(|e| io(&dst, e))?;
            }
        }
        let e = err(to);
        let index = Index::open_in_dir(to).map_err(&e)?;
        let schema = index.schema();
        let text = schema.get_field("text").map_err(&e)?;
        let row = schema.get_field("row").map_err(&e)?;
        let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_BYTES).map_err(&e)?;
        for (i, t) in texts.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(text, t);
            doc.add_u64(row, (first_row + i) as u64);
            writer.add_document(doc).map_err(&e)?;
        }
        writer.commit().map_err(&e)?;
        writer.wait_merging_threads().map_err(&e)?;
        Ok(())
    }

    /// Opens the index in `dir` for searching; fails when `dir` holds no
    /// tantivy index with a `text` field.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let e = err(dir);
        let index = Index::open_in_dir(dir).map_err(&e)?;
        let text = index.schema().get_field("text").map_err(&e)?;
        let reader = index.reader().map_err(&e)?;
        Ok(KeywordIndex {
            index,
            reader,
            text,
        })
    }

    /// Documents (papers) indexed.
    pub fn len(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    /// Whether no documents are indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The analysed terms of `text` (lowercased, stemmed, stop words kept as
    /// the analyser keeps them), deduplicated in order.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut out: Vec<String> = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Distinctive terms that `a` and `b` share, rarest in the library first,
    /// at most `n`, as the words appear in `b`. Terms in more than a tenth
    /// of the papers ("model", "method") explain nothing and are left out.
    pub fn shared_terms(&self, a: &str, b: &str, n: usize) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.text) else {
            return Vec::new();
        };
        let in_a = self.terms(a);
        let mut seen: Vec<String> = Vec::new();
        let mut surface: Vec<(String, String)> = Vec::new();
        let mut stream = analyzer.token_stream(b);
        while stream.advance() {
            let tok = stream.token();
            if tok.text.chars().count() < 3
                || tok.text.chars().all(|c| c.is_ascii_digit())
                || seen.contains(&tok.text)
                || !in_a.contains(&tok.text)
            {
                continue;
            }
            seen.push(tok.text.clone());
            let word = b
                .get(tok.offset_from..tok.offset_to)
                .unwrap_or(&tok.text)
                .to_lowercase();
            surface.push((tok.text.clone(), word));
        }
        let searcher = self.reader.searcher();
        let total = searcher.num_docs().max(1);
        let mut scored: Vec<(u64, String)> = surface
            .into_iter()
            .filter_map(|(stem, word)| {
                let df = searcher
                    .doc_freq(&Term::from_field_text(self.text, &stem))
                    .ok()?;
                (df * 10 <= total).then_some((df, word))
            })
            .collect();
        scored.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
        scored.into_iter().take(n).map(|(_, w)| w).collect()
    }

    /// The analysed terms of `text` with how often each occurs, in order of
    /// first occurrence.
    fn term_counts(&self, text: &str) -> Vec<(String, u32)> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut out: Vec<(String, u32)> = Vec::new();
        while stream.advance() {
            let t = &stream.token().text;
            match out.iter_mut().find(|(s, _)| s == t) {
                Some(e) => e.1 += 1,
                None => out.push((t.clone(), 1)),
            }
        }
        out
    }

    /// The query terms BM25 is asked for. A query of at most `max_terms`
    /// distinct terms (a search phrase, a claim) keeps all of them, each
    /// once, as before. A longer one (a whole abstract) keeps its
    /// `max_terms` most distinctive terms by tf·idf against this index, each
    /// weighted by its count in the query: an OR of every word of an
    /// abstract is dominated by common words that match half the library.
    pub fn query_terms(&self, text: &str, max_terms: usize) -> Vec<(String, f32)> {
        let counts = self.term_counts(text);
        if counts.len() <= max_terms {
            return counts.into_iter().map(|(t, _)| (t, 1.0)).collect();
        }
        let searcher = self.reader.searcher();
        let docs = searcher.num_docs() as f32;
        let df = |t: &str| {
            searcher
                .doc_freq(&Term::from_field_text(self.text, t))
                .unwrap_or(0) as f32
        };
        let scored: Vec<(String, u32, f32)> = counts
            .into_iter()
            .filter_map(|(t, tf)| {
                let df = df(&t);
                // A term no paper has cannot match anything.
                (df > 0.0).then(|| {
                    let w = tf as f32 * idf(docs, df);
                    (t, tf, w)
                })
            })
            .collect();
        select_terms(scored, max_terms)
    }

    /// Whether `text` is long enough to be taken for a paper (more than
    /// [`PAPER_QUERY_TERMS`] distinct analysed terms).
    pub fn is_paper_query(&self, text: &str) -> bool {
        self.term_counts(text).len() > PAPER_QUERY_TERMS
    }

    /// Top `limit` rows by BM25, best first; `keep` filters rows. Long
    /// queries are cut to their [`PAPER_QUERY_TERMS`] most distinctive
    /// terms ([`KeywordIndex::query_terms`]).
    pub fn search(
        &self,
        text: &str,
        limit: usize,
        keep: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let terms = self.query_terms(text, PAPER_QUERY_TERMS);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|(t, w)| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, t),
                    IndexRecordOption::WithFreqs,
                ));
                let q = if *w == 1.0 {
                    q
                } else {
                    Box::new(BoostQuery::new(q, *w))
                };
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let e = |e: tantivy::TantivyError| IndexError::Keyword {
            path: Path::new("keyword index").to_path_buf(),
            reason: e.to_string(),
        };
        // Filtering happens after ranking, so ask for more than `limit`
        // and widen to everything when the filter is too selective.
        let total = searcher.num_docs() as usize;
        let rows = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("row"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let mut want = limit.saturating_mul(4).max(200).min(total.max(1));
        loop {
            let top = searcher
                .search(&query, &TopDocs::with_limit(want).order_by_score())
                .map_err(e)?;
            let mut hits = Vec::with_capacity(limit);
            for (score, addr) in &top {
                let Some(row) = rows
                    .get(addr.segment_ord as usize)
                    .and_then(|c| c.first(addr.doc_id))
                else {
                    continue;
                };
                let row = row as usize;
                if keep(row) {
                    hits.push(Neighbor { row, score: *score });
                    if hits.len() == limit {
                        break;
                    }
                }
            }
            if hits.len() == limit || top.len() < want || want >= total {
                return Ok(hits);
            }
            want = total;
        }
    }
}

/// A query with more distinct terms than this is taken for a paper and cut
/// to this many distinctive terms (see [`KeywordIndex::query_terms`]).
/// Search phrases and claims are well under it (SciFact's 1,109 claims have
/// at most 32 distinct words, 12 on average), abstracts well over
/// (CiteSeer's title + abstract: median 95). On CiteSeer's citation links
/// (keyword nDCG@10) 20, 30, 40, 50 and 70 terms give 0.3321, 0.3413,
/// 0.3467, 0.3505 and 0.3507, every term 0.3268 (docs/evaluation.md).
pub const PAPER_QUERY_TERMS: usize = 50;

/// BM25's (Lucene's) inverse document frequency of a term in `df` of `docs`
/// documents.
fn idf(docs: f32, df: f32) -> f32 {
    (1.0 + (docs - df + 0.5) / (df + 0.5)).ln()
}

/// The `n` terms of highest weight, each boosted by its count in the query;
/// ties go to the earlier term, so the choice is deterministic.
fn select_terms(mut scored: Vec<(String, u32, f32)>, n: usize) -> Vec<(String, f32)> {
    // A stable sort keeps first-occurrence order among equal weights.
    scored.sort_by(|a, b| b.2.total_cmp(&a.2));
    scored.truncate(n);
    scored
        .into_iter()
        .map(|(t, tf, _)| (t, tf as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_terms_keeps_the_heaviest_with_query_counts() {
        let scored = vec![
            ("the".to_string(), 5, 0.5),
            ("graph".to_string(), 2, 4.0),
            ("kernel".to_string(), 1, 3.0),
            ("walk".to_string(), 1, 3.0),
        ];
        let got = select_terms(scored, 2);
        assert_eq!(
            got,
            vec![("graph".to_string(), 2.0), ("kernel".to_string(), 1.0)]
        );
    }

    #[test]
    fn long_queries_keep_their_rarest_terms_and_short_ones_all() {
        let dir = tempfile::tempdir().unwrap();
        let texts: Vec<String> = (0..20)
            .map(|i| format!("the model of paper {i}"))
            .chain(["the spectral graph kernel".to_string()])
            .collect();
        KeywordIndex::build(dir.path(), &texts).unwrap();
        let idx = KeywordIndex::open(dir.path()).unwrap();
        // At most `max_terms` distinct terms: all of them, weight 1.
        let short = idx.query_terms("the model model", 5);
        assert_eq!(
            short,
            vec![("the".to_string(), 1.0), ("model".to_string(), 1.0)]
        );
        // Longer: the rarest terms; a term no paper has is dropped.
        let long = idx.query_terms("the model of the spectral kernel zzz", 2);
        let terms: Vec<&str> = long.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms, vec!["spectral", "kernel"]);
        let sixty: String = (0..60).map(|i| format!("w{i} ")).collect();
        assert!(idx.is_paper_query(&sixty));
        assert!(!idx.is_paper_query("spectral graph kernels"));
    }

    #[test]
    fn idf_falls_with_document_frequency() {
        assert!(idf(1000.0, 1.0) > idf(1000.0, 10.0));
        assert!(idf(1000.0, 999.0) > 0.0);
    }
}
