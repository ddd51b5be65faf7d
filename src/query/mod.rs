//! Answering "papers like this": from a query sentence, a paper id, or a
//! draft and seed papers ([`related`]), by dense, keyword or hybrid ranking,
//! or hybrid re-ranked by whitened cosine and sentence alignment
//! ([`Mode::Sentences`]).

mod align;
mod explain;
mod feed;
mod filter;
mod related;
mod session;

use std::str::FromStr;

use serde::Serialize;

use crate::corpus::Paper;
use crate::embed::{EmbedError, Embedder, Precision, Role};
use crate::index::{exact_search, IndexError, Neighbor};
use crate::store::{Library, StoreError};

pub use crate::corpus::split_sentences;
pub use align::align;
pub use explain::{SentenceCache, Why};
pub use feed::{
    feed, profile_rows, rank_feed, rank_library, Because, Candidate, Feed, FeedHit, FeedRequest,
    ProfileScorer, FEED_POWER,
};
pub use filter::{parse_date_bound, Filter};
pub use related::{rank_positives, related, Fusion, Positive, RelatedRequest};
pub use session::{load_embedder, ModelChoice, Needs, Session};

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A paper id given (to `similar`, or as a `related` seed) is not a live
    /// paper of the library.
    #[error("no paper with id {id:?} in the library{}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownPaper {
        /// The id as given.
        id: String,
        /// A live id that is probably what was meant (same id ignoring case
        /// and version suffix, else the longest common prefix), if any.
        suggestion: Option<String>,
    },
    /// A search text is empty or only whitespace.
    #[error("the query is empty")]
    EmptyQuery,
    /// A `related` request has no abstract, no seed papers and no query
    /// sentences.
    #[error("nothing to relate to: give --abstract, --seed or --query")]
    NoPositives,
    /// No library paper is filed in the `--collection`s given.
    #[error("no paper of the library is filed in collection(s) {names}; build it from Zotero with those collections, or check the names")]
    EmptyCollections {
        /// The names as given, comma-separated.
        names: String,
    },
    /// A feed was asked of a library without live papers.
    #[error(
        "the library has no papers ({dim}-dimensional vectors) to rank a feed against; add papers"
    )]
    TooFewPapers {
        /// The vectors' dimensions.
        dim: usize,
    },
    /// The loaded model's weights hash differs from the one recorded in the
    /// library's manifest, so its query vectors would not be comparable.
    #[error("model {model} (weights sha256 {got}) is not the model this library was built with ({want_id}, sha256 {want}); pass --model with that model")]
    ModelMismatch {
        /// Where the model was loaded from.
        model: String,
        /// The loaded weights' sha256 (hex).
        got: String,
        /// The model id recorded in the manifest.
        want_id: String,
        /// The weights sha256 recorded in the manifest (hex).
        want: String,
    },
    /// `add --prompt` named a document prompt other than the library's.
    #[error("--prompt {asked:?}: this library's papers were embedded with document prompt {recorded}, and added papers must be too (leave --prompt out)")]
    PromptMismatch {
        /// The prompt name asked for.
        asked: String,
        /// The library's recorded document prompt name, quoted, or "none".
        recorded: String,
    },
    /// A precision was asked for that differs from the one the library was
    /// embedded at.
    #[error("--precision {asked}: this library was embedded at {built}, and queries must be embedded the same way (leave --precision out)")]
    PrecisionMismatch {
        /// The precision asked for.
        asked: Precision,
        /// The precision recorded in the library's manifest.
        built: Precision,
    },
    /// The library opened carries another model than the manifest the model
    /// was loaded from: it was rebuilt in between.
    #[error("{}: the library was rebuilt with another model while it was being opened; run the command again", dir.display())]
    LibraryChanged {
        /// The library's directory.
        dir: std::path::PathBuf,
    },
    /// A worker thread panicked; the text says what it was doing.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The model is needed (e.g. to serve queries) but the session was
    /// opened without it.
    #[error("this query session was opened without its model")]
    NoModel,
    /// The query's embedding is not a unit vector (zero or NaN), so cosine
    /// similarity is meaningless.
    #[error("the model produced a zero or NaN vector for the query")]
    DegenerateQuery,
    /// The model failed to load or to embed the query.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The keyword index failed to open or to search.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The library could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How neighbours are found in vector space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Exact up to [`EXACT_MAX_PAPERS`] or under a selective filter, HNSW otherwise.
    #[default]
    Auto,
    /// Always an exact scan of every kept row: slower, never misses.
    Exact,
    /// Always the HNSW graph (approximate nearest neighbours), even for small
    /// libraries.
    Ann,
}

