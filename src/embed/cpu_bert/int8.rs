//! int8 dense layers for [`super::CpuBert`] (`--precision int8`).
//!
//! Weights are quantized once at load to 8 bits, symmetric per output row
//! (w ≈ `scale[r]·q`, q in -127..=127). Activations are quantized per token
//! column, dynamically, to 8 bits, asymmetric (x ≈ `scale[j]·(q - z[j])`, q
//! in 0..=255 with a zero point z), except for the few outlier features
//! of a text, which are multiplied in f32 (see [`OUTLIER`]).
//!
//! Three operand layouts ([`Layout`]), one i32 lane per group of k steps:
//! - **quads**, on CPUs with a u8 dot product (`vpdpbusd`: AVX-512 VNNI,
//!   AVX-VNNI): four bytes per lane, weights as s8, activations as u8, four
//!   k steps per instruction. The kernel sums exact u8 × s8 products and
//!   the epilogue takes away `z[j]·Σ_k w[i][k]` (each row's sum of
//!   quantized weights, kept at packing).
//! - **pairs**, everywhere else: two i16 halves per lane, multiplied with
//!   `vpmaddwd`/`vpdpwssd`/`smlal`, activations stored as `q - z` (within
//!   ±255), so the sums equal the quad kernel's after its correction: both
//!   layouts give the same integers on every CPU.
//! - **tiles**, on AMX: quads, with the weights row-major for the tile
//!   loads (see `kernel::amx`).
//!
//! Weights are tiles of MR rows (`[tile][group][row]`; row-major `[row][group]`
//! for AMX), activations feature-group-major (`[group][token]`, the f32
//! layout with rows merged two or four at a time). The product is dequantized in the tile
//! epilogue, where bias, residual and GELU are applied as in the f32
//! kernel, with the same operations in the same order on every path.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::kernel::amx::{TBlock, TScale, TILE};
use super::kernel::{self, Act, Init, Isa, MR, NR};
use super::{Buf, Cols, Lhs, Rhs, Start, MC};

/// Largest quantized weight: 8-bit symmetric.
const W_MAX: f32 = 127.0;
/// Largest quantized activation: u8.
pub(super) const X_MAX: f32 = 255.0;
/// Deepest K whose dot products provably fit i32, with the zero-point
/// correction: K·127·255 < 2³¹.
pub(super) const MAX_K: usize = (i32::MAX as usize) / (127 * 255);
/// A narrow layer's input feature whose largest |x| over the text is more
/// than `OUTLIER` times the median feature's is left out of the 8-bit
/// quantization and multiplied in f32 instead (the decomposition of
/// LLM.int8(), Dettmers et al., 2022): a few features of BERT's hidden
/// states are 10-20x the rest (feature 99 of all-MiniLM-L6-v2's reaches 28
/// where the median feature's largest is 1.5), and a per-token scale set
/// by them leaves the others a handful of levels.
const OUTLIER: f32 = 3.0;
/// At most this many outlier features a product: each costs an f32
/// multiply-add per output and token.
const MAX_OUTLIERS: usize = 16;

/// Groups per pass: a B panel of 384 lanes x 16 tokens x 4 bytes (24 KiB)
/// stays in L1, as the f32 kernel's does. 384 pairs cover a hidden-size K
/// in one pass and the FFN's 1536 in two; 384 quads cover 1536 in one.
const GPC: usize = 384;

/// How the operands are packed into i32 lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Two i16 values per lane.
    Pairs,
    /// Four bytes per lane: s8 weights, u8 activations.
    Quads,
    /// Quads with row-major weights, their groups and rows padded to whole
    /// AMX tiles.
    #[cfg(target_arch = "x86_64")]
    Tiles,
}

impl Layout {
    /// k steps per lane.
    pub(super) fn group(self) -> usize {
        match self {
            Layout::Pairs => 2,
            _ => 4,
        }
    }

