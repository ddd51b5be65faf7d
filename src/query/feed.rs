//! Ranking new papers (a day's arXiv listing, or any corpus) against a
//! reading profile: the papers of a library, some of its collections, or a
//! few seeds.
//!
//! A candidate's score is its mean whitened cosine to the profile's papers:
//! the library's vectors are whitened with power [`FEED_POWER`] (fitted to
//! the library, so what every paper of the field says weighs less), and the
//! mean cosine is one dot product with the profile's whitened direction.
//! On CiteSeer's profile experiment (half of a paper's citation links as
//! the profile, the other half to be found among all other papers) this
//! recovers more links than the plain centroid, than the nearest profile
//! paper, and than arxiv-sanity's tf-idf SVM (docs/evaluation.md has the
//! table and what else was tried).
//!
//! The explanation of a hit is the profile paper closest to it (whitened
//! cosine) and the candidate's sentence closest to that paper.

use std::collections::HashSet;

use serde::Serialize;

use super::{row_of, QueryError};
use crate::corpus::{locate_sentences, Paper};
use crate::embed::{is_unit, Embedder, Role, SentenceMethod, SentenceReach, TextSentences};
use crate::index::{dot, Whitening, FIT_SAMPLE};
use crate::store::Library;

/// Whitening power of the feed's ranking. Chosen on the even-numbered half
/// of CiteSeer's profiles (0.25: recall@20 0.4970, 0.5: 0.5068, 0.75:
/// 0.4927, 1: 0.4695); the odd half agrees (0.4751, 0.4891, 0.4752,
/// 0.4437).
pub const FEED_POWER: f32 = 0.5;

/// The profile as a scorer: the library's whitening and the profile
/// papers' whitened, normalised directions.
pub struct ProfileScorer {
    whitening: Whitening,
    /// Mean of the profile papers' `M (p − μ) / |p|_w`.
    direction: Vec<f32>,
    /// `direction · μ`.
    offset: f32,
    /// Per profile paper: its row and its `M (p − μ) / |p|_w`.
    papers: Vec<(usize, Vec<f32>)>,
}

impl ProfileScorer {
    /// Fits the whitening to the library's live vectors and `extra` ones
    /// (`n · dim` floats: the papers to rank, which are the background a
    /// profile of the whole library stands out from), and takes `profile`
    /// (library rows) as the profile. With fewer vectors than dimensions
    /// the vectors are only centred. Fails when the profile is empty.
    pub fn new(lib: &Library, profile: &[usize], extra: &[f32]) -> Result<Self, QueryError> {
        let vectors = lib.vectors();
        let dim = vectors.dim();
        let live = (0..lib.len()).filter(|&r| lib.is_live(r));
        // Evenly spaced rows, as many as the fit reads at most.
        let step = lib.live_len().div_ceil(FIT_SAMPLE).max(1);
        let mut background: Vec<f32> = live
            .step_by(step)
            .flat_map(|r| vectors.row(r))
            .copied()
            .collect();
        background.extend_from_slice(extra);
        let whitening = match Whitening::fit(&background, dim, FEED_POWER) {
            Some(w) => w,
            // Too few vectors to estimate a covariance (a small library and
            // listing): centred cosines, the covariance left alone.
            None => centring(&background, dim).ok_or(QueryError::TooFewPapers { dim })?,
        };
        Self::with_whitening(lib, whitening, profile)
    }

    /// As [`ProfileScorer::new`] with a whitening fitted already (the
    /// profile experiment fits it once for all profiles).
    pub fn with_whitening(
        lib: &Library,
        whitening: Whitening,
        profile: &[usize],
    ) -> Result<Self, QueryError> {
        if profile.is_empty() {
            return Err(QueryError::NoPositives);
        }
        let dim = whitening.dim();
        let mut direction = vec![0f32; dim];
        let mut papers = Vec::with_capacity(profile.len());
        for &row in profile {
            let p = whitening.project(lib.vectors().row(row));
            if p.norm <= 0.0 || !p.norm.is_finite() {
                continue;
            }
            let z: Vec<f32> = p.z.iter().map(|x| x / p.norm).collect();
            direction.iter_mut().zip(&z).for_each(|(d, x)| *d += x);
            papers.push((row, z));
        }
        if papers.is_empty() {
            return Err(QueryError::NoPositives);
        }
        let n = papers.len() as f32;
        direction.iter_mut().for_each(|d| *d /= n);
        let offset = dot(&direction, whitening.mean());
        Ok(ProfileScorer {
            whitening,
            direction,
            offset,
            papers,
        })
    }

    /// The whitened norm of a candidate's vector, which [`Self::score`]
    /// and [`Self::closest`] divide by.
    pub fn norm(&self, v: &[f32]) -> f32 {
        self.whitening.norm(v)
    }

