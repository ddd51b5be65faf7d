//! Sentence alignment: how well the sentences of a query paper (or draft, or
//! query) are matched by the sentences of a candidate paper.
//!
//! The score is the mean, over the query's sentences, of each one's best
//! cosine among the candidate's sentences (max-sim, as in ColBERT and
//! Aspire's "ts" variant): a candidate scores high when every point the query
//! makes is made somewhere in it, which a single whole-abstract vector
//! blurs. The best pair of all is the explanation of the match.

use super::rrf_weighted;
use crate::index::{dot_i8, Neighbor};
use crate::store::{Library, SentenceVectors};

/// The query's sentences, quantized once for scoring against stored codes.
pub(crate) struct QuerySentences {
    dim: usize,
    /// i16 codes, `n · dim`.
    codes: Vec<i16>,
    /// One scale per sentence: `v ≈ scale · code`.
    scales: Vec<f32>,
}

impl QuerySentences {
    /// Quantizes `vectors` (`n · dim` floats, unit rows) to i16 codes.
    pub(crate) fn new(vectors: &[f32], dim: usize) -> Self {
        // |code| · 127 · dim must stay below 2³¹ in `dot_i8`.
        let limit = ((i32::MAX as usize) / (127 * dim.max(1))).min(i16::MAX as usize) as f32;
        let mut codes = Vec::with_capacity(vectors.len());
        let mut scales = Vec::new();
        for v in vectors.chunks_exact(dim.max(1)) {
            let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            if !(max.is_finite() && max > 0.0) {
                continue;
            }
            let s = max / limit;
            codes.extend(v.iter().map(|x| (x / s).round() as i16));
            scales.push(s);
        }
        QuerySentences { dim, codes, scales }
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

    /// The alignment of row `row`'s stored sentences with these: the mean
    /// over query sentences of the best cosine among the row's; 0 when
    /// either side has none.
    pub(crate) fn score(&self, stored: &SentenceVectors, row: usize) -> f32 {
        let range = stored.range(row);
        if range.is_empty() || self.len() == 0 {
            return 0.0;
        }
        let best: Vec<f32> = (0..self.len())
            .map(|q| {
                range
                    .clone()
                    .map(|i| self.cosine(q, stored, i))
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        max_sim_mean(&best)
    }

    /// EXPLORATION: direction variants by env var.
    pub(crate) fn score_variant(&self, stored: &SentenceVectors, row: usize) -> f32 {
        let dir = std::env::var("PAPERSIM_SENT_DIR").unwrap_or_default();
        if dir.is_empty() {
            return self.score(stored, row);
        }
        let range = stored.range(row);
        if range.is_empty() || self.len() == 0 {
            return 0.0;
        }
        let back: Vec<f32> = range
            .clone()
            .map(|i| {
                (0..self.len())
                    .map(|q| self.cosine(q, stored, i))
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        let back = max_sim_mean(&back);
        if dir == "c" {
            back
        } else {
            (self.score(stored, row) + back) / 2.0
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
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Neighbor> = dense
        .iter()
        .chain(keyword)
        .filter(|n| seen.insert(n.row))
        .map(|n| Neighbor {
            row: n.row,
            score: q.score_variant(stored, n.row),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    out
}

/// EXPLORATION ONLY (removed before release): fusion variants by env var.
pub(crate) fn fuse(
    lib: &Library,
    vector: Option<&[f32]>,
    dense: Vec<Neighbor>,
    keyword: Vec<Neighbor>,
    keyword_weight: f32,
    by_alignment: Vec<Neighbor>,
) -> Vec<Neighbor> {
    let var = std::env::var("PAPERSIM_SENT_FUSION").unwrap_or_else(|_| "rrf3:1".into());
    let (name, x) = var.split_once(':').unwrap_or((var.as_str(), "1"));
    let x: f32 = x.parse().unwrap_or(1.0);
    match name {
        "lin" => {
            let mut lin: Vec<Neighbor> = by_alignment
                .iter()
                .map(|n| Neighbor {
                    row: n.row,
                    score: vector.map_or(0.0, |v| crate::index::dot(lib.vectors().row(n.row), v))
                        + x * n.score,
                })
                .collect();
            lin.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            rrf_weighted(&[(lin, 1.0), (keyword, keyword_weight)])
        }
        "only" => rrf_weighted(&[(by_alignment, 1.0), (keyword, keyword_weight)]),
        _ => rrf_weighted(&[(dense, 1.0), (keyword, keyword_weight), (by_alignment, x)]),
    }
}

/// The mean of each query sentence's best cosine (what [`align`] and
/// [`QuerySentences::score`] rank by).
fn max_sim_mean(best: &[f32]) -> f32 {
    if best.is_empty() {
        0.0
    } else {
        best.iter().sum::<f32>() / best.len() as f32
    }
}

/// Max-sim alignment of f32 sentence vectors: for each of the query's
/// sentences (`query`, `n · dim`) its best dot product among the candidate's
/// (`candidate`, `m · dim`), averaged over the query's. 0 when either has
/// none. The reference the quantized [`QuerySentences::score`] follows.
pub fn align(query: &[f32], candidate: &[f32], dim: usize) -> f32 {
    let dim = dim.max(1);
    if candidate.len() < dim {
        return 0.0;
    }
    let best: Vec<f32> = query
        .chunks_exact(dim)
        .map(|q| {
            candidate
                .chunks_exact(dim)
                .map(|c| crate::index::dot(q, c))
                .fold(f32::MIN, f32::max)
        })
        .collect();
    max_sim_mean(&best)
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
        // The query says x and y. A candidate saying both (and more) aligns
        // fully; one saying only x aligns half; order does not matter.
        let q: Vec<f32> = [x, y].concat();
        assert_eq!(align(&q, &[z, y, x].concat(), 3), 1.0);
        assert_eq!(align(&q, &[x, z].concat(), 3), 0.5);
        // Repeating a sentence does not raise the score.
        assert_eq!(align(&q, &[x, x, x].concat(), 3), 0.5);
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
        let mut stored = SentenceVectors::new(dim);
        stored.push_row(&[rows[0].clone(), rows[1].clone()].concat());
        stored.push_row(&[rows[2].clone(), rows[3].clone(), rows[4].clone()].concat());
        let qv = [rows[1].clone(), rows[4].clone()].concat();
        let q = QuerySentences::new(&qv, dim);
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
}