    /// Whether activations are u8 with zero points (corrected in the
    /// epilogue), rather than `q - z` pairs.
    pub(super) fn unsigned(self) -> bool {
        self != Layout::Pairs
    }

    /// The layout `isa` runs.
    pub(super) fn for_isa(isa: Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        if isa.has_tiles() {
            return Layout::Tiles;
        }
        if isa.has_u8_dot() {
            Layout::Quads
        } else {
            Layout::Pairs
        }
    }

    /// Where lane `g` of row `i` is in a layer of `kg` groups.
    fn index(self, kg: usize, i: usize, g: usize) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Layout::Tiles => i * kg + g,
            _ => (i / MR) * kg * MR + g * MR + i % MR,
        }
    }

    /// Groups and rows stored for `k` x `m` weights.
    fn padded(self, k: usize, m: usize) -> (usize, usize) {
        let kg = k.div_ceil(self.group());
        match self {
            #[cfg(target_arch = "x86_64")]
            Layout::Tiles => (kg.next_multiple_of(TILE), m.next_multiple_of(TILE)),
            _ => (kg, m.next_multiple_of(MR)),
        }
    }
}

/// A dense layer with int8 weights, packed at load for one layout.
pub(super) struct QLinear {
    pub m: usize,
    /// Groups of k (the input size rounded up to whole groups, and for
    /// tiles to whole tiles).
    pub kg: usize,
    pub layout: Layout,
    w: Vec<i32>,
    /// Per output row, padded to whole tiles.
    scale: Vec<f32>,
    /// Per output row, the sum of its quantized weights (u8 activations
    /// only: the zero-point correction).
    row_sum: Vec<i32>,
    pub bias: Vec<f32>,
}

/// Two i16 values as one i32 lane: `lo` in the low half.
pub(super) fn pair(lo: i32, hi: i32) -> i32 {
    (lo & 0xffff) | (hi << 16)
}

/// The two i16 halves of a packed pair.
pub(super) fn unpair(v: i32) -> (i32, i32) {
    (v as i16 as i32, v >> 16)
}

/// Four values as the bytes of one i32 lane, the first in the low byte.
pub(super) fn quad(v: [i32; 4]) -> i32 {
    v.iter()
        .enumerate()
        .fold(0, |acc, (b, &x)| acc | ((x & 0xff) << (8 * b)))
}

/// The four bytes of a lane, as u8 (`signed` false) or s8 values.
pub(super) fn unquad(v: i32, signed: bool) -> [i32; 4] {
    std::array::from_fn(|b| {
        let byte = (v >> (8 * b)) & 0xff;
        if signed {
            byte as u8 as i8 as i32
        } else {
            byte
        }
    })
}

/// Values `g` k steps at a time into one lane of `layout`.
fn lane(layout: Layout, v: &[i32]) -> i32 {
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    match layout {
        Layout::Pairs => pair(at(0), at(1)),
        _ => quad([at(0), at(1), at(2), at(3)]),
    }
}

/// Round to nearest even and clamp to ±`max`, as the AVX2 clamp plus
/// `_mm256_cvtps_epi32` do. Clamping first is the same (`max` is whole)
/// and bounds |x| by 2047 < 2²², where adding and taking away 1.5·2²³
/// rounds to nearest even exactly: `round_ties_even` is a libm call
/// (`rintf`) without SSE4.1, and was ~45% of loading an int8 model. NaN
/// stays NaN and converts to 0, as before.
pub(super) fn quantize(x: f32, max: f32) -> i32 {
    clamp_round(x, -max, max)
}

/// `x` clamped to [lo, hi] (whole, within ±2²²) and rounded to nearest
/// even, as [`quantize`].
pub(super) fn clamp_round(x: f32, lo: f32, hi: f32) -> i32 {
    const ROUND: f32 = 12_582_912.0;
    ((x.clamp(lo, hi) + ROUND) - ROUND) as i32
}