    /// The mean whitened cosine of `v` (whitened norm `norm`) to the
    /// profile's papers; 0 for a vector without a whitened norm.
    pub fn score(&self, v: &[f32], norm: f32) -> f32 {
        if norm > 0.0 && norm.is_finite() {
            (dot(&self.direction, v) - self.offset) / norm
        } else {
            0.0
        }
    }

    /// The profile paper closest to `v` and its whitened cosine.
    pub fn closest(&self, v: &[f32], norm: f32) -> Option<(usize, f32)> {
        let mu = self.whitening.mean();
        self.papers
            .iter()
            .map(|(row, z)| {
                let c = if norm > 0.0 {
                    (dot(z, v) - dot(z, mu)) / norm
                } else {
                    0.0
                };
                (*row, c)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The whitening (for the profile experiment, which reuses it).
    pub fn whitening(&self) -> &Whitening {
        &self.whitening
    }
}

/// A paper to rank, embedded: its vector and its sentences' (the title
/// first, as [`crate::corpus::paper_sentences`] lists them).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The paper as its listing gave it.
    pub paper: Paper,
    /// Its unit vector, embedded the library's way.
    pub vector: Vec<f32>,
    /// Its sentences, for the explanation.
    pub sentences: Vec<String>,
    /// Their vectors, `sentences.len() · dim` floats (fewer rows when the
    /// model's window ended first).
    pub sentence_vectors: Vec<f32>,
}

/// What made a paper of the feed rank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Because {
    /// The profile paper closest to it.
    pub id: String,
    /// That paper's title.
    pub title: String,
    /// Their whitened cosine.
    pub similarity: f32,
    /// The candidate's sentence closest to that profile paper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentence: Option<String>,
}

/// One ranked paper of the feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedHit {
    /// 1-based position.
    pub rank: usize,
    /// Mean whitened cosine to the profile's papers.
    pub score: f32,
    /// The paper as its listing gave it.
    pub paper: Paper,
    /// The profile paper and sentence that made it rank.
    pub because: Because,
}

/// Ranks `candidates` against the profile, best first, keeping `k`.
/// Candidates already in the library are the caller's to drop.
pub fn rank_feed(
    lib: &Library,
    scorer: &ProfileScorer,
    candidates: Vec<Candidate>,
    k: usize,
) -> Result<Vec<FeedHit>, QueryError> {
    let mut scored: Vec<(f32, f32, Candidate)> = candidates
        .into_iter()
        .map(|c| {
            let norm = scorer.norm(&c.vector);
            (scorer.score(&c.vector, norm), norm, c)
        })
        .collect();
    // Ties in listing order (a stable sort).
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (score, norm, c))| {
            let (row, similarity) = scorer
                .closest(&c.vector, norm)
                .ok_or(QueryError::NoPositives)?;
            let profile_paper = lib.paper(row)?;
            let target = lib.vectors().row(row);
            let dim = target.len();
            let sentence = c
                .sentence_vectors
                .chunks_exact(dim)
                .zip(&c.sentences)
                .map(|(v, s)| (dot(v, target), s))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, s)| s.clone());
            Ok(FeedHit {
                rank: i + 1,
                score,
                because: Because {
                    id: profile_paper.id.clone(),
                    title: headline(&profile_paper),
                    similarity,
                    sentence,
                },
                paper: c.paper,
            })
        })
        .collect()
}

/// What a feed is ranked against, and what of the listing is kept.
#[derive(Debug, Clone, Default)]
pub struct FeedRequest {
    /// Profile: these library papers. With `collections` also empty, the
    /// whole library is the profile.
    pub seeds: Vec<String>,
    /// Profile: the library's papers filed in these Zotero collections
    /// (their sub-collections included).
    pub collections: Vec<String>,
    /// Keep listing papers dated on or after this day (`YYYY-MM-DD`);
    /// undated papers are kept.
    pub since: Option<String>,
    /// Hits wanted.
    pub k: usize,
}

/// A ranked feed and what was left out of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct Feed {
    /// Papers in the profile.
    pub profile: usize,
    /// Listing papers ranked.
    pub ranked: usize,
    /// Listing papers the library has already (same id, arXiv id or DOI).
    pub known: usize,
    /// Listing papers dated before `since`.
    pub older: usize,
    /// The best `k`, best first.
    pub hits: Vec<FeedHit>,
}

/// The profile's library rows, as `req` names them.
pub fn profile_rows(lib: &Library, req: &FeedRequest) -> Result<Vec<usize>, QueryError> {
    let mut rows: Vec<usize> = req
        .seeds
        .iter()
        .map(|id| row_of(lib, id))
        .collect::<Result<_, _>>()?;
    if !req.collections.is_empty() {
        let before = rows.len();
        for row in (0..lib.len()).filter(|&r| lib.is_live(r)) {
            let p = lib.paper(row)?;
            if p.collections.iter().any(|c| req.collections.contains(c)) && !rows.contains(&row) {
                rows.push(row);
            }
        }
        if rows.len() == before {
            return Err(QueryError::EmptyCollections {
                names: req.collections.join(", "),
            });
        }
    }
    if req.seeds.is_empty() && req.collections.is_empty() {
        rows = (0..lib.len()).filter(|&r| lib.is_live(r)).collect();
    }
    Ok(rows)
}

