//! Nearest-neighbour search over unit vectors: an HNSW graph behind our own
//! parameter struct (built by `build`, searched as a `FlatGraph`), and exact
//! search, which is both the ground truth for recall and the answer for
//! small libraries. `HnswIndex` reads the hnsw_rs graphs of libraries from
//! before format version 2, and builds one for `bench index --builder hnsw-rs`.

pub mod bench;
mod build;
mod flat;
mod keyword;

use std::path::{Path, PathBuf};

use hnsw_rs::filter::FilterT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Distance;
use serde::{Deserialize, Serialize};

pub use build::{build, extend, DEFAULT_SEED};
pub use flat::FlatGraph;
pub(crate) use flat::Reader;
pub use keyword::KeywordIndex;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
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
    /// Element type of an hnsw_rs graph's own copy of the vectors (format
    /// version 1 libraries; papersim's graphs keep no copy). Libraries from
    /// before this field have f32 graphs. Left out when f32, so that their
    /// manifests re-serialise to the same bytes (the manifest checksum is
    /// computed over its re-serialisation).
    #[serde(default = "Store::legacy", skip_serializing_if = "Store::is_legacy")]
    pub store: Store,
    /// Draws each row's level (see `build`). None: an hnsw_rs graph, from a
    /// library written before papersim built its own (format version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// How an hnsw_rs graph stores its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    F32,
    /// Half the memory; scores re-computed in f32 from the library's vectors.
    F16,
}

impl Store {
    fn legacy() -> Self {
        Store::F32
    }

    fn is_legacy(&self) -> bool {
        *self == Store::F32
    }
}

/// `params` for a graph papersim builds: a library from before seeds
/// (compacted, repaired or grown now) gets the default one, and the hnsw_rs
/// store, which our graphs do not have, goes back to its omitted value.
pub fn own_graph(params: HnswParams) -> HnswParams {
    HnswParams {
        seed: params.seed.or(Some(DEFAULT_SEED)),
        store: Store::legacy(),
        ..params
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            // Left out of new manifests: only hnsw_rs graphs have a store.
            store: Store::legacy(),
            seed: Some(DEFAULT_SEED),
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

/// Dot product: the distance of every HNSW step and the whole cost of an
/// exact scan. AVX2+FMA when the CPU has them (checked once), else a portable
/// loop with eight independent accumulators, which the compiler keeps in SSE
/// registers (a single running sum could not be reordered).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { simd::dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// Asks the CPU to start loading the first cache lines (up to 6) of `v` (a
/// row about to be scored): a search scores rows in graph order, which at
/// 75k papers is a cache miss per row, and the hardware prefetcher
/// continues a stream once the first lines are in flight.
#[inline(always)]
pub fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = v.as_ptr() as *const i8;
        let bytes = std::mem::size_of_val(v).min(6 * 64);
        let mut at = 0;
        while at < bytes {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at));
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

/// Integer dot product of an i8 code row and an i16 query: the score of a
/// step through a quantized graph (see `flat::Codes`). The sum is exact, so
/// the AVX2 and portable paths agree bit for bit. Callers bound
/// `|q| · 127 · len` below 2³¹.
pub fn dot_i8(codes: &[i8], q: &[i16]) -> i32 {
    let n = codes.len().min(q.len());
    let (codes, q) = (&codes[..n], &q[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2 (checked above); equal lengths.
        return unsafe { simd::dot_i8_avx2(codes, q) };
    }
    codes.iter().zip(q).fold(0i32, |acc, (&c, &x)| {
        acc.wrapping_add(i32::from(c) * i32::from(x))
    })
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    pub fn available_f16c() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| available() && is_x86_feature_detected!("f16c"))
    }

    /// Like [`dot_avx2`], widening 8 halves at a time with F16C.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; equal lengths.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(a: &[u16], b: &[u16]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let load = |p: *const u16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            s0 = _mm256_fmadd_ps(load(pa.add(i)), load(pb.add(i)), s0);
            s1 = _mm256_fmadd_ps(load(pa.add(i + 8)), load(pb.add(i + 8)), s1);
            i += 16;
        }
        if i + 8 <= n {
            s0 = _mm256_fmadd_ps(load(pa.add(i)), load(pb.add(i)), s0);
            i += 8;
        }
        let mut sum = hsum(_mm256_add_ps(s0, s1));
        while i < n {
            sum += half::f16::from_bits(*pa.add(i)).to_f32()
                * half::f16::from_bits(*pb.add(i)).to_f32();
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hsum(s: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(s, 1);
        let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        _mm_cvtss_f32(q)
    }

    /// Sign-extends 16 codes to i16 and multiplies them with `vpmaddwd`
    /// (pairs summed into i32 lanes, exact), two chains of 16 a step.
    ///
    /// # Safety
    /// The CPU must support AVX2; `a` and `q` must have equal length.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_avx2(a: &[i8], q: &[i16]) -> i32 {
        let n = a.len();
        let (pa, pq) = (a.as_ptr(), q.as_ptr());
        let step = |i: usize| {
            let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
            _mm256_madd_epi16(c, _mm256_loadu_si256(pq.add(i) as *const __m256i))
        };
        let mut s0 = _mm256_setzero_si256();
        let mut s1 = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_add_epi32(s0, step(i));
            s1 = _mm256_add_epi32(s1, step(i + 16));
            i += 32;
        }
        if i + 16 <= n {
            s0 = _mm256_add_epi32(s0, step(i));
            i += 16;
        }
        let s = _mm256_add_epi32(s0, s1);
        let h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b01_00_11_10));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
        let mut sum = _mm_cvtsi128_si32(h);
        while i < n {
            sum = sum.wrapping_add(i32::from(*pa.add(i)) * i32::from(*pq.add(i)));
            i += 1;
        }
        sum
    }

    /// Two 8-lane FMA chains (16 floats a step) hide the FMA latency; 384-d
    /// vectors are 24 steps.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` and `b` must have equal length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                s1,
            );
            i += 16;
        }
        if i + 8 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            i += 8;
        }
        let mut sum = hsum(_mm256_add_ps(s0, s1));
        while i < n {
            sum += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        sum
    }
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

