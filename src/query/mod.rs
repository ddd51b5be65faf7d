//! Answering "papers like this": from a query sentence or from a paper id.

use serde::Serialize;

use crate::corpus::Paper;
use crate::embed::{DeviceSpec, EmbedError, Embedder, ModelSource};
use crate::index::{exact_search, Neighbor};
use crate::store::{Library, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no paper with id {id:?} in the library{}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownPaper {
        id: String,
        suggestion: Option<String>,
    },
    #[error("the query is empty")]
    EmptyQuery,
    #[error("model {model} (weights sha256 {got}) is not the model this library was built with ({want_id}, sha256 {want}); pass --model with that model")]
    ModelMismatch {
        model: String,
        got: String,
        want_id: String,
        want: String,
    },
    #[error("the model produced a zero or NaN vector for the query")]
    DegenerateQuery,
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// How neighbours are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Exact up to [`EXACT_MAX_PAPERS`], HNSW above.
    #[default]
    Auto,
    Exact,
    Ann,
}

/// Below this many papers a full scan takes well under a millisecond per
/// query (10k x 384 dot products), so there is no reason to accept the
/// graph's approximation.
pub const EXACT_MAX_PAPERS: usize = 10_000;

/// One result row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub rank: usize,
    pub id: String,
    pub title: String,
    /// Cosine similarity to the query.
    pub score: f32,
    pub authors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Hit {
    fn new(rank: usize, p: &Paper, score: f32) -> Self {
        Hit {
            rank,
            id: p.id.clone(),
            title: p.title.clone(),
            score,
            authors: p.authors.clone(),
            date: p.date.clone(),
            url: p.url.clone(),
        }
    }
}

/// Nearest papers to a unit vector, best first, skipping `exclude` rows.
pub fn nearest(
    lib: &Library,
    query: &[f32],
    k: usize,
    exclude: &[usize],
    strategy: Strategy,
) -> Vec<Hit> {
    let exact = match strategy {
        Strategy::Exact => true,
        Strategy::Ann => false,
        Strategy::Auto => lib.len() <= EXACT_MAX_PAPERS,
    };
    let neighbors: Vec<Neighbor> = if exact {
        let v = lib.vectors();
        exact_search(v.as_slice(), v.dim(), query, k, &|r| !exclude.contains(&r))
    } else {
        lib.index()
            .search(query, k + exclude.len(), None)
            .into_iter()
            .filter(|n| !exclude.contains(&n.row))
            .take(k)
            .collect()
    };
    neighbors
        .iter()
        .enumerate()
        .map(|(i, n)| Hit::new(i + 1, &lib.papers()[n.row], n.score))
        .collect()
}

/// Papers most like the paper `id`, which is itself excluded.
pub fn similar(
    lib: &Library,
    id: &str,
    k: usize,
    strategy: Strategy,
) -> Result<Vec<Hit>, QueryError> {
    let row = lib.row_of(id).ok_or_else(|| QueryError::UnknownPaper {
        id: id.to_string(),
        suggestion: suggest(lib, id),
    })?;
    Ok(nearest(lib, lib.vectors().row(row), k, &[row], strategy))
}

/// Papers most like a free-text query.
pub fn search(
    lib: &Library,
    embedder: &Embedder,
    text: &str,
    k: usize,
    strategy: Strategy,
) -> Result<Vec<Hit>, QueryError> {
    if text.trim().is_empty() {
        return Err(QueryError::EmptyQuery);
    }
    let (v, _) = embedder.embed(&[text], &|_| {})?;
    if !crate::embed::is_unit(&v) {
        return Err(QueryError::DegenerateQuery);
    }
    Ok(nearest(lib, &v, k, &[], strategy))
}

/// Loads the model that built the library: `model` when given, else the one
/// its manifest names (falling back to the default model when that was a
/// path that no longer exists). The weights must be the very same.
pub fn load_embedder(
    manifest: &Manifest,
    model: Option<&ModelSource>,
    device: DeviceSpec,
) -> Result<Embedder, QueryError> {
    let source = match model {
        Some(m) => m.clone(),
        None => match ModelSource::parse(&manifest.model.id) {
            ModelSource::Dir(d) if !d.is_dir() => ModelSource::default_source(),
            s => s,
        },
    };
    let files = source.resolve()?;
    let embedder = Embedder::load(&files, device)?;
    let got = &embedder.info().weights_sha256;
    if *got != manifest.model.weights_sha256 {
        return Err(QueryError::ModelMismatch {
            model: source.to_string(),
            got: got.clone(),
            want_id: manifest.model.id.clone(),
            want: manifest.model.weights_sha256.clone(),
        });
    }
    Ok(embedder)
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
    let papers = lib.papers();
    if let Some(p) = papers.iter().find(|p| base(&p.id) == want_base) {
        return Some(p.id.clone());
    }
    let common = |a: &str| {
        a.chars()
            .zip(want.chars())
            .take_while(|(x, y)| x == y)
            .count()
    };
    papers
        .iter()
        .map(|p| (common(&p.id.to_lowercase()), &p.id))
        .filter(|(n, _)| *n >= 4.max(want.len() / 2))
        .max_by_key(|(n, _)| *n)
        .map(|(_, id)| id.clone())
}
