//! BM25 keyword search (tantivy) over the same text the model embeds.
//!
//! One text field, analysed with tantivy's English stemmer, and a fast `row`
//! field mapping each document back to its vector row. Queries are built
//! from the analysed query terms directly (an OR of term queries, scored by
//! BM25) rather than through tantivy's query language, so that colons,
//! quotes or a pasted abstract never turn into a syntax error.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
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

    /// Top `limit` rows by BM25, best first; `keep` filters rows.
    pub fn search(
        &self,
        text: &str,
        limit: usize,
        keep: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let terms = self.terms(text);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q = TermQuery::new(
                    Term::from_field_text(self.text, t),
                    IndexRecordOption::WithFreqs,
                );
                (Occur::Should, Box::new(q) as Box<dyn Query>)
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