/// Replaces approximate scores (an f16 graph's) with exact f32 cosines from
/// `vectors` and re-sorts: what a user sees is never rounded.
pub fn rescore(vectors: &[f32], dim: usize, query: &[f32], hits: &mut [Neighbor]) {
    for h in hits.iter_mut() {
        h.score = dot(&vectors[h.row * dim..(h.row + 1) * dim], query);
    }
    sort_best_first(hits);
}

fn sort_best_first(v: &mut [Neighbor]) {
    v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
}

/// An HNSW graph whose data ids are vector rows.
pub struct HnswIndex {
    graph: Graph,
    params: HnswParams,
}

/// The graph holds its own copy of every vector (hnsw_rs owns its data). In
/// f16 that copy is half the size of the f32 vectors the library stores,
/// which is what keeps an open library near 1.1x its raw vectors instead of
/// ~2.6x; rankings are re-scored in f32 by the caller (see `query`).
enum Graph {
    F32(Hnsw<'static, f32, UnitCosine>),
    F16(Hnsw<'static, u16, UnitCosineF16>),
}

/// Runs `$body` with `$h` bound to the graph and `$conv` to a function that
/// turns f32 data into the graph's element type.
macro_rules! with_graph {
    ($g:expr, $h:ident, $conv:ident => $body:expr) => {
        match $g {
            Graph::F32($h) => {
                let $conv = |v: &[f32]| -> Vec<f32> { v.to_vec() };
                $body
            }
            Graph::F16($h) => {
                let $conv = |v: &[f32]| -> Vec<u16> { to_f16(v) };
                $body
            }
        }
    };
}

/// Layers hnsw_rs may use; 16 is its maximum and plenty for millions of points.
const MAX_LAYERS: usize = 16;

impl HnswIndex {
    /// Builds over `vectors` (`rows * dim`, all unit length), in parallel.
    pub fn build(vectors: &[f32], dim: usize, params: HnswParams) -> Self {
        let rows = vectors.len() / dim.max(1);
        let (m, efc) = (params.m, params.ef_construction);
        let graph = match params.store {
            Store::F32 => Graph::F32(Hnsw::new(m, rows.max(1), MAX_LAYERS, efc, UnitCosine)),
            Store::F16 => Graph::F16(Hnsw::new(m, rows.max(1), MAX_LAYERS, efc, UnitCosineF16)),
        };
        let index = HnswIndex { graph, params };
        index.insert(vectors, dim, 0);
        index
    }

    /// Adds `vectors` as rows `first_row`, `first_row + 1`, ... to the graph
    /// (an existing or a reloaded one: hnsw_rs inserts into both).
    pub fn insert(&self, vectors: &[f32], dim: usize, first_row: usize) {
        with_graph!(&self.graph, g, conv => {
            let owned: Vec<_> = vectors.chunks_exact(dim).map(conv).collect();
            let data: Vec<(&[_], usize)> =
                owned.iter().map(Vec::as_slice).zip(first_row..).collect();
            g.parallel_insert_slice(&data);
        })
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The graph as flat per-layer adjacency arrays, for fast search over
    /// the library's own vectors (see [`FlatGraph`]). Rows must be 0..len.
    pub fn flatten(&self) -> FlatGraph {
        with_graph!(&self.graph, g, _c => {
            let n = g.get_nb_point();
            let mut adjacency: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
            let (mut entry, mut top) = (0u32, None);
            for point in g.get_point_indexation() {
                let row = point.get_origin_id();
                let Some(adj) = adjacency.get_mut(row) else { continue };
                let level = point.get_point_id().0;
                if top.is_none_or(|t| level > t) {
                    (entry, top) = (row as u32, Some(level));
                }
                *adj = point
                    .get_neighborhood_id()
                    .into_iter()
                    .map(|l| l.into_iter().map(|nb| nb.d_id as u32).collect())
                    .collect();
            }
            FlatGraph::new(&adjacency, entry)
        })
    }

    pub fn len(&self) -> usize {
        with_graph!(&self.graph, g, _c => g.get_nb_point())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate top `k` by cosine. `ef` overrides the search breadth.
    /// In an f16 graph the scores are f16-rounded (within ~1e-3).
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Vec<Neighbor> {
        self.run(query, k, ef, None)
    }

    /// Like [`HnswIndex::search`], visiting only rows for which `keep` holds
    /// (hnsw_rs applies the filter inside the walk).
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
        let found =
            with_graph!(&self.graph, g, conv => g.search_filter(&conv(query), k, ef, filter));
        let mut hits: Vec<Neighbor> = found
            .into_iter()
            .map(|n| Neighbor {
                row: n.d_id,
                score: 1.0 - n.distance,
            })
            .collect();
        sort_best_first(&mut hits);
        hits
    }

    /// Writes the graph under `dir/basename.hnsw.{graph,data}` and returns
    /// the two paths hnsw_rs actually used: how the tests make the files of
    /// a format version 1 library.
    #[cfg(test)]
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<[PathBuf; 2], String> {
        use hnsw_rs::api::AnnT;
        let name = with_graph!(&self.graph, g, _c => g.file_dump(dir, basename))
            .map_err(|e| e.to_string())?;
        Ok(graph_files(dir, &name))
    }

    /// Loads a graph dumped by [`HnswIndex::dump`]. hnsw_rs asserts on
    /// malformed input, so its panics are caught and reported as errors.
    pub fn load(dir: &Path, basename: &str, params: HnswParams) -> Result<Self, IndexError> {
        let path = dir.join(basename);
        let err = |reason: String| IndexError::Load {
            path: path.clone(),
            reason,
        };
        // The loaded graph borrows its HnswIo for its whole life; a library
        // is opened once per process (or per hot reload), so leaking this
        // small struct is the simple way to make that borrow 'static.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let store = params.store;
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let io = io;
            match store {
                Store::F32 => io.load_hnsw::<f32, UnitCosine>().map(Graph::F32),
                Store::F16 => io.load_hnsw::<u16, UnitCosineF16>().map(Graph::F16),
            }
        }))
        .map_err(|_| err("hnsw_rs panicked while reading it".into()))?;
        let graph = loaded.map_err(|e| err(e.to_string()))?;
        Ok(HnswIndex { graph, params })
    }
}

