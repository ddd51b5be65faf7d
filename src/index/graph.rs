//! The HNSW graph as flat arrays, and its search walk.
//!
//! The graph (built by `build`) is one CSR adjacency list per layer (row
//! ids, u32), searched over the library's own memory-mapped f32 vectors:
//! ~130 bytes per paper beside the vectors, and loading it is one read of a
//! small file (see `graph_file`). A node-per-allocation graph (hnsw_rs's,
//! `Arc`-linked nodes behind `RwLock`s, with its own copy of every vector)
//! was ~3x slower per query and ~2.6x the raw vectors in memory.
//!
//! The walk scores rows against the 8-bit codes (see `codes`); the best rows
//! it keeps are then re-scored with the f32 vectors, so a user still sees
//! exact cosines, and recall is the f32 walk's (see [`RESCORE`]).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::codes::{CodedRows, Codes, F32Rows, Scored, Scorer};
use super::exact::Neighbor;

/// How many of the walk's best rows (times k) are re-scored in f32. The
/// codes' error (~1e-3 in cosine) reorders near-ties only: on the 75k arXiv
/// vectors (1,000 held-out queries, ef 64 and 128) re-scoring 2k, 3k or all
/// `ef` rows gave the same recall@10 (0.9884, 0.9958), 1k lost 0.007.
const RESCORE: usize = 4;

/// One layer's adjacency: the neighbours of row r are
/// `ids[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layer {
    pub(super) offsets: Vec<u32>,
    pub(super) ids: Vec<u32>,
}

impl Layer {
    fn of(&self, row: u32) -> &[u32] {
        let r = row as usize;
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&a), Some(&b)) => self.ids.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// An HNSW graph over rows `0..rows`, with 8-bit codes of their vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatGraph {
    pub(super) rows: usize,
    pub(super) entry: u32,
    /// layers[0] holds every row; higher layers fewer.
    pub(super) layers: Vec<Layer>,
    /// None: the walk scores the f32 vectors.
    pub(super) codes: Option<Codes>,
}

