//! hnsw_rs's graph, the comparison builder of `bench index --builder
//! hnsw-rs` (feature `hnsw-rs`): the crate the design started from, which
//! built format version 1 libraries' graphs, measured against ours. Its
//! graph is copied into a [`FlatGraph`], so both builders' graphs are
//! searched by the same walk.
//!
//! The graph stores its vectors as f16 (`UnitCosineF16`), as those libraries
//! did: half the memory of an f32 copy, which is what its peak memory is
//! measured with.

use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::prelude::Distance;

use crate::index::{FlatGraph, HnswParams};

/// Layers hnsw_rs may use; 16 is its maximum and plenty for millions of points.
const MAX_LAYERS: usize = 16;

/// Builds hnsw_rs's graph of `vectors` (`rows * dim`, unit length) in
/// parallel, as a [`FlatGraph`] with 8-bit codes.
pub fn build(vectors: &[f32], dim: usize, params: &HnswParams) -> FlatGraph {
    let rows = vectors.len() / dim.max(1);
    let hnsw = Hnsw::new(
        params.m,
        rows.max(1),
        MAX_LAYERS,
        params.ef_construction,
        UnitCosineF16,
    );
    let owned: Vec<Vec<u16>> = vectors.chunks_exact(dim).map(to_f16).collect();
    let data: Vec<(&[u16], usize)> = owned.iter().map(Vec::as_slice).zip(0..).collect();
    hnsw.parallel_insert_slice(&data);
    drop(data);
    drop(owned);
    flatten(&hnsw).with_codes(vectors.chunks_exact(dim), dim)
}

/// The graph's links as flat per-layer adjacency arrays. Rows are 0..len.
fn flatten(g: &Hnsw<'_, u16, UnitCosineF16>) -> FlatGraph {
    let n = g.get_nb_point();
    let mut adjacency: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
    let (mut entry, mut top) = (0u32, None);
    for point in g.get_point_indexation() {
        let row = point.get_origin_id();
        let Some(adj) = adjacency.get_mut(row) else {
            continue;
        };
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
}

/// IEEE half-precision bits of each value (round to nearest even).
fn to_f16(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect()
}

/// `1 - a·b` over f16 unit vectors, clamped at 0: hnsw_rs's own `DistDot`
/// asserts on the tiny negatives that rounding gives for near-identical
/// vectors.
#[derive(Debug, Default, Clone, Copy)]
struct UnitCosineF16;

impl Distance<u16> for UnitCosineF16 {
    fn eval(&self, a: &[u16], b: &[u16]) -> f32 {
        (1.0 - dot_f16(a, b)).max(0.0)
    }
}

/// Dot product of two f16 vectors, accumulated in f32: with F16C when the
/// CPU has it (checked once), else [`dot_f16_portable`].
fn dot_f16(a: &[u16], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); equal lengths.
        return unsafe { simd::dot_f16_avx2(a, b) };
    }
    dot_f16_portable(a, b)
}

fn dot_f16_portable(a: &[u16], b: &[u16]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| half::f16::from_bits(x).to_f32() * half::f16::from_bits(y).to_f32())
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }

    /// Widens 8 halves at a time with F16C; two FMA chains.
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
        let s = _mm256_add_ps(s0, s1);
        let hi = _mm256_extractf128_ps(s, 1);
        let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        let mut sum = _mm_cvtss_f32(q);
        while i < n {
            sum += half::f16::from_bits(*pa.add(i)).to_f32()
                * half::f16::from_bits(*pb.add(i)).to_f32();
            i += 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{dot, exact_search, recall, synthetic};

    #[test]
    fn f16_dot_matches_f32_within_rounding() {
        for n in [0, 5, 8, 15, 16, 17, 23, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 0.1).collect();
            let (ha, hb) = (to_f16(&a), to_f16(&b));
            assert!((dot_f16(&ha, &hb) - dot(&a, &b)).abs() < 1e-3, "n={n}");
            assert!(
                (dot_f16(&ha, &hb) - dot_f16_portable(&ha, &hb)).abs() < 1e-5,
                "n={n}"
            );
        }
        // Rounding makes a unit vector's f16 dot with itself a hair off 1:
        // the distance is clamped at 0, never negative.
        for v in [[0.6f32, 0.8], [0.600_1, 0.800_1], [1.0, 0.0]] {
            let h = to_f16(&v);
            let d = UnitCosineF16.eval(&h, &h);
            assert!((0.0..1e-3).contains(&d), "{v:?}: {d}");
        }
        assert_eq!(
            UnitCosineF16.eval(&to_f16(&[1.0, 0.01]), &to_f16(&[1.0, 0.01])),
            0.0
        );
    }

    #[test]
    fn hnsw_rs_graph_recall_against_exact() {
        let dim = 32;
        let v = synthetic(3000, dim, 42);
        let g = build(&v, dim, &HnswParams::default());
        assert_eq!(g.rows(), 3000);
        let queries: Vec<&[f32]> = v.chunks_exact(dim).step_by(29).take(100).collect();
        let rows = |hits: Vec<crate::index::Neighbor>| hits.iter().map(|n| n.row).collect();
        let truth: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| rows(exact_search(&v, dim, q, 10, &|_| true)))
            .collect();
        let found: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| rows(g.search(&v, dim, q, 10, 64, None)))
            .collect();
        let r = recall(&truth, &found);
        println!("hnsw_rs recall@10 = {r:.4}");
        assert!(r >= 0.95, "recall@10 {r}");
    }
}