impl QLinear {
    /// Weight (i, kk), quantized.
    fn qweight(&self, i: usize, kk: usize) -> i32 {
        let g = self.layout.group();
        let lane = self.w[self.layout.index(self.kg, i, kk / g)];
        match self.layout {
            Layout::Pairs => {
                let (a, b) = unpair(lane);
                [a, b][kk % 2]
            }
            _ => unquad(lane, true)[kk % 4],
        }
    }

    /// Weight (i, kk), dequantized.
    fn weight(&self, i: usize, kk: usize) -> f32 {
        self.qweight(i, kk) as f32 * self.scale[i]
    }

    /// The f32 operands of the outlier features' share of the product:
    /// their weight columns (dequantized, packed as an [`Lhs`]) and their
    /// rows of `x` (token columns `c`), in `bufs`.
    pub fn outlier_operands<'a>(
        &self,
        outliers: &[usize],
        x: &[f32],
        c: Cols,
        bufs: &'a mut (Buf, Buf),
    ) -> (Lhs<'a>, Rhs<'a>) {
        let r = outliers.len();
        let tiles = self.m.div_ceil(MR);
        let w = bufs.0.get(tiles * r * MR);
        for (t, tile) in w.chunks_exact_mut(r * MR).enumerate() {
            for (j, &o) in outliers.iter().enumerate() {
                for (ri, v) in tile[j * MR..][..MR].iter_mut().enumerate() {
                    let i = t * MR + ri;
                    *v = if i < self.m { self.weight(i, o) } else { 0.0 };
                }
            }
        }
        let xo = bufs.1.get(r * c.ld);
        for (dst, &o) in xo.chunks_exact_mut(c.ld).zip(outliers) {
            dst.copy_from_slice(&x[o * c.ld..][..c.ld]);
        }
        let lhs = Lhs {
            data: w,
            m: self.m,
            k: r,
            tile_stride: r * MR,
            k_stride: MR,
        };
        (lhs, Rhs::tokens(xo, r, c))
    }

    /// Quantizes and packs the `m x k` matrix whose row r is `row(r)` (k
    /// values), in `layout`.
    pub fn pack<'a>(
        m: usize,
        k: usize,
        row: impl Fn(usize) -> &'a [f32],
        bias: Vec<f32>,
        layout: Layout,
    ) -> Self {
        let g = layout.group();
        let (kg, rows) = layout.padded(k, m);
        let mut scale = vec![0f32; rows];
        let mut row_sum = vec![0i32; rows];
        let mut w = vec![0i32; rows * kg];
        let mut q = vec![0i32; k.div_ceil(g) * g];
        // Rows past m pad the last tile with zeros (scale 0, all q 0), as
        // do groups past k.
        for i in 0..m {
            let src = &row(i)[..k];
            let amax = src.iter().map(|v| v.abs()).fold(0f32, f32::max);
            let inv = if amax > 0.0 { W_MAX / amax } else { 0.0 };
            scale[i] = if amax > 0.0 { amax / W_MAX } else { 0.0 };
            for (q, &x) in q.iter_mut().zip(src) {
                *q = quantize(x * inv, W_MAX);
            }
            row_sum[i] = q[..k].iter().sum();
            for (gi, vals) in q.chunks_exact(g).enumerate() {
                w[layout.index(kg, i, gi)] = lane(layout, vals);
            }
        }
        if !layout.unsigned() {
            row_sum.clear();
        }
        let mut bias = bias;
        bias.resize(rows, 0.0);
        QLinear {
            m,
            kg,
            layout,
            w,
            scale,
            row_sum,
            bias,
        }
    }
}