/// Ranks a listing's `papers` against the profile `req` names: papers the
/// library has (by id, arXiv id or DOI) and papers dated before
/// `req.since` are left out, the rest embedded the library's way (with
/// their sentences, for the explanation) and ranked.
pub fn feed(
    lib: &Library,
    embedder: &Embedder,
    papers: Vec<Paper>,
    req: &FeedRequest,
    progress: &dyn Fn(usize),
) -> Result<Feed, QueryError> {
    let profile = profile_rows(lib, req)?;
    let mut known_keys: HashSet<String> = HashSet::new();
    for row in (0..lib.len()).filter(|&r| lib.is_live(r)) {
        let p = lib.paper(row)?;
        known_keys.insert(p.id.to_ascii_lowercase());
        known_keys.extend(p.eprint.iter().map(|e| e.to_ascii_lowercase()));
        known_keys.extend(p.doi.iter().map(|d| d.to_ascii_lowercase()));
    }
    let (mut known, mut older) = (0, 0);
    let papers: Vec<Paper> = papers
        .into_iter()
        .filter(|p| {
            let keys = std::iter::once(&p.id).chain(&p.eprint).chain(&p.doi);
            let is_known = keys
                .map(|k| k.to_ascii_lowercase())
                .any(|k| known_keys.contains(&k));
            let is_older = match (&req.since, &p.date) {
                (Some(since), Some(date)) => date.as_str() < since.as_str(),
                _ => false,
            };
            known += usize::from(is_known);
            older += usize::from(!is_known && is_older);
            !is_known && !is_older
        })
        .collect();
    let template = &lib.manifest().text_template;
    let located: Vec<_> = papers
        .iter()
        .map(|p| locate_sentences(template, p))
        .collect();
    let texts: Vec<&str> = located.iter().map(|l| l.text.as_str()).collect();
    let wanted: Vec<TextSentences> = located
        .iter()
        .map(|l| TextSentences {
            sentences: &l.sentences,
            spans: &l.spans,
        })
        .collect();
    let got = embedder.embed_with_sentences(
        Role::Document,
        SentenceMethod::Contextual,
        SentenceReach::All,
        &texts,
        &wanted,
        progress,
    )?;
    let dim = embedder.info().dim;
    let ranked = papers.len();
    let candidates: Vec<Candidate> = papers
        .into_iter()
        .zip(located)
        .zip(got.sentences)
        .enumerate()
        .filter_map(|(i, ((paper, l), sentence_vectors))| {
            let vector = got.vectors[i * dim..(i + 1) * dim].to_vec();
            // A text the model gave no direction cannot be ranked.
            is_unit(&vector).then_some(Candidate {
                paper,
                vector,
                sentences: l.sentences,
                sentence_vectors,
            })
        })
        .collect();
    let extra: Vec<f32> = candidates
        .iter()
        .flat_map(|c| c.vector.iter().copied())
        .collect();
    let scorer = ProfileScorer::new(lib, &profile, &extra)?;
    let hits = rank_feed(lib, &scorer, candidates, req.k)?;
    Ok(Feed {
        profile: profile.len(),
        ranked,
        known,
        older,
        hits,
    })
}

/// The whitening that only subtracts the mean of `vectors` (identity
/// matrix); None without vectors.
fn centring(vectors: &[f32], dim: usize) -> Option<Whitening> {
    let n = vectors.len() / dim.max(1);
    if n == 0 {
        return None;
    }
    let mut mean = vec![0f32; dim];
    for row in vectors.chunks_exact(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, x)| *m += x / n as f32);
    }
    let mut identity = vec![0f32; dim * dim];
    (0..dim).for_each(|i| identity[i * dim + i] = 1.0);
    Whitening::from_parts(dim, mean, identity)
}

/// A paper's title, or the start of its abstract when it has none.
fn headline(p: &Paper) -> String {
    if !p.title.is_empty() {
        return p.title.clone();
    }
    let mut words = p.abstract_text.split_whitespace();
    let start: Vec<&str> = words.by_ref().take(12).collect();
    let more = if words.next().is_some() { " …" } else { "" };
    format!("{}{more}", start.join(" "))
}

/// Ranks the library's live rows (but `exclude`) against `scorer`'s
/// profile, best first, up to `depth`: the profile experiment's use, with
/// each row's whitened norm computed once (`norms`).
pub fn rank_library(
    lib: &Library,
    scorer: &ProfileScorer,
    norms: &[f32],
    exclude: &[usize],
    depth: usize,
) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = (0..lib.len())
        .filter(|&r| lib.is_live(r) && !exclude.contains(&r))
        .map(|r| (scorer.score(lib.vectors().row(r), norms[r]), r))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(depth);
    scored.into_iter().map(|(_, r)| r).collect()
}
