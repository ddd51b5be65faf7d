//! Related-work lists: from a draft abstract, seed papers, negative seeds
//! and a query, with diversity and explanations.
//!
//! The positives (the draft, the query, each seed) rank the library
//! together, in the chosen mode: dense by the normalised mean of their
//! vectors, keyword by their texts joined ([`FUSION`]). Reciprocal-rank
//! fusion of one ranking per positive ([`Fusion::Rrf`]) keeps each seed's
//! own neighbours, but measured on CiteSeer's citation links it recovers
//! fewer of a paper's references than the centroid. A candidate closer to a
//! negative seed than to every positive is dropped. Maximal marginal relevance then trades
//! relevance for diversity (`diversity` 0 = pure relevance).

use super::explain::{embed_source, explain, Source};
use super::{rank, row_of, rrf, Hit, Mode, Options, QueryError};
use crate::corpus::MAX_PAPER_SENTENCES;
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

/// How `related` combines its positives: the centroid, which recovered more
/// of a paper's citation links than reciprocal-rank fusion of the positives
/// on CiteSeer when a list is built from a paper's abstract and one of its
/// links as a seed (recall@20, hybrid: 0.5413 against 0.5068; see
/// docs/evaluation.md).
pub const FUSION: Fusion = Fusion::Centroid;

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

    // (label, vector, text, sentence vectors) per positive.
    let aligned = opts.mode == Mode::Sentences && lib.has_sentences();
    let mut positives: Vec<(String, Vec<f32>, String, Vec<f32>)> = Vec::new();
    for (label, text) in [("draft", &req.draft), ("query", &req.query)] {
        let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        let (v, sentences) = match embedder {
            Some(e) if aligned => {
                // The text and its sentences, made the way the library's
                // stored sentences were.
                let got = embed_source(lib, e, text, MAX_PAPER_SENTENCES)?;
                if !crate::embed::is_unit(&got.vector) {
                    return Err(QueryError::DegenerateQuery);
                }
                (got.vector, got.sentence_vectors)
            }
            Some(e) => (super::embed_one(e, text)?, Vec::new()),
            None => (Vec::new(), Vec::new()),
        };
        positives.push((label.to_string(), v, text.to_string(), sentences));
    }
    for (&row, id) in seeds.iter().zip(&req.seeds) {
        positives.push((
            format!("seed {id}"),
            lib.vectors().row(row).to_vec(),
            super::paper_text(lib, row)?,
            super::stored_sentences(lib, row, opts.mode)?.unwrap_or_default(),
        ));
    }
    if positives.is_empty() {
        return Err(QueryError::NoPositives);
    }

    let inputs: Vec<Positive> = positives
        .iter()
        .map(|(_, v, text, sentences)| Positive {
            vector: (!v.is_empty()).then_some(v.as_slice()),
            text,
            sentences: (!sentences.is_empty()).then_some(sentences.as_slice()),
        })
        .collect();
    let mut fused = rank_positives(lib, &inputs, FUSION, opts, &exclude)?;
    let vectors = lib.vectors();
    let pos_vectors: Vec<&[f32]> = positives
        .iter()
        .map(|p| p.1.as_slice())
        .filter(|v| !v.is_empty())
        .chain(seeds.iter().map(|&r| vectors.row(r)))
        .collect();
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
            .map(|(label, _, text, _)| Source { label, text })
            .collect();
        explain(lib, e, &sources, &mut hits)?;
    }
    Ok(hits)
}

/// One positive input of a related-work list: its vector (none when no
/// model is loaded) and its text.
#[derive(Debug, Clone, Copy)]
pub struct Positive<'a> {
    /// Unit-length embedding of the text, or the stored vector of a seed.
    pub vector: Option<&'a [f32]>,
    /// The text BM25 ranks with.
    pub text: &'a str,
    /// Its sentences' vectors (`n · dim` floats), for [`Mode::Sentences`].
    pub sentences: Option<&'a [f32]>,
}

/// How the positives' rankings are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Each positive ranks the library; the rankings are fused by
    /// reciprocal rank (what `related` does).
    Rrf,
    /// One ranking: by the normalised mean of the positives' vectors (dense)
    /// and by their texts joined (keyword).
    Centroid,
}

/// Ranks the library for a set of positives, skipping `exclude`: up to
/// `max(5·k, 50)` rows, best first.
pub fn rank_positives(
    lib: &Library,
    positives: &[Positive],
    fusion: Fusion,
    opts: &Options,
    exclude: &[usize],
) -> Result<Vec<Neighbor>, QueryError> {
    let depth = (opts.k * DEPTH_PER_K).max(50);
    match fusion {
        Fusion::Rrf => {
            let mut lists = Vec::with_capacity(positives.len());
            for p in positives {
                lists.push(rank(
                    lib,
                    p.vector,
                    Some(p.text),
                    p.sentences,
                    depth,
                    opts,
                    exclude,
                )?);
            }
            Ok(rrf(&lists))
        }
        Fusion::Centroid => {
            let vectors: Vec<&[f32]> = positives.iter().filter_map(|p| p.vector).collect();
            let centroid = centroid(&vectors);
            let text = positives
                .iter()
                .map(|p| p.text)
                .collect::<Vec<_>>()
                .join("\n");
            // Every positive's sentences together: a candidate aligns well
            // when it matches the points of the draft and of the seeds.
            let sentences: Vec<f32> = positives
                .iter()
                .filter_map(|p| p.sentences)
                .flatten()
                .copied()
                .collect();
            rank(
                lib,
                centroid.as_deref(),
                Some(&text),
                (!sentences.is_empty()).then_some(sentences.as_slice()),
                depth,
                opts,
                exclude,
            )
        }
    }
}

/// The unit-length mean of `vectors`; none when there are none (or they
/// cancel out).
fn centroid(vectors: &[&[f32]]) -> Option<Vec<f32>> {
    let first = vectors.first()?;
    let mut sum = vec![0.0f32; first.len()];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v.iter()) {
            *s += x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0).then(|| sum.iter().map(|x| x / norm).collect())
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
    fn centroid_is_the_normalised_mean() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        let c = centroid(&[&a, &b]).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((c[0] - h).abs() < 1e-6 && (c[1] - h).abs() < 1e-6);
        assert!(centroid(&[]).is_none());
        assert!(centroid(&[&a, &[-1.0, 0.0]]).is_none());
    }

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