/// Activations quantized per token column: element (group p, token j) at
/// `data[p * ld + j]`, `x[k][j] ≈ scale[j] · (q - zero[j])`.
#[derive(Clone, Copy)]
pub(super) struct QAct<'a> {
    pub data: &'a [i32],
    pub scale: &'a [f32],
    /// Zero points, for quads (pairs hold `q - z` already).
    pub zero: Option<&'a [i32]>,
    /// Input features quantized as zeros, to be multiplied in f32
    /// ([`QLinear::outlier_operands`]).
    pub outliers: &'a [usize],
    pub kg: usize,
    pub c: Cols,
}

/// Buffers for one quantized activation matrix, pooled with the text's scratch.
#[derive(Default)]
pub(super) struct QBuf {
    data: Vec<i32>,
    zero: Vec<i32>,
    cols: Buf,
    outliers: Vec<usize>,
    skip: Vec<bool>,
}

/// How [`kernel::quantize_groups`] maps value (k, j): `q =
/// round(clamp(x·inv[j] + off[j], 0, X_MAX)) - sub[j]`, packed
/// `layout.group()` to a lane.
pub(super) struct QuantSpec<'a> {
    /// Rows quantized as if zero (empty: none).
    pub skip: &'a [bool],
    pub inv: &'a [f32],
    pub off: &'a [f32],
    pub sub: &'a [i32],
    pub layout: Layout,
}

/// Quantizes the `k` feature rows of `x` (token columns `c`, rows `c.ld`
/// apart) per column into `buf`, for layer `w`.
pub(super) fn quantize_cols<'a>(
    isa: Isa,
    w: &QLinear,
    x: &[f32],
    k: usize,
    c: Cols,
    buf: &'a mut QBuf,
) -> QAct<'a> {
    let (n, ld) = (c.n, c.ld);
    assert!(k > 0 && n % NR == 0 && n <= ld && x.len() >= k * ld);
    let kg = w.kg;
    if buf.data.len() < kg * ld {
        buf.data.resize(kg * ld, 0);
    }
    // Groups past k (tiles are padded to whole tiles) multiply zero
    // weights; zeroed all the same, so that no stale bits are read.
    buf.data[k.div_ceil(w.layout.group()) * ld..kg * ld].fill(0);
    buf.zero.clear();
    buf.zero.resize(n, 0);
    let data = &mut buf.data[..kg * ld];
    let cols = buf.cols.get(4 * n);
    let (scale, rest) = cols.split_at_mut(n);
    let (inv, rest) = rest.split_at_mut(n);
    let (off, lo) = rest.split_at_mut(n);
    buf.outliers.clear();
    // Only real tokens: the padding columns hold whatever the layers made
    // of nothing, and would pick the outliers of a short text.
    find_outliers(&x[..k * ld], ld, c.tokens, &mut buf.outliers);
    buf.skip.clear();
    buf.skip.resize(k, false);
    for &o in &buf.outliers {
        buf.skip[o] = true;
    }
    // Column ranges, then the scales: the same divisions on every ISA, so
    // every path quantizes identically.
    scale.fill(0.0);
    lo.fill(0.0);
    for (kk, row) in x[..k * ld].chunks_exact(ld).enumerate() {
        if buf.skip.get(kk) == Some(&true) {
            continue;
        }
        for ((hi, lo), &v) in scale.iter_mut().zip(lo.iter_mut()).zip(&row[..n]) {
            (*hi, *lo) = (hi.max(v), lo.min(v));
        }
    }
    for (((s, i), o), (lo, z)) in scale
        .iter_mut()
        .zip(inv.iter_mut())
        .zip(off.iter_mut())
        .zip(lo.iter().zip(buf.zero.iter_mut()))
    {
        // The levels cover [min x, max x] widened to hold 0, so that
        // zeros (and the outliers left out) stay exact.
        let span = *s - lo;
        // A zero column (or a NaN one: max ignores NaN only sometimes)
        // quantizes to zeros.
        if span > 0.0 && span.is_finite() {
            *i = X_MAX / span;
            *s = span / X_MAX;
            *z = clamp_round(-lo * *i, 0.0, X_MAX);
            *o = *z as f32;
        } else {
            (*s, *i, *o, *z) = (0.0, 0.0, 0.0, 0);
        }
    }
    let zeros = [0i32; 0];
    let spec = QuantSpec {
        skip: &buf.skip,
        inv,
        off,
        sub: match w.layout {
            Layout::Pairs => &buf.zero,
            _ => &zeros,
        },
        layout: w.layout,
    };
    kernel::quantize_groups(isa, x, k, n, ld, &spec, data);
    QAct {
        data,
        scale,
        zero: w.layout.unsigned().then_some(&buf.zero[..]),
        outliers: &buf.outliers,
        kg,
        c,
    }
}

