//! Sentence alignment: how well the sentences of a query paper (or draft, or
//! query) are matched by the sentences of a candidate paper.
//!
//! The score is a symmetric max-sim (as in ColBERT, BERTScore and Aspire's
//! "ts" variant): each query sentence's best cosine among the candidate's
//! sentences, averaged, and the same from the candidate's side, the two
//! means averaged. A candidate scores high when the points the two make
//! match one by one, which a single whole-abstract vector blurs. The best
//! pair of all is the explanation of the match.
//!
//! In a library with a re-ranking space ([`crate::index::Space`]) the
//! cosines of the alignment, and those of the whole-paper ranking it is
//! fused with ([`whitened_dense`]), are taken after whitening, which
//! discounts what every abstract says; explanations keep plain cosines.

use super::rrf_weighted;
use crate::index::{dot_i8, Neighbor, Whitening};
use crate::store::SentenceVectors;

/// The query's sentences, quantized once for scoring against stored codes.
pub(crate) struct QuerySentences {
    dim: usize,
    /// i16 codes, `n · dim`.
    codes: Vec<i16>,
    /// One scale per sentence: `v ≈ scale · code`.
    scales: Vec<f32>,
    /// The sentences projected into the library's whitened space, when it
    /// has one: alignment is scored there, explanations in plain cosines.
    whitened: Option<Whitened>,
}

/// Query sentences projected by [`Whitening::project`], as i16 codes.
struct Whitened {
    codes: Vec<i16>,
    scales: Vec<f32>,
    /// `z · μ` per sentence.
    offsets: Vec<f32>,
    /// Whitened norm per sentence.
    norms: Vec<f32>,
}

/// i16 code of `v` with `|code| ≤ limit`, and its scale; None for a zero
/// or non-finite vector.
fn quantize_i16(v: &[f32], limit: f32, out: &mut Vec<i16>) -> Option<f32> {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max.is_finite() && max > 0.0) {
        return None;
    }
    let s = max / limit;
    out.extend(v.iter().map(|x| (x / s).round() as i16));
    Some(s)
}

impl QuerySentences {
    /// Quantizes `vectors` (`n · dim` floats, unit rows) to i16 codes, and
    /// their projections by `space` when given.
    pub(crate) fn new(vectors: &[f32], dim: usize, space: Option<&Whitening>) -> Self {
        // |code| · 127 · dim must stay below 2³¹ in `dot_i8`.
        let limit = ((i32::MAX as usize) / (127 * dim.max(1))).min(i16::MAX as usize) as f32;
        let mut codes = Vec::with_capacity(vectors.len());
        let mut scales = Vec::new();
        let mut whitened = space.map(|_| Whitened {
            codes: Vec::with_capacity(vectors.len()),
            scales: Vec::new(),
            offsets: Vec::new(),
            norms: Vec::new(),
        });
        for v in vectors.chunks_exact(dim.max(1)) {
            let Some(s) = quantize_i16(v, limit, &mut codes) else {
                continue;
            };
            scales.push(s);
            if let (Some(w), Some(space)) = (&mut whitened, space) {
                let p = space.project(v);
                // A sentence at the mean has no direction: it scores 0.
                let zs = quantize_i16(&p.z, limit, &mut w.codes).unwrap_or_else(|| {
                    w.codes.extend(std::iter::repeat_n(0, dim));
                    0.0
                });
                w.scales.push(zs);
                w.offsets.push(p.offset);
                w.norms.push(p.norm);
            }
        }
        QuerySentences {
            dim,
            codes,
            scales,
            whitened,
        }
    }

    /// Sentences that take part (zero or NaN ones are dropped).
    pub(crate) fn len(&self) -> usize {
        self.scales.len()
    }

    /// Cosine of query sentence `q` and stored sentence `i`.
    fn cosine(&self, q: usize, stored: &SentenceVectors, i: usize) -> f32 {
        let code = &self.codes[q * self.dim..(q + 1) * self.dim];
        dot_i8(stored.code(i), code) as f32 * self.scales[q] * stored.scale(i)
    }

