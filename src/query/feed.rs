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

use serde::Serialize;

use super::QueryError;
use crate::corpus::Paper;
use crate::index::{dot, Whitening};
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
    /// Fits the whitening to the library's vectors and takes `profile`
    /// (library rows) as the profile. Fails when the profile is empty or the
    /// library is too small to whiten (fewer papers than dimensions).
    pub fn new(lib: &Library, profile: &[usize]) -> Result<Self, QueryError> {
        let vectors = lib.vectors();
        let whitening = Whitening::fit(vectors.as_slice(), vectors.dim(), FEED_POWER)
            .ok_or(QueryError::TooFewPapers { dim: vectors.dim() })?;
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
                    title: profile_paper.title.clone(),
                    similarity,
                    sentence,
                },
                paper: c.paper,
            })
        })
        .collect()
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