/// The rows of `x` (`n` columns, rows `ld` apart) whose largest |x| is
/// over [`OUTLIER`] times the median row's, largest first, at most
/// [`MAX_OUTLIERS`], in ascending order.
fn find_outliers(x: &[f32], ld: usize, n: usize, out: &mut Vec<usize>) {
    let mut amax: Vec<(f32, usize)> = x
        .chunks_exact(ld)
        .enumerate()
        .map(|(i, row)| (row[..n].iter().fold(0f32, |m, v| m.max(v.abs())), i))
        .collect();
    let median = {
        let mut v: Vec<f32> = amax.iter().map(|a| a.0).collect();
        let mid = v.len() / 2;
        *v.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    amax.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.extend(
        amax.iter()
            .take(MAX_OUTLIERS)
            .take_while(|a| a.0 > OUTLIER * median)
            .map(|a| a.1),
    );
    out.sort_unstable();
}

/// The zero-point correction of a quad panel.
#[derive(Clone, Copy)]
pub(super) struct U8Zero<'a> {
    /// Row sums of the quantized weights, from the block's first row.
    pub row_sum: &'a [i32],
    /// The panel's token zero points (NR values).
    pub zero: &'a [i32],
}

/// One MR-row block of tiles against one 16-token panel over one pass of
/// k groups: the int8 counterpart of `super::Panel`.
pub(super) struct QPanel<'a> {
    /// Weights from the block's first tile and the pass's first group:
    /// tile t, group p, row r at `a[t * tile_stride + p * MR + r]`.
    pub a: &'a [i32],
    pub tile_stride: usize,
    /// Row scales of the block.
    pub w_scale: &'a [f32],
    /// Activations: group p, token j at `b[p * ldb + j]`.
    pub b: &'a [i32],
    pub ldb: usize,
    /// Token scales of the panel (NR values).
    pub x_scale: &'a [f32],
    pub kpc: usize,
    pub rows: usize,
    pub init: Init<'a>,
    pub act: Act,
    /// Quads (u8 × s8) with their correction; `None`: i16 pairs.
    pub u8: Option<U8Zero<'a>>,
}

