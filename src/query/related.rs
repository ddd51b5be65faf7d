//! Related-work lists: from a draft abstract, seed papers, negative seeds
//! and a query, with diversity and explanations.
//!
//! Each positive (the draft, the query, each seed) ranks the library on its
//! own, in the chosen mode; the rankings are fused by reciprocal rank. Fusion
//! rather than a centroid: the centroid of two seeds on different topics is a
//! point near neither, while fusion keeps each seed's neighbours and lifts
//! the papers close to several seeds. A candidate closer to a negative seed
//! than to every positive is dropped. Maximal marginal relevance then trades
//! relevance for diversity (`diversity` 0 = pure relevance).

use super::explain::{explain, Source};
use super::{rank, row_of, rrf, Hit, Options, QueryError};
use crate::embed::Embedder;
use crate::index::{dot, Neighbor};
use crate::store::Library;

/// What a related-work list is built from. At least one positive (draft,
/// query or seed) is required.
#[derive(Debug, Clone, Default)]
pub struct RelatedRequest {
    /// A draft abstract or any paragraph.
    pub draft: Option<String>,
    /// Ids of library papers the list should resemble; each is a positive.
    pub seeds: Vec<String>,
    /// Ids of library papers to steer away from: a candidate closer to one of
    /// them than to every positive is dropped.
    pub negatives: Vec<String>,
    /// A search query, ranked like any other positive.
    pub query: Option<String>,
    /// Never returned (besides seeds and negatives, which never are).
    pub exclude: Vec<String>,
    /// MMR trade-off in [0, 1].
    pub diversity: f32,
    /// Fill each hit's `why`.
    pub explain: bool,
}

/// How deep each positive's ranking is read.
const DEPTH_PER_K: usize = 5;

/// Builds a related-work list of up to `opts.k` hits, as the module
/// describes. Without an embedder, draft and query rank by keyword only.
/// Fails on an unknown seed or negative id, or when there is no positive.
pub fn related(
    lib: &Library,
    embedder: Option<&Embedder>,
    req: &RelatedRequest,
    opts: &Options,
) -> Result<Vec<Hit>, QueryError> {
    let seeds = req
        .seeds
        .iter()
        .map(|id| row_of(lib, id))
        .collect::<Result<Vec<_>, _>>()?;
    let negatives = req
        .negatives
        .iter()
        .map(|id| row_of(lib, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut exclude: Vec<usize> = seeds.iter().chain(&negatives).copied().collect();
    exclude.extend(req.exclude.iter().filter_map(|id| lib.row_of(id)));

    // (label, vector, text) per positive.
    let mut positives: Vec<(String, Vec<f32>, String)> = Vec::new();
    for (label, text) in [("draft", &req.draft), ("query", &req.query)] {
        let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        let v = match embedder {
            Some(e) => super::embed_one(e, text)?,
            None => Vec::new(),
        };
        positives.push((label.to_string(), v, text.to_string()));
    }
    for (&row, id) in seeds.iter().zip(&req.seeds) {
        positives.push((
            format!("seed {id}"),
            lib.vectors().row(row).to_vec(),
            super::paper_text(lib, row)?,
        ));
    }
    if positives.is_empty() {
        return Err(QueryError::NoPositives);
    }

    let depth = (opts.k * DEPTH_PER_K).max(50);
    let mut lists = Vec::with_capacity(positives.len());
    for (_, v, text) in &positives {
        let vector = (!v.is_empty()).then_some(v.as_slice());
        lists.push(rank(lib, vector, Some(text), depth, opts, &exclude)?);
    }
    let vectors = lib.vectors();
    let pos_vectors: Vec<&[f32]> = positives
        .iter()
        .map(|p| p.1.as_slice())
        .filter(|v| !v.is_empty())
        .chain(seeds.iter().map(|&r| vectors.row(r)))
        .collect();
    let mut fused: Vec<Neighbor> = rrf(&lists);
    if !negatives.is_empty() {
        fused.retain(|n| {
            let v = vectors.row(n.row);
            let best_pos = pos_vectors
                .iter()
                .map(|p| dot(v, p))
                .fold(f32::MIN, f32::max);
            negatives
                .iter()
                .all(|&neg| dot(v, vectors.row(neg)) <= best_pos)
        });
    }
    let chosen = mmr(&fused, opts.k, req.diversity, &|a, b| {
        dot(vectors.row(a), vectors.row(b))
    });
    let mut hits: Vec<Hit> = chosen
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // The headline score is the cosine to the closest positive; the
            // fusion value that ranked it is kept as `fused`.
            let v = vectors.row(n.row);
            let cosine = pos_vectors
                .iter()
                .map(|p| dot(v, p))
                .fold(None, |best: Option<f32>, c| {
                    Some(best.map_or(c, |b| b.max(c)))
                });
            let mut h = Hit::new(i + 1, &*lib.paper(n.row)?, cosine.unwrap_or(n.score));
            h.fused = Some(n.score);
            Ok(h)
        })
        .collect::<Result<_, QueryError>>()?;
    if let (true, Some(e)) = (req.explain, embedder) {
        let sources: Vec<Source> = positives
            .into_iter()
            .map(|(label, _, text)| Source { label, text })
            .collect();
        explain(lib, e, &sources, &mut hits)?;
    }
    Ok(hits)
}

/// Maximal marginal relevance (Carbonell & Goldstein 1998): repeatedly take
/// the candidate maximising `(1-λ)·relevance − λ·max similarity to those
/// already taken`. Relevance is the candidate's score over the best score.
pub(crate) fn mmr(
    candidates: &[Neighbor],
    k: usize,
    lambda: f32,
    sim: &dyn Fn(usize, usize) -> f32,
) -> Vec<Neighbor> {
    let lambda = lambda.clamp(0.0, 1.0);
    if lambda == 0.0 {
        return candidates.iter().take(k).copied().collect();
    }
    let top = candidates
        .first()
        .map_or(1.0, |n| n.score)
        .max(f32::MIN_POSITIVE);
    let mut left: Vec<Neighbor> = candidates.to_vec();
    let mut out: Vec<Neighbor> = Vec::with_capacity(k);
    while out.len() < k && !left.is_empty() {
        let value = |c: &Neighbor| {
            let redundancy = out.iter().map(|o| sim(c.row, o.row)).fold(0.0f32, f32::max);
            (1.0 - lambda) * c.score / top - lambda * redundancy
        };
        let (best, _) = left
            .iter()
            .enumerate()
            .map(|(i, c)| (i, value(c)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .unwrap_or((0, 0.0));
        out.push(left.remove(best));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmr_without_diversity_keeps_relevance_order() {
        let c: Vec<Neighbor> = (0..5)
            .map(|i| Neighbor {
                row: i,
                score: 1.0 - i as f32 * 0.1,
            })
            .collect();
        let got: Vec<usize> = mmr(&c, 3, 0.0, &|_, _| 1.0).iter().map(|n| n.row).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn mmr_skips_near_duplicates() {
        // Rows 0 and 1 are the same paper twice; 2 is different and a bit less relevant.
        let c = vec![
            Neighbor { row: 0, score: 1.0 },
            Neighbor {
                row: 1,
                score: 0.99,
            },
            Neighbor { row: 2, score: 0.9 },
        ];
        let sim = |a: usize, b: usize| {
            if a.min(b) == 0 && a.max(b) == 1 {
                1.0
            } else {
                0.1
            }
        };
        let got: Vec<usize> = mmr(&c, 2, 0.5, &sim).iter().map(|n| n.row).collect();
        assert_eq!(got, vec![0, 2]);
    }
}
