//! Exact search: a scan of every row. The ground truth that graph recall is
//! measured against, and the answer for small libraries and selective
//! filters.

use super::distance::dot;

/// One search result: the row of the vector and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// The vector's 0-based row in the library (or the searched matrix).
    pub row: usize,
    /// Cosine similarity to the query (the dot product of unit vectors),
    /// higher is closer; a BM25 score for keyword search.
    pub score: f32,
}

/// Exact top-`k` by cosine over `vectors` (`rows * dim`), best first; rows
/// for which `keep` is false are skipped.
pub fn exact_search(
    vectors: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    keep: &dyn Fn(usize) -> bool,
) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = vectors
        .chunks_exact(dim)
        .enumerate()
        .filter(|(row, _)| keep(*row))
        .map(|(row, v)| Neighbor {
            row,
            score: dot(v, query),
        })
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
    all.truncate(k);
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    all
}

/// Fraction of the true top-k (`truth`, from [`exact_search`]) that a
/// search `found`, over all queries.
pub fn recall(truth: &[Vec<usize>], found: &[Vec<usize>]) -> f64 {
    let total: usize = truth.iter().map(Vec::len).sum();
    let hit: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| f.iter().filter(|r| t.contains(r)).count())
        .sum();
    hit as f64 / total.max(1) as f64
}

/// Deterministic clustered unit vectors (xorshift, no rand dependency), for
/// tests and `bench index --synthetic`: one cluster per ~100 rows (20 at
/// least), each point its centre plus noise, so neighbours are about as
/// close as real abstracts' (cosine ~0.7 within a cluster). Uniform random
/// vectors would make every neighbour equally far.
pub fn synthetic(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let clusters = (rows / 100).clamp(20, 5000);
    let centers: Vec<f32> = (0..clusters * dim).map(|_| next()).collect();
    let mut out = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let c = &centers[(r % clusters) * dim..(r % clusters + 1) * dim];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * next()).collect();
        crate::embed::normalize(&mut v);
        out.extend(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_search_is_sorted_and_filtered() {
        let v = synthetic(200, 16, 7);
        let q = &v[5 * 16..6 * 16];
        let hits = exact_search(&v, 16, q, 10, &|r| r != 5);
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.row != 5));
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        let all = exact_search(&v, 16, q, 1000, &|_| true);
        assert_eq!(all.len(), 200);
        assert_eq!(all[0].row, 5);
    }

    #[test]
    fn recall_counts_found_true_neighbours() {
        let truth = vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]];
        let found = vec![vec![1, 2, 9, 4], vec![8, 7, 6, 5]];
        assert_eq!(recall(&truth, &found), 7.0 / 8.0);
    }
}