/// What ranks the papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cosine similarity of embeddings.
    Dense,
    /// BM25 over title and abstract.
    Keyword,
    /// Both, fused by reciprocal rank.
    Hybrid,
    /// Hybrid's candidates re-ranked by reciprocal-rank fusion of the
    /// whitened-cosine, keyword and sentence-alignment rankings (see
    /// `align`); hybrid in a library without sentence vectors.
    Sentences,
}

/// The default mode of `search` (a short query: a phrase, a claim): the
/// one `papersim eval` measured best on SciFact (docs/evaluation.md).
pub const DEFAULT_MODE: Mode = Mode::Hybrid;

/// The default mode of `similar` and `related` (the query is a paper or a
/// draft abstract), measured by `papersim eval --paper-qrels` on CiteSeer's
/// citation links (docs/evaluation.md): sentences 0.3903 nDCG@10, hybrid
/// 0.3823, dense 0.3572; related-work recall@20 (centroid, one seed)
/// 0.5594 against hybrid's 0.5413. Its best sentence pair also explains
/// each hit for free. A library without sentence vectors ranks by hybrid.
pub const PAPER_DEFAULT_MODE: Mode = Mode::Sentences;

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Mode::Dense),
            "keyword" => Ok(Mode::Keyword),
            "hybrid" => Ok(Mode::Hybrid),
            "sentences" => Ok(Mode::Sentences),
            _ => Err(format!(
                "unknown mode {s:?}: expected dense, keyword, hybrid or sentences"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Dense => "dense",
            Mode::Keyword => "keyword",
            Mode::Hybrid => "hybrid",
            Mode::Sentences => "sentences",
        })
    }
}

/// Below this many papers a full scan takes well under a millisecond per
/// query (10k x 384 dot products), so there is no reason to accept the
/// graph's approximation.
pub const EXACT_MAX_PAPERS: usize = 10_000;

/// A filter that keeps fewer than 1 in this many papers is answered by an
/// exact scan of the kept papers: a graph walk would visit mostly rejected
/// nodes and could come back with fewer than k.
const SELECTIVE_FILTER: usize = 20;

/// Reciprocal-rank fusion constant (Cormack et al. 2009). Measured on the
/// SciFact test split (nDCG@10): k = 10, 30, 60, 100 give 0.7218, 0.7206,
/// 0.7175, 0.7155. A min-max normalised score mix gives 0.7230, 0.7279,
/// 0.7027 at dense weight 0.3, 0.5, 0.7: a hair better at its best weight,
/// but that weight has to be tuned per corpus (it was tuned on the test
/// split here), while RRF has nothing to tune. So: RRF, the usual k.
const RRF_K: f32 = 60.0;

/// The keyword ranking's weight in hybrid fusion (dense weighs 1) when the
/// query is a paper (more than
/// [`PAPER_QUERY_TERMS`](crate::index::PAPER_QUERY_TERMS) distinct
/// terms); short queries weigh both equally. Chosen on CiteSeer's citation
/// links (hybrid nDCG@10 at keyword weight 0.5, 0.75, 1, 1.25, 1.5: 0.3807,
/// 0.3827, 0.3823, 0.3812, 0.3815): flat, so equal weights, nothing tuned.
pub const PAPER_KEYWORD_WEIGHT: f32 = 1.0;

/// How deep each ranking is read before fusion.
const FUSION_DEPTH: usize = 100;

/// One result row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// 1-based position in the results.
    pub rank: usize,
    /// The paper's id in its library.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Cosine similarity of the paper to the query, in every mode that has
    /// a query vector; BM25 only in keyword mode run without a model.
    pub score: f32,
    /// Hybrid's reciprocal-rank fusion value (what hybrid ranks by;
    /// `related`'s fusion of its positives likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused: Option<f32>,
    /// The BM25 score (keyword mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f32>,
    /// Its authors, in source order.
    pub authors: Vec<String>,
    /// Its subject categories, as the corpus gave them.
    pub categories: Vec<String>,
    /// Its date (`YYYY-MM-DD`, or the source's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// A link to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The paper's DOI (`10.…`), when its corpus record has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doi: Option<String>,
    /// The journal it appeared in, when its corpus record names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The proceedings (conference, workshop) it appeared in, when its
    /// corpus record names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booktitle: Option<String>,
    /// Its arXiv id when that is not its `id` (a BibTeX record's `eprint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eprint: Option<String>,
    /// Why it matched, when asked for (`related`, or `"why": true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