/// IEEE half-precision bits of each value (round to nearest even).
pub fn to_f16(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect()
}

/// 1 - a.b over f16 vectors, clamped at 0 like [`UnitCosine`].
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosineF16;

impl Distance<u16> for UnitCosineF16 {
    fn eval(&self, a: &[u16], b: &[u16]) -> f32 {
        (1.0 - dot_f16(a, b)).max(0.0)
    }
}

/// Dot product of two f16 vectors, accumulated in f32.
pub fn dot_f16(a: &[u16], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        return unsafe { simd::dot_f16_avx2(a, b) };
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| half::f16::from_bits(x).to_f32() * half::f16::from_bits(y).to_f32())
        .sum()
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

    use bench::synthetic as clustered;

    #[test]
    fn dot_matches_naive_at_every_length() {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 37, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
            assert!((dot_portable(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
        }
    }

    #[test]
    fn i8_dot_is_exact_at_every_length() {
        for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 48, 384, 385] {
            let a: Vec<i8> = (0..n)
                .map(|i| ((i * 37) % 255) as i32 - 127)
                .map(|x| x as i8)
                .collect();
            let q: Vec<i16> = (0..n)
                .map(|i| (((i * 7919) % 65535) as i32 - 32767) as i16)
                .collect();
            let naive: i64 = a
                .iter()
                .zip(&q)
                .map(|(&x, &y)| i64::from(x) * i64::from(y))
                .sum();
            assert_eq!(i64::from(dot_i8(&a, &q)), naive, "n={n}");
        }
    }

    #[test]
    fn f16_dot_matches_f32_within_rounding() {
        for n in [0, 5, 8, 16, 23, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 0.1).collect();
            let d = dot_f16(&to_f16(&a), &to_f16(&b));
            assert!((d - dot(&a, &b)).abs() < 1e-3, "n={n}");
        }
    }

    #[test]
    fn both_stores_round_trip_and_old_manifests_mean_f32() {
        let json = r#"{"m":16,"ef_construction":200,"ef_search":64}"#;
        let old: HnswParams = serde_json::from_str(json).unwrap();
        assert_eq!(old.store, Store::F32);
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            json,
            "same bytes back"
        );
        assert_eq!(HnswParams::default().store, Store::F32);
        let dim = 16;
        let v = clustered(400, dim, 9);
        let tmp = tempfile::tempdir().unwrap();
        for store in [Store::F32, Store::F16] {
            let params = HnswParams {
                store,
                ..HnswParams::default()
            };
            let idx = HnswIndex::build(&v, dim, params);
            let q = &v[7 * dim..8 * dim];
            let before = idx.search(q, 5, None);
            assert_eq!(before[0].row, 7, "{store:?}");
            let files = idx.dump(tmp.path(), &format!("g-{store:?}")).unwrap();
            let name = files[0].file_name().unwrap().to_str().unwrap();
            let back =
                HnswIndex::load(tmp.path(), name.trim_end_matches(".hnsw.graph"), params).unwrap();
            assert_eq!(back.search(q, 5, None), before, "{store:?}");
            // A graph read as the other store is an error, not garbage.
            let other = HnswParams {
                store: if store == Store::F32 {
                    Store::F16
                } else {
                    Store::F32
                },
                ..params
            };
            assert!(
                HnswIndex::load(tmp.path(), name.trim_end_matches(".hnsw.graph"), other).is_err()
            );
        }
    }

    #[test]
    fn a_graph_of_ours_records_a_seed_and_no_store() {
        let old = HnswParams {
            store: Store::F16,
            seed: None,
            ..HnswParams::default()
        };
        let ours = own_graph(old);
        assert_eq!((ours.seed, ours.store), (Some(DEFAULT_SEED), Store::F32));
        assert_eq!((ours.m, ours.ef_construction), (old.m, old.ef_construction));
        let seeded = HnswParams {
            seed: Some(7),
            ..HnswParams::default()
        };
        assert_eq!(own_graph(seeded).seed, Some(7));
        let json = serde_json::to_string(&ours).unwrap();
        assert!(!json.contains("store") && json.contains("seed"), "{json}");
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