/// `C = act(start + dequant(W·X))` for W's tiles `t_range`, C row-major
/// with stride `ldc` from the block's first row.
#[allow(clippy::too_many_arguments)]
fn qmatmul(
    isa: Isa,
    w: &QLinear,
    t_range: std::ops::Range<usize>,
    x: QAct<'_>,
    start: Start<'_>,
    act: Act,
    c: &mut [f32],
    ldc: usize,
) {
    let (kg, n) = (w.kg, x.c.n);
    assert!(x.kg == kg && kg > 0 && n % NR == 0 && ldc >= n);
    assert!(x.zero.is_some() == w.layout.unsigned());
    let rows = t_range.start * MR..w.m.min(t_range.end * MR);
    if rows.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if w.layout == Layout::Tiles {
        let (r0, zero) = (rows.start, x.zero.unwrap_or_default());
        let block = TBlock {
            a: &w.w[r0 * kg..],
            lda: kg,
            b: x.data,
            ldb: x.c.ld,
            n,
            rows: rows.len(),
            init: start.init(0, r0),
            act,
            q: Some(TScale {
                w_scale: &w.scale[r0..],
                x_scale: x.scale,
                zero: U8Zero {
                    row_sum: &w.row_sum[r0..],
                    zero,
                },
            }),
        };
        return kernel::tblock(isa, &block, c, ldc);
    }
    let tile_stride = kg * MR;
    assert!(c.len() >= (rows.len() - 1) * ldc + n);
    assert!(w.w.len() >= t_range.end * tile_stride && w.scale.len() >= t_range.end * MR);
    // Quads take the whole K in one pass (the correction is applied once).
    let per_pass = match w.layout {
        Layout::Pairs => GPC,
        _ => kg,
    };
    for p0 in (0..kg).step_by(per_pass) {
        let kpc = per_pass.min(kg - p0);
        let last = p0 + kpc == kg;
        let init = start.init(p0, rows.start);
        for p in 0..n / NR {
            let panel = QPanel {
                a: &w.w[t_range.start * tile_stride + p0 * MR..],
                tile_stride,
                w_scale: &w.scale[rows.start..],
                b: &x.data[p0 * x.c.ld + p * NR..],
                ldb: x.c.ld,
                x_scale: &x.scale[p * NR..][..NR],
                kpc,
                rows: rows.len(),
                init,
                act: if last { act } else { Act::None },
                u8: x.zero.map(|z| U8Zero {
                    row_sum: &w.row_sum[rows.start..],
                    zero: &z[p * NR..][..NR],
                }),
            };
            kernel::qpanel(isa, &panel, &mut c[p * NR..], ldc);
        }
    }
}