impl Hit {
    fn new(rank: usize, p: &Paper, score: f32) -> Self {
        Hit {
            rank,
            id: p.id.clone(),
            title: p.title.clone(),
            score,
            fused: None,
            bm25: None,
            authors: p.authors.clone(),
            categories: p.categories.clone(),
            date: p.date.clone(),
            url: p.url.clone(),
            doi: p.doi.clone(),
            journal: p.journal.clone(),
            booktitle: p.booktitle.clone(),
            eprint: p.eprint.clone(),
            why: None,
        }
    }
}

/// Options shared by search, similar and related.
#[derive(Debug, Clone)]
pub struct Options {
    /// Results wanted (at most; fewer when fewer papers pass the filter).
    pub k: usize,
    /// What ranks the papers.
    pub mode: Mode,
    /// How dense neighbours are found (exact scan or graph).
    pub strategy: Strategy,
    /// Which papers may be returned (dates, categories).
    pub filter: Filter,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            k: 10,
            mode: DEFAULT_MODE,
            strategy: Strategy::Auto,
            filter: Filter::default(),
        }
    }
}

/// Ranks the library's rows for one query given as a vector, a text, its
/// sentences' vectors (`n · dim` floats), or all three (each mode uses what
/// it needs), skipping `exclude` and rows the filter rejects. Returns up to
/// `depth` rows, best first.
pub fn rank(
    lib: &Library,
    vector: Option<&[f32]>,
    text: Option<&str>,
    sentences: Option<&[f32]>,
    depth: usize,
    opts: &Options,
    exclude: &[usize],
) -> Result<Vec<Neighbor>, QueryError> {
    let papers = lib.papers();
    let keep = |row: usize| {
        lib.is_live(row)
            && !exclude.contains(&row)
            && opts
                .filter
                .keep_facts(papers.date(row), papers.categories(row))
    };
    let dense = |n: usize| {
        vector
            .map(|v| dense(lib, v, n, &keep, opts, exclude))
            .unwrap_or_default()
    };
    let keyword = |n: usize| -> Result<Vec<Neighbor>, QueryError> {
        Ok(match text {
            Some(t) => lib.keyword()?.search(t, n, &keep)?,
            None => Vec::new(),
        })
    };
    let is_paper = || -> Result<bool, QueryError> {
        Ok(match text {
            Some(t) => lib.keyword()?.is_paper_query(t),
            None => false,
        })
    };
    let stored = match (opts.mode, sentences) {
        (Mode::Sentences, Some(s)) if !s.is_empty() => lib.sentences()?,
        _ => None,
    };
    Ok(match opts.mode {
        Mode::Dense => dense(depth),
        Mode::Keyword => keyword(depth)?,
        Mode::Hybrid | Mode::Sentences => {
            let n = depth.max(FUSION_DEPTH);
            let paper = is_paper()?;
            let (d, k) = (dense(n), keyword(n)?);
            let mut fused = match (stored, sentences) {
                (Some(stored), Some(s)) => {
                    let space = stored.space().map(|sp| &sp.sentences);
                    let q = align::QuerySentences::new(s, lib.vectors().dim(), space);
                    let d = match vector {
                        Some(v) => {
                            align::whitened_dense(stored, lib.vectors().as_slice(), v, d, &k)
                        }
                        None => d,
                    };
                    let by_alignment = align::rerank(&q, stored, &d, &k);
                    let w = if paper {
                        align::PAPER_KEYWORD_WEIGHT
                    } else {
                        1.0
                    };
                    align::fuse(d, k, w, by_alignment)
                }
                _ => {
                    let w = if paper { PAPER_KEYWORD_WEIGHT } else { 1.0 };
                    rrf_weighted(&[(d, 1.0), (k, w)])
                }
            };
            fused.truncate(depth);
            fused
        }
    })
}

/// Dense top-`n` under a filter: exact when asked, when the library is
/// small or the filter selective, or when the graph came back short.
fn dense(
    lib: &Library,
    v: &[f32],
    n: usize,
    keep: &dyn Fn(usize) -> bool,
    opts: &Options,
    exclude: &[usize],
) -> Vec<Neighbor> {
    let vectors = lib.vectors();
    let exact = || exact_search(vectors.as_slice(), vectors.dim(), v, n, keep);
    let filtered = !opts.filter.is_empty();
    let kept = if filtered {
        (0..lib.len()).filter(|&r| keep(r)).count()
    } else {
        lib.live_len().saturating_sub(exclude.len())
    };
    let use_exact = match opts.strategy {
        Strategy::Exact => true,
        Strategy::Ann => false,
        Strategy::Auto => lib.len() <= EXACT_MAX_PAPERS || kept * SELECTIVE_FILTER < lib.len(),
    };
    if use_exact {
        return exact();
    }
    let filter = filtered || !exclude.is_empty() || lib.live_len() < lib.len();
    let hits = lib.graph().search(
        vectors.as_slice(),
        vectors.dim(),
        v,
        n,
        lib.manifest().index.ef_search,
        filter.then_some(keep),
    );
    if hits.len() < n.min(kept) {
        exact()
    } else {
        hits
    }
}