thread_local! {
    /// Visited marks by epoch: no clearing between searches.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

impl FlatGraph {
    /// From each row's neighbour lists per layer (`adjacency[row][layer]`)
    /// and the entry row (a row on the top layer).
    pub fn new(adjacency: &[Vec<Vec<u32>>], entry: u32) -> Self {
        let rows = adjacency.len();
        let top = adjacency.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let layers = (0..top)
            .map(|l| {
                let mut offsets = Vec::with_capacity(rows + 1);
                let mut ids = Vec::new();
                offsets.push(0);
                for adj in adjacency {
                    if let Some(n) = adj.get(l) {
                        ids.extend(n.iter().copied().filter(|&x| (x as usize) < rows));
                    }
                    offsets.push(ids.len() as u32);
                }
                Layer { offsets, ids }
            })
            .collect();
        FlatGraph {
            rows,
            entry,
            layers,
            codes: None,
        }
    }

    /// Adds 8-bit codes of the rows' vectors (`rows`, in row order, each
    /// `dim` long), which the walk then scores against.
    pub fn with_codes<'a>(self, rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Self {
        self.with_built_codes(Codes::new(rows, dim))
    }

    /// [`FlatGraph::with_codes`] with codes already made (by the builder).
    pub(super) fn with_built_codes(mut self, codes: Codes) -> Self {
        self.codes = (codes.rows() == self.rows).then_some(codes);
        self
    }

    /// Rows in the graph: it links rows `0..rows()`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The entry row and the number of layers: where a walk starts.
    pub(super) fn top(&self) -> (u32, usize) {
        (self.entry, self.layers.len())
    }

    /// Row `row`'s neighbours on `layer` (empty past the top).
    pub(super) fn links(&self, layer: usize, row: u32) -> &[u32] {
        self.layers.get(layer).map_or(&[], |l| l.of(row))
    }

    /// Top `k` rows by cosine for which `keep` holds, best first, searching
    /// `ef` wide on the bottom layer. `vectors` are the rows' unit vectors;
    /// the scores returned are exact f32 cosines over them.
    pub fn search(
        &self,
        vectors: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.rows == 0 || vectors.len() < self.rows * dim || query.len() != dim {
            return Vec::new();
        }
        let exact = F32Rows {
            vectors,
            dim,
            query,
        };
        let mut found = match &self.codes {
            Some(codes) if codes.dim == dim => {
                let mut found = self.walk(&CodedRows::new(codes, query), ef.max(k), keep);
                if found.len() > RESCORE * k {
                    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    found.truncate(RESCORE * k);
                }
                found.iter().for_each(|s| exact.prefetch(s.1));
                found.iter_mut().for_each(|s| s.0 = exact.score(s.1));
                found
            }
            _ => self.walk(&exact, ef.max(k), keep),
        };
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        found.truncate(k);
        found
            .into_iter()
            .map(|Scored(score, row)| Neighbor {
                row: row as usize,
                score,
            })
            .collect()
    }

    /// The HNSW walk: greedy descent through the upper layers, then a beam
    /// `ef` wide on layer 0. Returns the best `ef` kept rows, unordered.
    fn walk<S: Scorer>(
        &self,
        scorer: &S,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Scored> {
        let mut ep = self.entry.min(self.rows as u32 - 1);
        let mut best = scorer.score(ep);
        for layer in self.layers.iter().skip(1).rev() {
            loop {
                let mut moved = false;
                for &n in layer.of(ep) {
                    let s = scorer.score(n);
                    if s > best {
                        (best, ep, moved) = (s, n, true);
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let keep = |r: u32| keep.is_none_or(|f| f(r as usize));
        VISITED.with(|v| {
            let mut v = v.borrow_mut();
            let (marks, epoch) = &mut *v;
            if marks.len() < self.rows {
                marks.resize(self.rows, 0);
            }
            *epoch = epoch.wrapping_add(1);
            if *epoch == 0 {
                marks.fill(0);
                *epoch = 1;
            }
            let epoch = *epoch;
            let mut candidates = BinaryHeap::new();
            let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            marks[ep as usize] = epoch;
            candidates.push(Scored(best, ep));
            if keep(ep) {
                results.push(Reverse(Scored(best, ep)));
            }
            let layer0 = &self.layers[0];
            while let Some(Scored(s, c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| s < w.0 .0) {
                    break;
                }
                // Mark and prefetch the new neighbours first, then score: the
                // loads of later rows overlap the dots of earlier ones.
                for group in layer0.of(c).chunks(64) {
                    let mut fresh = [0u32; 64];
                    let mut count = 0;
                    for &n in group {
                        let m = &mut marks[n as usize];
                        if *m != epoch {
                            *m = epoch;
                            scorer.prefetch(n);
                            fresh[count] = n;
                            count += 1;
                        }
                    }
                    for &n in &fresh[..count] {
                        let sn = scorer.score(n);
                        let worst = results.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
                        if results.len() < ef || sn > worst {
                            candidates.push(Scored(sn, n));
                            if keep(n) {
                                results.push(Reverse(Scored(sn, n)));
                                if results.len() > ef {
                                    results.pop();
                                }
                            }
                        }
                    }
                }
            }
            results.into_iter().map(|Reverse(s)| s).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::distance::dot;
    use super::super::exact::{exact_search, recall, synthetic};
    use super::super::{build, HnswParams};
    use super::*;

    #[test]
    fn search_matches_exact_with_and_without_codes() {
        let seed = 17;
        println!("flat graph test seed {seed}");
        let dim = 32;
        let v = synthetic(3000, dim, seed);
        let coded = build(&v, dim, &HnswParams::default());
        assert!(coded.codes.is_some());
        let flat = FlatGraph {
            codes: None,
            ..coded.clone()
        };
        assert_eq!(flat.rows(), 3000);
        let (mut truth, mut found) = (Vec::new(), Vec::new());
        for q in (0..3000).step_by(31) {
            let qv = &v[q * dim..(q + 1) * dim];
            let t = exact_search(&v, dim, qv, 10, &|_| true);
            let f = flat.search(&v, dim, qv, 10, 64, None);
            // Scores are exact cosines, best first.
            assert!(f.windows(2).all(|w| w[0].score >= w[1].score));
            assert!((f[0].score - t[0].score).abs() < 1e-6);
            truth.push(t.iter().map(|n| n.row).collect());
            found.push(f.iter().map(|n| n.row).collect());
        }
        let r = recall(&truth, &found);
        assert!(r >= 0.98, "recall@10 {r} (seed {seed})");

        // A filter is applied inside the walk: only kept rows come back.
        let qv = &v[..dim];
        let odd = |r: usize| r % 2 == 1;
        let f = flat.search(&v, dim, qv, 10, 64, Some(&odd));
        assert_eq!(f.len(), 10);
        assert!(f.iter().all(|n| n.row % 2 == 1));

        // With 8-bit codes the walk is approximate but the answer is not:
        // the same recall within a hair, the same exact scores.
        let mut coded_found = Vec::new();
        for q in (0..3000).step_by(31) {
            let qv = &v[q * dim..(q + 1) * dim];
            let c = coded.search(&v, dim, qv, 10, 64, None);
            for n in &c {
                assert_eq!(n.score, dot(&v[n.row * dim..(n.row + 1) * dim], qv));
            }
            coded_found.push(c.iter().map(|n| n.row).collect());
        }
        let rc = recall(&truth, &coded_found);
        assert!(
            rc >= r - 0.005,
            "recall@10 with codes {rc}, f32 {r} (seed {seed})"
        );
        let c = coded.search(&v, dim, qv, 10, 64, Some(&odd));
        assert!(c.len() == 10 && c.iter().all(|n| n.row % 2 == 1));

        // Codes made apart from the builder are the builder's.
        assert_eq!(flat.with_codes(v.chunks_exact(dim), dim), coded);
    }

    #[test]
    fn malformed_queries_find_nothing() {
        let v = synthetic(100, 8, 1);
        let g = build(&v, 8, &HnswParams::default());
        assert!(g.search(&v, 8, &v[..7], 5, 16, None).is_empty());
        assert!(g.search(&v[..80], 8, &v[..8], 5, 16, None).is_empty());
        assert!(g.search(&v, 8, &v[..8], 0, 16, None).is_empty());
    }
}