    /// The alignment of row `row`'s stored sentences with these (see
    /// [`align`]); 0 when either side has none.
    pub(crate) fn score(&self, stored: &SentenceVectors, row: usize) -> f32 {
        let range = stored.range(row);
        let m = range.len();
        if m == 0 || self.len() == 0 {
            return 0.0;
        }
        // Whitened cosines when both sides are in the library's space.
        let whitened = self.whitened.as_ref().filter(|_| stored.space().is_some());
        let mut cosines = Vec::with_capacity(self.len() * m);
        for q in 0..self.len() {
            cosines.extend(range.clone().map(|i| match whitened {
                Some(w) => self.whitened_cosine(w, q, stored, i),
                None => self.cosine(q, stored, i),
            }));
        }
        symmetric_max_sim(&cosines, self.len(), m)
    }

    /// Whitened cosine of query sentence `q` and stored sentence `i`.
    fn whitened_cosine(&self, w: &Whitened, q: usize, stored: &SentenceVectors, i: usize) -> f32 {
        let code = &w.codes[q * self.dim..(q + 1) * self.dim];
        let z_dot_x = dot_i8(stored.code(i), code) as f32 * w.scales[q] * stored.scale(i);
        let d = w.norms[q] * stored.sentence_norm(i);
        if d > 0.0 && d.is_finite() {
            (z_dot_x - w.offsets[q]) / d
        } else {
            0.0
        }
    }

    /// The closest pair between these sentences and row `row`'s: (query
    /// sentence, index among the row's sentences, cosine).
    pub(crate) fn best_pair(
        &self,
        stored: &SentenceVectors,
        row: usize,
    ) -> Option<(usize, usize, f32)> {
        let range = stored.range(row);
        (0..self.len())
            .flat_map(|q| range.clone().map(move |i| (q, i)))
            .map(|(q, i)| (q, i - range.start, self.cosine(q, stored, i)))
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }
}

/// The candidates of the dense and keyword rankings (each row once), ranked
/// by their alignment with `q`.
pub(crate) fn rerank(
    q: &QuerySentences,
    stored: &SentenceVectors,
    dense: &[Neighbor],
    keyword: &[Neighbor],
) -> Vec<Neighbor> {
    rescore(dense, keyword, |row| q.score(stored, row))
}

/// The candidates of the dense and keyword rankings (each row once),
/// ranked by their whitened cosine to the query vector `q` in the
/// library's space; the dense ranking as it is when there is no space.
/// `vectors` are the library's paper vectors, `rows · q.len()` floats.
pub(crate) fn whitened_dense(
    stored: &SentenceVectors,
    vectors: &[f32],
    q: &[f32],
    dense: Vec<Neighbor>,
    keyword: &[Neighbor],
) -> Vec<Neighbor> {
    let Some(space) = stored.space() else {
        return dense;
    };
    let p = space.papers.project(q);
    rescore(&dense, keyword, |row| {
        vectors
            .chunks_exact(q.len().max(1))
            .nth(row)
            .map_or(0.0, |v| Whitening::cosine(&p, v, stored.paper_norm(row)))
    })
}