/// Reciprocal-rank fusion: each list contributes 1/(RRF_K + rank).
fn rrf(lists: &[Vec<Neighbor>]) -> Vec<Neighbor> {
    let weighted: Vec<(Vec<Neighbor>, f32)> = lists.iter().map(|l| (l.clone(), 1.0)).collect();
    rrf_weighted(&weighted)
}

/// Weighted reciprocal-rank fusion: each list contributes
/// weight/(RRF_K + rank).
pub(crate) fn rrf_weighted(lists: &[(Vec<Neighbor>, f32)]) -> Vec<Neighbor> {
    let mut scores: std::collections::HashMap<usize, f32> = std::collections::HashMap::new();
    for (list, w) in lists {
        for (i, n) in list.iter().enumerate() {
            *scores.entry(n.row).or_default() += w / (RRF_K + i as f32 + 1.0);
        }
    }
    let mut out: Vec<Neighbor> = scores
        .into_iter()
        .map(|(row, score)| Neighbor { row, score })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    out
}

/// Result rows for a ranking made in `mode`: the headline `score` is the
/// cosine to `vector` when there is one, the ranking's own value otherwise;
/// the ranking's value is kept as `fused` (hybrid) or `bm25` (keyword).
fn hits(
    lib: &Library,
    ranked: &[Neighbor],
    vector: Option<&[f32]>,
    mode: Mode,
) -> Result<Vec<Hit>, QueryError> {
    let vectors = lib.vectors();
    ranked
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let cosine = vector.map(|v| crate::index::dot(vectors.row(n.row), v));
            let mut h = Hit::new(i + 1, &*lib.paper(n.row)?, cosine.unwrap_or(n.score));
            match mode {
                Mode::Dense => {}
                Mode::Hybrid | Mode::Sentences => h.fused = Some(n.score),
                Mode::Keyword => h.bm25 = Some(n.score),
            }
            Ok(h)
        })
        .collect()
}

/// The embedded text of a library paper (its keyword query in `similar`).
pub fn paper_text(lib: &Library, row: usize) -> Result<String, QueryError> {
    Ok(lib.manifest().text_template.render(&*lib.paper(row)?))
}

/// Papers most like the paper `id`, which is itself excluded. In a library
/// with sentence vectors each hit's `why` is its closest sentence pair with
/// the paper (no model needed).
pub fn similar(lib: &Library, id: &str, opts: &Options) -> Result<Vec<Hit>, QueryError> {
    let row = row_of(lib, id)?;
    let text = paper_text(lib, row)?;
    let sentences = stored_sentences(lib, row, opts.mode)?;
    let ranked = rank(
        lib,
        Some(lib.vectors().row(row)),
        Some(&text),
        sentences.as_deref(),
        opts.k,
        opts,
        &[row],
    )?;
    let mut hits = hits(lib, &ranked, Some(lib.vectors().row(row)), opts.mode)?;
    // With stored sentence vectors the best sentence pair is the
    // explanation, for free: both sides' vectors are stored.
    let sentences = match sentences {
        Some(s) => Some(s),
        None => stored_sentences(lib, row, Mode::Sentences)?,
    };
    if let Some(sentences) = &sentences {
        let p = lib.paper(row)?;
        let texts = crate::corpus::paper_sentences(&p);
        let label = format!("paper {}", p.id);
        let labels = vec![label.as_str(); texts.len()];
        explain::explain_stored(lib, &labels, &texts, sentences, &text, &mut hits)?;
    }
    Ok(hits)
}

/// The stored sentence vectors of row `row` decoded to f32, when `mode`
/// uses them and the library has them.
pub fn stored_sentences(
    lib: &Library,
    row: usize,
    mode: Mode,
) -> Result<Option<Vec<f32>>, QueryError> {
    if mode != Mode::Sentences {
        return Ok(None);
    }
    Ok(lib.sentences()?.map(|s| s.row_f32(row)))
}

