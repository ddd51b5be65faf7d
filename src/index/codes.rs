//! 8-bit codes of the vectors, and the scorers a graph walk uses.
//!
//! The walk scores rows against 8-bit codes of the vectors (one scale per
//! row), not the f32 vectors: a 384-d row is then 6 cache lines instead of
//! 24, and at 75k papers all codes (29 MB) stay near the core where the f32
//! vectors (115 MB) come from memory: the f32 dot product was 64% of a
//! query, mostly stalled on those loads (perf). The codes cost 1/4 of the
//! raw vectors in memory.

use std::cmp::Ordering;
use std::sync::Arc;

use memmap2::Mmap;

use super::distance::{dot, dot_i8, prefetch};

/// Each row's vector as i8 codes with one scale: `v ≈ scale · code`,
/// symmetric, the largest |component| mapped to 127.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Codes {
    pub(super) dim: usize,
    pub(super) scale: Vec<f32>,
    pub(super) q: CodeBytes,
}

/// The codes themselves: built in memory, or left in the mapped file they
/// were read from. Copying them out (29 MB at 75k papers, into fresh pages
/// the kernel must zero first) took 22% of a cold CLI search's CPU samples
/// (~20 ms of its wall time); mapped, a search touches only the pages of
/// the rows it visits.
#[derive(Clone)]
pub(super) enum CodeBytes {
    Owned(Vec<i8>),
    Mapped {
        map: Arc<Mmap>,
        at: usize,
        len: usize,
    },
}

impl CodeBytes {
    pub(super) fn as_slice(&self) -> &[i8] {
        match self {
            CodeBytes::Owned(v) => v,
            CodeBytes::Mapped { map, at, len } => bytemuck::cast_slice(&map[*at..*at + *len]),
        }
    }
}

impl PartialEq for CodeBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for CodeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CodeBytes({} codes)", self.as_slice().len())
    }
}

impl Codes {
    pub(super) fn new<'a>(rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Self {
        let mut scale = Vec::new();
        let mut q = Vec::new();
        for v in rows {
            let (s, codes) = symmetric(v, 127.0);
            scale.push(s);
            q.extend(codes.map(|x| x as i8));
        }
        Codes {
            dim,
            scale,
            q: CodeBytes::Owned(q),
        }
    }

    /// Rows coded.
    pub(super) fn rows(&self) -> usize {
        self.scale.len()
    }

    fn row(&self, r: u32) -> &[i8] {
        &self.q.as_slice()[r as usize * self.dim..(r as usize + 1) * self.dim]
    }
}

/// How the walk scores a row against the query.
pub(super) trait Scorer {
    fn score(&self, r: u32) -> f32;
    fn prefetch(&self, r: u32);
}

/// Exact f32 cosines over the library's vectors.
pub(super) struct F32Rows<'a> {
    pub(super) vectors: &'a [f32],
    pub(super) dim: usize,
    pub(super) query: &'a [f32],
}

impl F32Rows<'_> {
    fn row(&self, r: u32) -> &[f32] {
        &self.vectors[r as usize * self.dim..(r as usize + 1) * self.dim]
    }
}

impl Scorer for F32Rows<'_> {
    fn score(&self, r: u32) -> f32 {
        dot(self.row(r), self.query)
    }
    fn prefetch(&self, r: u32) {
        prefetch(self.row(r));
    }
}

/// Approximate cosines from the codes, the query quantized to i16 (its own
/// rounding is ~1e-5 of the codes').
pub(super) struct CodedRows<'a> {
    codes: &'a Codes,
    query: Vec<i16>,
    /// A row's score is `dot · scale[row] · query_scale`.
    query_scale: f32,
}

impl<'a> CodedRows<'a> {
    pub(super) fn new(codes: &'a Codes, query: &[f32]) -> Self {
        // Keep |sum| = |q|·127·dim below 2³¹ so the i32 sums are exact.
        let limit = ((i32::MAX as usize) / (127 * codes.dim.max(1))).min(i16::MAX as usize);
        let (query_scale, q) = symmetric(query, limit as f32);
        CodedRows {
            codes,
            query: q.map(|x| x as i16).collect(),
            query_scale,
        }
    }
}

impl Scorer for CodedRows<'_> {
    fn score(&self, r: u32) -> f32 {
        let s = self.codes.scale[r as usize] * self.query_scale;
        dot_i8(self.codes.row(r), &self.query) as f32 * s
    }
    fn prefetch(&self, r: u32) {
        prefetch(self.codes.row(r));
    }
}

/// Symmetric quantization of `v` to whole numbers in ±`limit`: the scale
/// (largest |component| / limit; 0 for a zero or non-finite vector) and the
/// rounded values, as f32s for the caller to narrow.
fn symmetric(v: &[f32], limit: f32) -> (f32, impl Iterator<Item = f32> + '_) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / limit
    } else {
        0.0
    };
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let values = v
        .iter()
        .map(move |x| (x * inv).round().clamp(-limit, limit));
    (scale, values)
}

/// A score with a total order, for the heaps.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Scored(pub(super) f32, pub(super) u32);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::super::exact::synthetic;
    use super::*;

    #[test]
    fn coded_scores_are_within_rounding_of_the_cosines() {
        let dim = 384;
        let v = synthetic(50, dim, 3);
        let codes = Codes::new(v.chunks_exact(dim), dim);
        assert_eq!(codes.rows(), 50);
        let query = &v[..dim];
        let coded = CodedRows::new(&codes, query);
        let exact = F32Rows {
            vectors: &v,
            dim,
            query,
        };
        for r in 0..50 {
            assert!((coded.score(r) - exact.score(r)).abs() < 5e-3, "row {r}");
        }
        // A zero vector codes to zeros with scale 0, never NaN.
        let zero = Codes::new([&[0f32; 4][..]].into_iter(), 4);
        assert_eq!(zero.scale, vec![0.0]);
        assert_eq!(CodedRows::new(&zero, &[1.0, 0.0, 0.0, 0.0]).score(0), 0.0);
    }
}