/// The rows of `dense` then `keyword`, each once, scored by `score` and
/// sorted best first (ties by row, for a deterministic order).
fn rescore(
    dense: &[Neighbor],
    keyword: &[Neighbor],
    score: impl Fn(usize) -> f32,
) -> Vec<Neighbor> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Neighbor> = dense
        .iter()
        .chain(keyword)
        .filter(|n| seen.insert(n.row))
        .map(|n| Neighbor {
            row: n.row,
            score: score(n.row),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    out
}

/// The weight of the keyword ranking in the fusion when the query is a
/// paper. BM25 of an abstract's distinctive terms helps on CiteSeer but hurt
/// single-vector ranking on an expert-graded set, so it counts half; on
/// CiteSeer's even-numbered query papers 0.5 and 1 came out alike
/// (docs/evaluation.md).
pub const PAPER_KEYWORD_WEIGHT: f32 = 0.5;

/// The weight of the alignment ranking in the fusion (dense and keyword
/// weigh 1 and [`PAPER_KEYWORD_WEIGHT`](super::PAPER_KEYWORD_WEIGHT)): it
/// only re-orders the candidates the other two found. nDCG@10 on
/// CiteSeer at 0.35 / 0.5 / 1: 0.3838 / 0.3829 / 0.3813 (hybrid 0.3823).
pub const ALIGNMENT_WEIGHT: f32 = 0.5;

/// Reciprocal-rank fusion of the dense, keyword and alignment rankings.
pub(crate) fn fuse(
    dense: Vec<Neighbor>,
    keyword: Vec<Neighbor>,
    keyword_weight: f32,
    by_alignment: Vec<Neighbor>,
) -> Vec<Neighbor> {
    rrf_weighted(&[
        (dense, 1.0),
        (keyword, keyword_weight),
        (by_alignment, ALIGNMENT_WEIGHT),
    ])
}

/// The symmetric max-sim of an `n × m` matrix of cosines (query sentence
/// by candidate sentence, row-major): the mean of two means, each query
/// sentence's best cosine and each candidate sentence's best cosine. One
/// direction alone favours long candidates (more chances for each query
/// sentence) or short ones; on CiteSeer both directions together ranked
/// best (nDCG@10, fused: 0.3829 against 0.3799 query-side only and 0.3789
/// candidate-side only).
fn symmetric_max_sim(cosines: &[f32], n: usize, m: usize) -> f32 {
    if n == 0 || m == 0 || cosines.len() != n * m {
        return 0.0;
    }
    let rows: f32 = cosines
        .chunks_exact(m)
        .map(|r| r.iter().copied().fold(f32::MIN, f32::max))
        .sum();
    let cols: f32 = (0..m)
        .map(|j| (0..n).map(|i| cosines[i * m + j]).fold(f32::MIN, f32::max))
        .sum();
    (rows / n as f32 + cols / m as f32) / 2.0
}

/// Sentence alignment of f32 sentence vectors (`query`, `n · dim`;
/// `candidate`, `m · dim`, unit rows): the symmetric max-sim of their
/// cosines, in [-1, 1]; 1 when each side's every sentence has an identical
/// one on the other side, 0 when either has none. The reference the
/// quantized `QuerySentences::score` follows.
pub fn align(query: &[f32], candidate: &[f32], dim: usize) -> f32 {
    let dim = dim.max(1);
    let (n, m) = (query.len() / dim, candidate.len() / dim);
    let mut cosines = Vec::with_capacity(n * m);
    for q in query.chunks_exact(dim) {
        cosines.extend(candidate.chunks_exact(dim).map(|c| crate::index::dot(q, c)));
    }
    symmetric_max_sim(&cosines, n, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn every_query_sentence_counts_once_by_its_best_match() {
        let (x, y, z) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
        // The query says x and y. The same sentences in another order align
        // fully.
        let q: Vec<f32> = [x, y].concat();
        assert_eq!(align(&q, &[y, x].concat(), 3), 1.0);
        // Saying both and z: the query side is matched (1), the candidate's
        // z is not (its side: 2/3).
        assert!((align(&q, &[z, y, x].concat(), 3) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-6);
        // Saying only x: half the query is matched, all of the candidate.
        assert_eq!(align(&q, &x, 3), 0.75);
        // Repeating a sentence changes nothing.
        assert_eq!(align(&q, &[x, x, x].concat(), 3), 0.75);
        // The measure is symmetric.
        assert_eq!(align(&x, &q, 3), align(&q, &x, 3));
        assert_eq!(align(&q, &[], 3), 0.0);
        assert_eq!(align(&[], &x, 3), 0.0);
    }

    #[test]
    fn quantized_scores_follow_the_f32_reference() {
        let dim = 8;
        let rows: Vec<Vec<f32>> = (0..5)
            .map(|r| {
                let v: Vec<f32> = (0..dim)
                    .map(|i| ((r * 7 + i * 3) % 11) as f32 - 5.0)
                    .collect();
                unit(&v)
            })
            .collect();
        let mut stored = SentenceVectors::new(dim, crate::embed::SentenceMethod::Contextual);
        stored.push_row(&[rows[0].clone(), rows[1].clone()].concat());
        stored.push_row(&[rows[2].clone(), rows[3].clone(), rows[4].clone()].concat());
        let qv = [rows[1].clone(), rows[4].clone()].concat();
        let q = QuerySentences::new(&qv, dim, None);
        for row in 0..2 {
            let want = align(&qv, &stored.row_f32(row), dim);
            let got = q.score(&stored, row);
            assert!((want - got).abs() < 0.02, "row {row}: {got} vs {want}");
        }
        // Query sentence 1 is row 1's third sentence.
        let (qs, i, c) = q.best_pair(&stored, 1).unwrap();
        assert_eq!((qs, i), (1, 2));
        assert!((c - 1.0).abs() < 0.02);
    }

    /// Deterministic unit vectors with a shared offset (anisotropic, as
    /// sentence embeddings are).
    fn skewed(n: usize, dim: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|r| {
                let v: Vec<f32> = (0..dim)
                    .map(|i| {
                        (((r + seed) * 31 + i * 17) % 23) as f32 / 23.0 - 0.5
                            + if i == 0 { 2.0 } else { 0.0 }
                    })
                    .collect();
                unit(&v)
            })
            .collect()
    }

    #[test]
    fn whitened_alignment_follows_the_f32_reference_and_dense_reorders() {
        let dim = 8;
        let papers = skewed(40, dim, 0);
        let sentences = skewed(120, dim, 7);
        let space = crate::index::Space::fit(&papers, &sentences, dim).unwrap();
        let mut stored = SentenceVectors::new(dim, crate::embed::SentenceMethod::Contextual);
        for r in 0..40 {
            stored.push_row(&sentences[r * 3 * dim..(r + 1) * 3 * dim]);
        }
        stored.set_space(Some(std::sync::Arc::new(space.clone())), &papers);
        let qv = skewed(2, dim, 99);
        let q = QuerySentences::new(&qv, dim, Some(&space.sentences));
        for row in [0, 5, 39] {
            // The reference: whitened cosines of the f32 vectors.
            let cand = stored.row_f32(row);
            let mut cosines = Vec::new();
            for a in qv.chunks_exact(dim) {
                let p = space.sentences.project(a);
                for b in cand.chunks_exact(dim) {
                    cosines.push(Whitening::cosine(&p, b, space.sentences.norm(b)));
                }
            }
            let want = symmetric_max_sim(&cosines, 2, 3);
            let got = q.score(&stored, row);
            assert!((want - got).abs() < 0.03, "row {row}: {got} vs {want}");
            // Whitening changes the score: it is not the plain alignment.
            assert!((align(&qv, &cand, dim) - got).abs() > 1e-3);
        }
        // Dense candidates come back in whitened-cosine order.
        let cands: Vec<Neighbor> = (0..10).map(|row| Neighbor { row, score: 0.0 }).collect();
        let got = whitened_dense(&stored, &papers, &qv[..dim], cands, &[]);
        let p = space.papers.project(&qv[..dim]);
        let mut want: Vec<(usize, f32)> = (0..10)
            .map(|r| {
                let v = &papers[r * dim..(r + 1) * dim];
                (r, Whitening::cosine(&p, v, space.papers.norm(v)))
            })
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got_rows: Vec<usize> = got.iter().map(|n| n.row).collect();
        let want_rows: Vec<usize> = want.iter().map(|w| w.0).collect();
        assert_eq!(got_rows, want_rows);
    }
}
