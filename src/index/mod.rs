//! Nearest-neighbour search over unit vectors: an HNSW graph (hnsw_rs) behind
//! our own parameter struct, and exact search, which is both the ground truth
//! for recall and the answer for small libraries.

mod keyword;

use std::path::{Path, PathBuf};

use hnsw_rs::api::AnnT;
use hnsw_rs::filter::FilterT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Distance;
use serde::{Deserialize, Serialize};

pub use keyword::KeywordIndex;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {reason}", path.display())]
    Dump { path: PathBuf, reason: String },
    #[error("{}: cannot load the HNSW graph: {reason}; rebuild the library", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("{}: keyword index: {reason}", path.display())]
    Keyword { path: PathBuf, reason: String },
}

/// HNSW construction and search parameters; recorded in the library manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node per layer.
    pub m: usize,
    pub ef_construction: usize,
    /// Default search breadth (raised to k when k is larger).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// `1 - a·b` for unit vectors, clamped at 0: hnsw_rs's own `DistDot` asserts
/// on the tiny negatives that rounding gives for near-identical vectors.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Dot product with eight independent accumulators, so the compiler can keep
/// it in SIMD registers (a single running sum cannot be reordered).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One search result: the row of the vector and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub row: usize,
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
    sort_best_first(&mut all);
    all
}

fn sort_best_first(v: &mut [Neighbor]) {
    v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
}

/// An HNSW graph whose data ids are vector rows.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, UnitCosine>,
    params: HnswParams,
}

/// Layers hnsw_rs may use; 16 is its maximum and plenty for millions of points.
const MAX_LAYERS: usize = 16;

impl HnswIndex {
    /// Builds over `vectors` (`rows * dim`, all unit length), in parallel.
    pub fn build(vectors: &[f32], dim: usize, params: HnswParams) -> Self {
        let rows = vectors.len() / dim.max(1);
        let mut graph = Hnsw::new(
            params.m,
            rows.max(1),
            MAX_LAYERS,
            params.ef_construction,
            UnitCosine,
        );
        let data: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).zip(0..).collect();
        graph.parallel_insert_slice(&data);
        graph.set_searching_mode(true);
        HnswIndex { graph, params }
    }

    /// Adds `vectors` as rows `first_row`, `first_row + 1`, ... to the graph
    /// (an existing or a reloaded one: hnsw_rs inserts into both).
    pub fn insert(&self, vectors: &[f32], dim: usize, first_row: usize) {
        let data: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).zip(first_row..).collect();
        self.graph.parallel_insert_slice(&data);
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    pub fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate top-`k`, best first; `ef` defaults to the build's `ef_search`.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Vec<Neighbor> {
        self.run(query, k, ef, None)
    }

    /// Approximate top-`k` among rows that `keep` accepts, using hnsw_rs's
    /// filtered search (the filter is applied while walking the graph, so
    /// the result is still k rows when the filter is permissive). Callers
    /// fall back to [`exact_search`] for very selective filters.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        keep: &dyn Fn(usize) -> bool,
    ) -> Vec<Neighbor> {
        let filter = |id: &usize| keep(*id);
        self.run(query, k, ef, Some(&filter))
    }

    fn run(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&dyn FilterT>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let ef = ef.unwrap_or(self.params.ef_search).max(k);
        let mut hits: Vec<Neighbor> = self
            .graph
            .search_filter(query, k, ef, filter)
            .into_iter()
            .map(|n| Neighbor {
                row: n.d_id,
                // The graph reports the clamped distance.
                score: 1.0 - n.distance,
            })
            .collect();
        sort_best_first(&mut hits);
        hits
    }

    /// Writes the graph as `dir/basename.hnsw.{graph,data}` and returns the
    /// two paths. hnsw_rs may pick another basename when files exist, so the
    /// paths come from what it reports.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<[PathBuf; 2], IndexError> {
        let name = self
            .graph
            .file_dump(dir, basename)
            .map_err(|e| IndexError::Dump {
                path: dir.join(basename),
                reason: e.to_string(),
            })?;
        Ok(graph_files(dir, &name))
    }

    /// Loads a graph written by [`HnswIndex::dump`]. The caller has verified
    /// the files' checksums: hnsw_rs asserts (panics) on malformed dumps,
    /// which is also caught here as a last line of defence.
    pub fn load(dir: &Path, basename: &str, params: HnswParams) -> Result<Self, IndexError> {
        let path = dir.join(basename);
        let err = |reason: String| IndexError::Load {
            path: path.clone(),
            reason,
        };
        // hnsw_rs ties a loaded graph's lifetime to its loader. Without mmap
        // the graph owns all its data, so leaking the small loader (a few
        // hundred bytes per open) gives a 'static graph honestly.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            // Moving the reference in makes this closure FnOnce, so the
            // graph may keep the 'static borrow.
            let io = io;
            io.load_hnsw::<f32, UnitCosine>()
        }))
        .map_err(|_| err("hnsw_rs panicked while reading it".into()))?;
        let mut graph = loaded.map_err(|e| err(e.to_string()))?;
        graph.set_searching_mode(true);
        Ok(HnswIndex { graph, params })
    }
}

