//! Why a paper was recommended: the sentence of the draft (or seed, or
//! query) it matches best, the sentence of the paper that matches it, and
//! the distinctive words they share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::align::QuerySentences;
use super::QueryError;
use crate::corpus::{paper_sentences, sentence_ranges, split_sentences};
use crate::embed::{Embedder, Role, SentenceMethod, SentenceReach, TextSentences};
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

/// The sentences of a paper that take part when they must be embedded now:
/// its title, then the first [`PAPER_SENTENCES`] - 1 sentences of its
/// abstract.
fn first_sentences(p: &crate::corpus::Paper) -> Vec<String> {
    let mut s = paper_sentences(p);
    s.truncate(PAPER_SENTENCES);
    s
}

/// Fills `why` of each hit from the library's stored sentence vectors,
/// given the sources' sentence vectors (`source_sentences[i]` is sentence
/// `i` of `texts`, labelled by `labels[i]`): no model call. False (nothing
/// done) when the library stores no sentence vectors.
pub(crate) fn explain_stored(
    lib: &Library,
    labels: &[&str],
    texts: &[String],
    source_sentences: &[f32],
    all_sources: &str,
    hits: &mut [super::Hit],
) -> Result<bool, QueryError> {
    let Some(stored) = lib.sentences()? else {
        return Ok(false);
    };
    let dim = lib.vectors().dim();
    // Quantized one sentence at a time, so that a zero vector (dropped by
    // `QuerySentences`) cannot shift the indexes of the others.
    let per_sentence: Vec<QuerySentences> = source_sentences
        .chunks_exact(dim)
        .take(texts.len().min(labels.len()))
        .map(|v| QuerySentences::new(v, dim, None))
        .collect();
    for h in hits.iter_mut() {
        let Some(row) = lib.row_of(&h.id) else {
            continue;
        };
        let best = per_sentence
            .iter()
            .enumerate()
            .filter_map(|(a, q)| q.best_pair(stored, row).map(|(_, b, sim)| (a, b, sim)))
            .max_by(|x, y| x.2.total_cmp(&y.2));
        let Some((a, b, sim)) = best else {
            continue;
        };
        let paper = lib.paper(row)?;
        let Some(paper_sentence) = paper_sentences(&paper).into_iter().nth(b) else {
            continue;
        };
        let paper_text = super::paper_text(lib, row)?;
        h.why = Some(Why {
            source: labels[a].to_string(),
            source_sentence: texts[a].clone(),
            paper_sentence,
            similarity: sim,
            shared_terms: lib
                .keyword()?
                .shared_terms(all_sources, &paper_text, SHARED_TERMS),
        });
    }
    Ok(true)
}

/// Explains search hits without the model when the library stores sentence
/// vectors and the query is one sentence whose vector is at hand (the
/// query's own): false when the model is needed ([`explain`]).
pub(crate) fn explain_query_stored(
    lib: &Library,
    query: &str,
    vector: &[f32],
    hits: &mut [super::Hit],
) -> Result<bool, QueryError> {
    let sentences = split_sentences(query);
    if sentences.len() != 1 || !lib.has_sentences() {
        return Ok(false);
    }
    explain_stored(lib, &["query"], &sentences, vector, query, hits)
}

/// A source text embedded with its sentences by [`embed_source`].
pub(crate) struct EmbeddedSource {
    /// The text's vector.
    pub vector: Vec<f32>,
    /// Its first sentences.
    pub sentences: Vec<String>,
    /// Their vectors, `n · dim` floats.
    pub sentence_vectors: Vec<f32>,
}

/// A source text's vector, its first `max` sentences and their vectors,
/// made the way the library's stored sentences were (contextual ones from
/// the text's own pass, every sentence counting). The text is what was
/// asked: it gets the query prompt.
pub(crate) fn embed_source(
    lib: &Library,
    embedder: &Embedder,
    text: &str,
    max: usize,
) -> Result<EmbeddedSource, QueryError> {
    let sentences: Vec<String> = split_sentences(text).into_iter().take(max).collect();
    let spans: Vec<Option<std::ops::Range<usize>>> = sentence_ranges(text)
        .into_iter()
        .take(sentences.len())
        .map(Some)
        .collect();
    let method = lib
        .sentences()?
        .map_or(SentenceMethod::Contextual, |s| s.method());
    let wanted = TextSentences {
        sentences: &sentences,
        spans: &spans,
    };
    let got = embedder.embed_with_sentences(
        Role::Query,
        method,
        SentenceReach::All,
        &[text],
        &[wanted],
        &|_| {},
    )?;
    Ok(EmbeddedSource {
        sentence_vectors: got.sentences.into_iter().next().unwrap_or_default(),
        vector: got.vectors,
        sentences,
    })
}

/// Fills `why` of each hit: embeds the sources' sentences, then takes the
/// hits' sentence vectors from the library when it stores them, otherwise
/// embeds those not in the library's [`SentenceCache`] in the same batch,
/// and picks the closest pair per hit.
pub(crate) fn explain(
    lib: &Library,
    embedder: &Embedder,
    sources: &[Source],
    hits: &mut [super::Hit],
) -> Result<(), QueryError> {
    if lib.has_sentences() {
        let mut labels = Vec::new();
        let mut texts = Vec::new();
        let mut vectors = Vec::new();
        for src in sources {
            let got = embed_source(lib, embedder, &src.text, MAX_SENTENCES)?;
            labels.extend(std::iter::repeat_n(src.label.as_str(), got.sentences.len()));
            texts.extend(got.sentences);
            vectors.extend(got.sentence_vectors);
        }
        if texts.is_empty() {
            return Ok(());
        }
        let all_sources: String = sources
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        explain_stored(lib, &labels, &texts, &vectors, &all_sources, hits)?;
        return Ok(());
    }
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
    let first_paper = texts.len();
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
        texts.extend(first_sentences(&p));
        pending.push(Pending::New(row, start..texts.len()));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Queries' and papers' sentences, each with its role's prompt (the
    // papers' as the library embedded them): two calls, as a prompt is
    // per call.
    let (queries, _) = embedder.embed_as(Role::Query, &refs[..first_paper], &|_| {})?;
    let (papers, _) = embedder.embed_as(Role::Document, &refs[first_paper..], &|_| {})?;
    let vectors = [queries, papers].concat();
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
