//! Why a paper was recommended: the sentence of the draft (or seed, or
//! query) it matches best, the sentence of the paper that matches it, and
//! the distinctive words they share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::QueryError;
use crate::embed::Embedder;
use crate::index::dot;
use crate::store::Library;

/// The explanation attached to one hit: the closest pair of sentences
/// between what was asked and the paper, and the words they have in common.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    /// What the matched sentence comes from: "draft", "query" or "seed ID".
    pub source: String,
    /// The sentence of that source closest to the paper.
    pub source_sentence: String,
    /// The sentence of the paper (its title counts as one) closest to
    /// `source_sentence`.
    pub paper_sentence: String,
    /// Cosine similarity of the two sentences.
    pub similarity: f32,
    /// Up to 5 distinctive words the sources and the paper share, rarest in
    /// the library first, spelt as in the paper.
    pub shared_terms: Vec<String>,
}

/// Sentences of the draft, seed or query that take part.
const MAX_SENTENCES: usize = 24;
/// Sentences of each paper that take part (its title counts as one):
/// bounds the embedding work of an explanation, which is most of its cost.
const PAPER_SENTENCES: usize = 6;
const SHARED_TERMS: usize = 5;

/// Splits prose into sentences at `.`, `!` or `?` followed by a space and an
/// upper-case letter or digit, keeping common abbreviations ("e.g.", "et
/// al.", "Fig.") and decimals inside their sentence.
pub fn split_sentences(text: &str) -> Vec<String> {
    const ABBREVIATIONS: [&str; 10] = [
        "e.g.", "i.e.", "al.", "fig.", "eq.", "vs.", "cf.", "sec.", "approx.", "etc.",
    ];
    let mut out = Vec::new();
    let mut current = String::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(w);
        let ends = w.ends_with(['.', '!', '?'])
            && !ABBREVIATIONS.contains(&w.to_lowercase().as_str())
            && words
                .get(i + 1)
                .and_then(|n| n.chars().next())
                .is_none_or(|c| c.is_uppercase() || c.is_ascii_digit());
        if ends {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A labelled text the results are explained against.
pub(crate) struct Source {
    pub label: String,
    pub text: String,
}

/// Rows whose sentence vectors [`SentenceCache`] keeps: ~10 sentences of
/// 384 floats each, about 15 KB a row, so at most ~30 MB.
const CACHE_ROWS: usize = 2048;

/// One paper's sentences (its title first) and their vectors, as embedded by
/// the model `model` names.
struct RowSentences {
    model: String,
    sentences: Vec<String>,
    vectors: Vec<f32>,
}

/// Sentence vectors of explained papers, by row, least recently used
/// evicted first. Lives as long as the open library (a new generation is a
/// new `Library`, so rows never go stale); entries embedded by another model
/// or precision are ignored.
#[derive(Default)]
pub struct SentenceCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    tick: u64,
    rows: HashMap<usize, (u64, Arc<RowSentences>)>,
}

impl SentenceCache {
    fn get(&self, row: usize, model: &str) -> Option<Arc<RowSentences>> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.tick += 1;
        let tick = c.tick;
        let e = c.rows.get_mut(&row)?;
        if e.1.model != model {
            return None;
        }
        e.0 = tick;
        Some(e.1.clone())
    }

    fn put(&self, row: usize, entry: Arc<RowSentences>) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.tick += 1;
        let tick = c.tick;
        c.rows.insert(row, (tick, entry));
        if c.rows.len() > CACHE_ROWS {
            // Evict the oldest eighth at once: one O(n) pass per CACHE_ROWS/8
            // insertions rather than one per insertion.
            let mut ticks: Vec<u64> = c.rows.values().map(|e| e.0).collect();
            let cut = ticks.len() / 8;
            let (_, &mut limit, _) = ticks.select_nth_unstable(cut);
            c.rows.retain(|_, e| e.0 > limit);
        }
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sentences of a paper that take part: its title, then the first
/// [`PAPER_SENTENCES`] - 1 sentences of its abstract.
fn paper_sentences(p: &crate::corpus::Paper) -> Vec<String> {
    std::iter::once(p.title.clone())
        .chain(split_sentences(&p.abstract_text))
        .filter(|s| !s.trim().is_empty())
        .take(PAPER_SENTENCES)
        .collect()
}

/// Fills `why` of each hit: embeds the sources' sentences and those of the
/// hits not in the library's [`SentenceCache`] in one batch, and picks the
/// closest pair per hit.
pub(crate) fn explain(
    lib: &Library,
    embedder: &Embedder,
    sources: &[Source],
    hits: &mut [super::Hit],
) -> Result<(), QueryError> {
    let info = embedder.info();
    let model = format!("{} {:?}", info.weights_sha256, info.precision);
    let dim = info.dim;
    let cache = lib.sentence_cache();
    let mut texts: Vec<String> = Vec::new();
    let mut src_sent: Vec<(usize, usize)> = Vec::new(); // (source, index into texts)
    for (s, src) in sources.iter().enumerate() {
        for sent in split_sentences(&src.text).into_iter().take(MAX_SENTENCES) {
            src_sent.push((s, texts.len()));
            texts.push(sent);
        }
    }
    if src_sent.is_empty() {
        return Ok(());
    }
    // Per hit: its row and cached sentences, or the range of `texts` that
    // holds its sentences to embed now.
    enum Pending {
        None,
        Cached(usize, Arc<RowSentences>),
        New(usize, std::ops::Range<usize>),
    }
    let mut pending = Vec::with_capacity(hits.len());
    for h in hits.iter() {
        let Some(row) = lib.row_of(&h.id) else {
            pending.push(Pending::None);
            continue;
        };
        if let Some(c) = cache.get(row, &model) {
            pending.push(Pending::Cached(row, c));
            continue;
        }
        let start = texts.len();
        let p = lib.paper(row)?;
        texts.extend(paper_sentences(&p));
        pending.push(Pending::New(row, start..texts.len()));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (vectors, _) = embedder.embed(&refs, &|_| {})?;
    let v = |i: usize| &vectors[i * dim..(i + 1) * dim];
    let all_sources: String = sources
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for (h, p) in hits.iter_mut().zip(pending) {
        let (row, mine) = match p {
            Pending::None => continue,
            Pending::Cached(row, c) => (row, c),
            Pending::New(row, r) => {
                let entry = Arc::new(RowSentences {
                    model: model.clone(),
                    sentences: texts[r.clone()].to_vec(),
                    vectors: vectors[r.start * dim..r.end * dim].to_vec(),
                });
                cache.put(row, entry.clone());
                (row, entry)
            }
        };
        let best = src_sent
            .iter()
            .flat_map(|&(s, a)| (0..mine.sentences.len()).map(move |b| (s, a, b)))
            .map(|(s, a, b)| (dot(v(a), &mine.vectors[b * dim..(b + 1) * dim]), s, a, b))
            .max_by(|x, y| x.0.total_cmp(&y.0));
        let Some((sim, s, a, b)) = best else {
            continue;
        };
        let paper_text = super::paper_text(lib, row)?;
        h.why = Some(Why {
            source: sources[s].label.clone(),
            source_sentence: texts[a].clone(),
            paper_sentence: mine.sentences[b].clone(),
            similarity: sim,
            shared_terms: lib
                .keyword()?
                .shared_terms(&all_sources, &paper_text, SHARED_TERMS),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_not_abbreviations() {
        let s = split_sentences(
            "We study X, e.g. in vision. Results improve by 3.5 points! Is it new? \
             Yes, see Fig. 2 and Smith et al. for details. 42 runs confirm it.",
        );
        assert_eq!(
            s,
            vec![
                "We study X, e.g. in vision.",
                "Results improve by 3.5 points!",
                "Is it new?",
                "Yes, see Fig. 2 and Smith et al. for details.",
                "42 runs confirm it.",
            ]
        );
        assert!(split_sentences("").is_empty());
        assert_eq!(split_sentences("no end"), vec!["no end"]);
    }
}