/// Papers most like a free-text query. The embedder is needed only for
/// dense and hybrid modes.
pub fn search(
    lib: &Library,
    embedder: Option<&Embedder>,
    text: &str,
    opts: &Options,
) -> Result<Vec<Hit>, QueryError> {
    if text.trim().is_empty() {
        return Err(QueryError::EmptyQuery);
    }
    // Embedded in keyword mode too when a model is at hand: the cosine is
    // the score shown.
    let v = match embedder {
        Some(e) => Some(embed_one(e, text)?),
        None => None,
    };
    search_embedded(lib, v.as_deref(), text, opts)
}

/// [`search`] with the query already embedded (None: no dense ranking), for
/// callers that batch the embedding of many queries (the HTTP server).
pub fn search_embedded(
    lib: &Library,
    vector: Option<&[f32]>,
    text: &str,
    opts: &Options,
) -> Result<Vec<Hit>, QueryError> {
    if text.trim().is_empty() {
        return Err(QueryError::EmptyQuery);
    }
    if vector.is_some_and(|v| !crate::embed::is_unit(v)) {
        return Err(QueryError::DegenerateQuery);
    }
    // A short query is one sentence: its vector is its sentence vector.
    let ranked = rank(lib, vector, Some(text), vector, opts.k, opts, &[])?;
    hits(lib, &ranked, vector, opts.mode)
}

/// Explains search hits from the library's stored sentence vectors alone,
/// when it has them and the query is one sentence: `vector` is the query's
/// own embedding, so no model call is made. False when [`explain_query`]
/// (which embeds) is needed instead.
pub fn explain_query_stored(
    lib: &Library,
    query: &str,
    vector: &[f32],
    hits: &mut [Hit],
) -> Result<bool, QueryError> {
    explain::explain_query_stored(lib, query, vector, hits)
}

/// Explains search hits: for each, the sentence of the paper closest to the
/// query (embedded sentence by sentence) and the distinctive terms they share.
pub fn explain_query(
    lib: &Library,
    embedder: &Embedder,
    query: &str,
    hits: &mut [Hit],
) -> Result<(), QueryError> {
    let source = explain::Source {
        label: "query".into(),
        text: query.to_string(),
    };
    explain::explain(lib, embedder, &[source], hits)
}

pub(crate) fn embed_one(embedder: &Embedder, text: &str) -> Result<Vec<f32>, QueryError> {
    let (v, _) = embedder.embed_as(Role::Query, &[text], &|_| {})?;
    if !crate::embed::is_unit(&v) {
        return Err(QueryError::DegenerateQuery);
    }
    Ok(v)
}

pub(crate) fn row_of(lib: &Library, id: &str) -> Result<usize, QueryError> {
    lib.row_of(id).ok_or_else(|| QueryError::UnknownPaper {
        id: id.to_string(),
        suggestion: suggest(lib, id),
    })
}

/// A library id close to a mistyped one: same id ignoring case and
/// version suffix, or the one with the longest common prefix.
fn suggest(lib: &Library, id: &str) -> Option<String> {
    let want = id.trim().to_lowercase();
    let base = |s: &str| {
        let s = s.to_lowercase();
        match s.rsplit_once('v') {
            Some((b, v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => b.to_string(),
            _ => s,
        }
    };
    let want_base = base(&want);
    let ids: Vec<&str> = (0..lib.len())
        .filter(|&r| lib.is_live(r))
        .filter_map(|r| lib.papers().id(r))
        .collect();
    if let Some(id) = ids.iter().find(|id| base(id) == want_base) {
        return Some(id.to_string());
    }
    let common = |a: &str| {
        a.chars()
            .zip(want.chars())
            .take_while(|(x, y)| x == y)
            .count()
    };
    ids.iter()
        .map(|id| (common(&id.to_lowercase()), id))
        .filter(|(n, _)| *n >= 4.max(want.len() / 2))
        .max_by_key(|(n, _)| *n)
        .map(|(_, id)| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let a = vec![
            Neighbor { row: 1, score: 0.9 },
            Neighbor { row: 2, score: 0.8 },
            Neighbor { row: 3, score: 0.7 },
        ];
        let b = vec![
            Neighbor { row: 3, score: 9.0 },
            Neighbor { row: 4, score: 8.0 },
        ];
        let fused: Vec<usize> = rrf(&[a, b]).iter().map(|n| n.row).collect();
        // 3 is in both lists; 1 tops one list; 4 is second in the shorter list
        // and 2 second in the other, tied, broken by row.
        assert_eq!(fused, vec![3, 1, 2, 4]);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("hybrid".parse::<Mode>().unwrap(), Mode::Hybrid);
        assert!("semantic".parse::<Mode>().is_err());
    }
}