/// The files hnsw_rs writes for `basename`.
pub fn graph_files(dir: &Path, basename: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("{basename}.hnsw.graph")),
        dir.join(format!("{basename}.hnsw.data")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic clustered unit vectors (xorshift), no rand dependency.
    pub(crate) fn clustered(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.max(1);
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centers: Vec<f32> = (0..20 * dim).map(|_| next()).collect();
        let mut out = Vec::with_capacity(rows * dim);
        for r in 0..rows {
            let c = &centers[(r % 20) * dim..(r % 20 + 1) * dim];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * next()).collect();
            crate::embed::normalize(&mut v);
            out.extend(v);
        }
        out
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn distance_never_negative() {
        let v = [0.6f32, 0.8];
        assert_eq!(UnitCosine.eval(&v, &v), 0.0);
        let w = [0.600_001f32, 0.800_001];
        assert!(UnitCosine.eval(&v, &w) >= 0.0);
    }

    #[test]
    fn exact_search_is_sorted_and_filtered() {
        let v = clustered(200, 16, 7);
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
    fn hnsw_recall_against_exact() {
        let seed = 42;
        println!("hnsw recall test seed {seed}");
        let dim = 32;
        let v = clustered(3000, dim, seed);
        let idx = HnswIndex::build(&v, dim, HnswParams::default());
        assert_eq!(idx.len(), 3000);
        let mut found = 0;
        let queries = 100;
        for q in 0..queries {
            let qv = &v[(q * 29) * dim..(q * 29 + 1) * dim];
            let truth: Vec<usize> = exact_search(&v, dim, qv, 10, &|_| true)
                .iter()
                .map(|n| n.row)
                .collect();
            let got = idx.search(qv, 10, None);
            found += got.iter().filter(|n| truth.contains(&n.row)).count();
        }
        let recall = found as f64 / (queries * 10) as f64;
        println!("recall@10 = {recall:.4}");
        assert!(recall >= 0.95, "recall@10 {recall} (seed {seed})");
    }

    #[test]
    fn dump_and_load_answer_the_same() {
        let dim = 16;
        let v = clustered(500, dim, 3);
        let idx = HnswIndex::build(&v, dim, HnswParams::default());
        let tmp = tempfile::tempdir().unwrap();
        let files = idx.dump(tmp.path(), "g1").unwrap();
        assert!(files.iter().all(|f| f.is_file()));
        let name = files[0].file_name().unwrap().to_str().unwrap();
        let base = name.trim_end_matches(".hnsw.graph");
        let back = HnswIndex::load(tmp.path(), base, HnswParams::default()).unwrap();
        for q in 0..20 {
            let qv = &v[q * dim..(q + 1) * dim];
            assert_eq!(idx.search(qv, 5, None), back.search(qv, 5, None));
        }
    }

    #[test]
    fn loading_garbage_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let [g, d] = graph_files(tmp.path(), "bad");
        std::fs::write(g, b"not a graph at all").unwrap();
        std::fs::write(d, b"nor data").unwrap();
        assert!(HnswIndex::load(tmp.path(), "bad", HnswParams::default()).is_err());
    }
}