/// [`qmatmul`] with C's rows cut into blocks of MC, as rayon tasks. `c`
/// holds exactly `w.m` rows.
pub(super) fn par_qmatmul(
    isa: Isa,
    w: &QLinear,
    x: QAct<'_>,
    start: Start<'_>,
    act: Act,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(c.len() == w.m * ldc);
    c.par_chunks_mut(MC * ldc).enumerate().for_each(|(i, c)| {
        let t0 = i * MC / MR;
        let t1 = (t0 + MC / MR).min(w.m.div_ceil(MR));
        qmatmul(isa, w, t0..t1, x, start, act, c, ldc);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::kernel::rng;

    fn isas() -> Vec<Isa> {
        Isa::testable()
    }

    #[test]
    fn pairs_round_trip() {
        for (lo, hi) in [(0, 0), (-127, 127), (127, -127), (-1, -1), (5, -3)] {
            assert_eq!(unpair(pair(lo, hi)), (lo, hi));
        }
    }

    /// Element `kk` of a packed lane (`signed`: a weight).
    fn element(layout: Layout, lane: i32, kk: usize, signed: bool) -> i64 {
        (match layout {
            Layout::Pairs => {
                let (a, b) = unpair(lane);
                [a, b][kk % 2]
            }
            _ => unquad(lane, signed)[kk % 4],
        }) as i64
    }

    #[test]
    fn quads_round_trip() {
        for v in [[0, 0, 0, 0], [-127, 127, -1, 5], [255, 0, 128, 1]] {
            let signed = v.iter().any(|&x| x < 0);
            let back = unquad(quad(v), signed);
            assert_eq!(back, v);
        }
    }

    #[test]
    fn quantize_rounds_half_to_even_and_clamps_like_libm() {
        let want = |x: f32, max: f32| x.round_ties_even().clamp(-max, max) as i32;
        let mut r = rng(3);
        let specials = [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            126.5,
            -126.5,
            127.49,
            127.5,
            2046.5,
            -2046.5,
            2047.5,
            1e9,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            0.49999997,
        ];
        let xs = specials
            .into_iter()
            .chain((0..200_000).map(|_| r() * 3000.0))
            .chain((-5000..5000).map(|i| i as f32 * 0.5));
        for x in xs {
            for max in [W_MAX, X_MAX, 2047.0] {
                assert_eq!(quantize(x, max), want(x, max), "{x} {max}");
            }
        }
    }

    /// The kernel's integer products equal a naive i64 matmul of the
    /// quantized operands (less the zero points), exactly, at edge shapes
    /// (M not a multiple of MR, K not a whole number of groups, K over one
    /// pass, several row blocks), in each layout the CPU runs; the
    /// dequantized output matches the same sums in f64 with bias, residual
    /// and activation; and the paths of one layout give the same floats.
    #[test]
    fn int8_matmul_matches_naive_i32_at_edges() {
        for (m, k, ntok) in [
            (1, 1, 1),
            (7, 3, 17),
            (13, 384, 16),
            (200, 385, 40),
            (6, 1536, 33),
            (250, 1600, 20),
        ] {
            let mut r = rng((m * 1000 + k * 10 + ntok) as u64);
            let w: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let bias: Vec<f32> = (0..m).map(|_| r()).collect();
            let c = Cols::for_tokens(ntok);
            // Skewed like GELU's outputs, so that columns get a zero point.
            let x: Vec<f32> = (0..k * c.ld).map(|_| r() * 4.0 + 1.0).collect();
            let c0: Vec<f32> = (0..m * c.ld).map(|_| r()).collect();
            let mut results: Vec<(Isa, Vec<f32>)> = Vec::new();
            for isa in isas() {
                let layout = Layout::for_isa(isa);
                let lin = QLinear::pack(m, k, |i| &w[i * k..][..k], bias.clone(), layout);
                let g = layout.group();
                let wq = |i: usize, kk: usize| -> i64 { lin.qweight(i, kk) as i64 };
                let mut qb = QBuf::default();
                let xq = quantize_cols(isa, &lin, &x, k, c, &mut qb);
                assert!(xq.outliers.is_empty(), "{:?}", xq.outliers);
                let xv = |kk: usize, j: usize| -> i64 {
                    let v = element(layout, xq.data[(kk / g) * c.ld + j], kk, false);
                    // Quads hold q; pairs hold q - z already.
                    v - xq.zero.map_or(0, |z| z[j] as i64)
                };
                for (start, act) in [
                    (Start::Bias(&lin.bias), Act::None),
                    (Start::LoadBias(&lin.bias), Act::GeluErf),
                    (Start::Zero, Act::GeluTanh),
                ] {
                    let mut out = c0.clone();
                    par_qmatmul(isa, &lin, xq, start, act, &mut out, c.ld);
                    for i in 0..m {
                        for j in 0..c.n {
                            let dot: i64 = (0..k).map(|kk| wq(i, kk) * xv(kk, j)).sum();
                            let mut want = dot as f64 * lin.scale[i] as f64 * xq.scale[j] as f64;
                            if !matches!(start, Start::Zero) {
                                want += bias[i] as f64;
                            }
                            if matches!(start, Start::LoadBias(_)) {
                                want += c0[i * c.ld + j] as f64;
                            }
                            let want = kernel::scalar::act(act, want as f32) as f64;
                            let got = out[i * c.ld + j] as f64;
                            assert!(
                                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{isa:?} {m}x{k}x{ntok} ({i},{j}) {got} {want}"
                            );
                        }
                        // Columns past n are not written.
                        assert_eq!(
                            out[i * c.ld + c.n..(i + 1) * c.ld],
                            c0[i * c.ld + c.n..(i + 1) * c.ld]
                        );
                    }
                    if matches!(act, Act::None) {
                        results.push((isa, out));
                    }
                }
                // Zero maps to the zero point, and each column's range
                // reaches a level's end.
                for j in 0..c.n {
                    let q = |kk| xv(kk, j) + xq.zero.map_or(0, |z| z[j] as i64);
                    let (lo, hi) = (0..k).fold((i64::MAX, i64::MIN), |(a, b), kk| {
                        (a.min(q(kk)), b.max(q(kk)))
                    });
                    if layout.unsigned() {
                        assert!(lo >= 0 && hi <= 255 && (lo == 0 || hi == 255), "{lo}..{hi}");
                    }
                }
            }
            // The paths of one layout quantize identically, sum exactly and
            // dequantize with the same operations in the same order (GELU's
            // polynomials differ in FMA use, so only the linear case).
            // Across layouts only the passes over K differ (pairs past 768
            // add two passes' partial products in f32).
            // Quads and tiles sum the same integers in one pass and share
            // the epilogue: they agree too.
            for (isa, out) in &results {
                let unsigned = Layout::for_isa(*isa).unsigned();
                if let Some((first, want)) = results
                    .iter()
                    .find(|(i, _)| Layout::for_isa(*i).unsigned() == unsigned)
                {
                    assert_eq!(out, want, "{isa:?} vs {first:?} {m}x{k}x{ntok}");
                }
            }
        }
    }

    /// A feature far larger than the rest is found, left out of the
    /// quantization and multiplied in f32: the layer's output stays within
    /// 8-bit error of the exact product, where quantizing it with the rest
    /// would lose the small features.
    #[test]
    fn outlier_features_are_multiplied_in_f32() {
        let (m, k, ntok) = (20, 64, 24);
        let mut r = rng(11);
        let w: Vec<f32> = (0..m * k).map(|_| r()).collect();
        let c = Cols::for_tokens(ntok);
        let mut x: Vec<f32> = (0..k * c.ld).map(|_| r()).collect();
        for v in &mut x[7 * c.ld..8 * c.ld] {
            *v *= 40.0;
        }
        let mut outliers = Vec::new();
        find_outliers(&x, c.ld, c.tokens, &mut outliers);
        assert_eq!(outliers, [7]);
        for isa in isas() {
            let lin = QLinear::pack(
                m,
                k,
                |i| &w[i * k..][..k],
                vec![0.0; m],
                Layout::for_isa(isa),
            );
            let mut qb = QBuf::default();
            let xq = quantize_cols(isa, &lin, &x, k, c, &mut qb);
            assert_eq!(xq.outliers, [7]);
            let mut bufs = Default::default();
            let (wo, xo) = lin.outlier_operands(xq.outliers, &x, c, &mut bufs);
            let mut out = vec![0f32; m * c.ld];
            super::super::par_matmul(isa, wo, xo, Start::Zero, Act::None, &mut out, c.ld);
            par_qmatmul(isa, &lin, xq, Start::Load, Act::None, &mut out, c.ld);
            for i in 0..m {
                for j in 0..c.n {
                    let want: f64 = (0..k)
                        .map(|kk| w[i * k + kk] as f64 * x[kk * c.ld + j] as f64)
                        .sum();
                    let got = out[i * c.ld + j] as f64;
                    // The weights' 8 bits on the outlier (|w| ≤ 1, half a
                    // step of 1/127, times 40), and the rest's 8 bits.
                    assert!((got - want).abs() < 0.25, "{isa:?} ({i},{j}) {got} {want}");
                }
            }
        }
    }

    /// Quantization error bound: per element at most half a step.
    #[test]
    fn quantized_weights_are_within_half_a_step() {
        let mut r = rng(9);
        let (m, k) = (20, 31);
        let w: Vec<f32> = (0..m * k).map(|_| r() * 0.1).collect();
        let lin = QLinear::pack(m, k, |i| &w[i * k..][..k], vec![0.0; m], Layout::Pairs);
        for i in 0..m {
            for kk in 0..k {
                let v = lin.w[(i / MR) * lin.kg * MR + (kk / 2) * MR + i % MR];
                let q = element(Layout::Pairs, v, kk, true);
                let err = (q as f32 * lin.scale[i] - w[i * k + kk]).abs();
                assert!(err <= lin.scale[i] * 0.5001, "({i},{kk}) {err}");
            }
        }
    }
}
