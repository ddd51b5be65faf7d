//! int8 dense layers for [`super::CpuBert`] (`--precision int8`).
//!
//! Weights are quantized once at load to 8 bits, symmetric per output row
//! (w ≈ `scale[r]·q`, q in -127..=127); activations dynamically per token
//! column, symmetric, to 12 bits (x ≈ `scale[j]·q`, q in -2047..=2047; see
//! [`X_MAX`] for why not 8). Both are kept as i16 and multiplied with
//! `vpmaddwd` (two k steps per instruction, exact i32 sums): on Zen 3 it
//! issues on two pipes like FMA but does twice the multiply-adds, and
//! unlike `vpmaddubsw` (u8 x i8 into saturating i16) it needs neither a
//! zero point nor 7-bit operands, and takes wider activations for free.
//! The product is dequantized in the tile epilogue, where bias, residual
//! and GELU are applied as in the f32 kernel.
//!
//! Layout: k is taken in pairs. One i32 holds the pair (k = 2p in the low
//! half, 2p + 1 in the high half), so the packed operands are i32 arrays:
//! weights as MR-row tiles of pairs (`[tile][pair][row]`), activations
//! feature-pair-major (`[pair][token]`, the f32 layout with rows merged two
//! by two). Integer sums are exact and the dequantization is the same
//! operations in the same order, so the scalar fallback gives the very same
//! results, bit for bit, except after GELU (f64 there, f32 on AVX2: within
//! ~5e-7).

use rayon::prelude::*;

use super::kernel::{self, Act, Init, Isa, MR, NR};
use super::{Buf, Cols, Start, MC};

/// Largest quantized weight: 8-bit symmetric.
const W_MAX: f32 = 127.0;
/// Largest quantized activation: 12-bit symmetric. `vpmaddwd` multiplies
/// i16 lanes, so any width up to 16 bits costs the same, and 8-bit
/// activations were not accurate enough: per-token scales are set by a few
/// outlier features, which leaves the rest a handful of levels. Measured on
/// the reference set (min cosine to sentence-transformers over 95 texts):
/// 8-bit 0.9857, 8-bit with QKV in f32 0.9906, 10-bit 0.9956, 12-bit 0.9964
/// (the rest is the weights' 8 bits). 12 bits also keep top-10 neighbours
/// (0.974 of f32's on 400 papers, against 0.942 at 8 bits).
pub(super) const X_MAX: f32 = 2047.0;
/// Deepest K whose dot products provably fit i32: K·127·2047 < 2³¹.
pub(super) const MAX_K: usize = (i32::MAX as usize) / (127 * 2047);
/// k pairs per pass: a B panel of 384 pairs x 16 tokens x 4 bytes (24 KiB)
/// stays in L1, as the f32 kernel's does. 384 pairs cover a hidden-size K
/// in one pass and the FFN's 1536 in two.
const KPC: usize = 384;

/// A dense layer with int8 weights (as i16 pairs), packed at load.
pub(super) struct QLinear {
    pub m: usize,
    /// k pairs (the input size rounded up to even, halved).
    pub kp: usize,
    w: Vec<i32>,
    /// Per output row, padded to whole tiles.
    scale: Vec<f32>,
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

/// Round to nearest even and clamp to ±`max`, as the AVX2 clamp plus
/// `_mm256_cvtps_epi32` do. Clamping first is the same (`max` is whole)
/// and bounds |x| by 2047 < 2²², where adding and taking away 1.5·2²³
/// rounds to nearest even exactly: `round_ties_even` is a libm call
/// (`rintf`) without SSE4.1, and was ~45% of loading an int8 model. NaN
/// stays NaN and converts to 0, as before.
pub(super) fn quantize(x: f32, max: f32) -> i32 {
    const ROUND: f32 = 12_582_912.0;
    ((x.clamp(-max, max) + ROUND) - ROUND) as i32
}

impl QLinear {
    /// Quantizes and packs the `m x k` matrix whose row r is `row(r)` (k values).
    pub fn pack<'a>(m: usize, k: usize, row: impl Fn(usize) -> &'a [f32], bias: Vec<f32>) -> Self {
        let tiles = m.div_ceil(MR);
        let kp = k.div_ceil(2);
        let mut scale = vec![0f32; tiles * MR];
        let mut w = vec![0i32; tiles * kp * MR];
        let zeros = vec![0f32; k];
        for (t, tile) in w.chunks_exact_mut(kp * MR).enumerate() {
            // Rows past m pad the last tile with zeros (scale 0, all q 0).
            let rows: [&[f32]; MR] = std::array::from_fn(|r| match t * MR + r {
                i if i < m => &row(i)[..k],
                _ => &zeros[..],
            });
            let mut inv = [0f32; MR];
            for (r, src) in rows.iter().enumerate() {
                let amax = src.iter().map(|v| v.abs()).fold(0f32, f32::max);
                if amax > 0.0 {
                    scale[t * MR + r] = amax / W_MAX;
                    inv[r] = W_MAX / amax;
                }
            }
            for (p, vals) in tile.chunks_exact_mut(MR).enumerate() {
                for ((v, src), &inv) in vals.iter_mut().zip(&rows).zip(&inv) {
                    let q = |x: f32| quantize(x * inv, W_MAX);
                    *v = pair(q(src[2 * p]), src.get(2 * p + 1).map_or(0, |&x| q(x)));
                }
            }
        }
        let mut bias = bias;
        bias.resize(tiles * MR, 0.0);
        QLinear {
            m,
            kp,
            w,
            scale,
            bias,
        }
    }
}

/// Activations quantized per token column: element (pair p, token j) at
/// `data[p * ld + j]`, x[k][j] ≈ `scale[j]` · q.
#[derive(Clone, Copy)]
pub(super) struct QAct<'a> {
    pub data: &'a [i32],
    pub scale: &'a [f32],
    pub kp: usize,
    pub c: Cols,
}

/// Buffers for one quantized activation matrix, pooled with the text's scratch.
#[derive(Default)]
pub(super) struct QBuf {
    data: Vec<i32>,
    scale: Buf,
}

/// Quantizes the `k` feature rows of `x` (token columns `c`, rows `c.ld`
/// apart) per column into `buf`.
pub(super) fn quantize_cols<'a>(
    isa: Isa,
    x: &[f32],
    k: usize,
    c: Cols,
    buf: &'a mut QBuf,
) -> QAct<'a> {
    let (n, ld) = (c.n, c.ld);
    assert!(k > 0 && n % NR == 0 && n <= ld && x.len() >= k * ld);
    let kp = k.div_ceil(2);
    if buf.data.len() < kp * ld {
        buf.data.resize(kp * ld, 0);
    }
    let data = &mut buf.data[..kp * ld];
    let both = buf.scale.get(2 * n);
    let (scale, inv) = both.split_at_mut(n);
    // Column maxima of |x|, then the scales: the same divisions on every
    // ISA, so both quantize identically.
    scale.fill(0.0);
    for row in x[..k * ld].chunks_exact(ld) {
        for (s, &v) in scale.iter_mut().zip(&row[..n]) {
            *s = s.max(v.abs());
        }
    }
    for (s, i) in scale.iter_mut().zip(inv.iter_mut()) {
        // A zero column (or a NaN one: max ignores NaN only sometimes)
        // quantizes to zeros.
        if *s > 0.0 && s.is_finite() {
            *i = X_MAX / *s;
            *s /= X_MAX;
        } else {
            (*s, *i) = (0.0, 0.0);
        }
    }
    kernel::quantize_pairs(isa, x, k, n, ld, inv, data);
    QAct { data, scale, kp, c }
}

/// One MR-row block of tiles against one 16-token panel over one pass of
/// k pairs: the int8 counterpart of `super::Panel`.
pub(super) struct QPanel<'a> {
    /// Weights from the block's first tile and the pass's first pair:
    /// tile t, pair p, row r at `a[t * tile_stride + p * MR + r]`.
    pub a: &'a [i32],
    pub tile_stride: usize,
    /// Row scales of the block.
    pub w_scale: &'a [f32],
    /// Activations: pair p, token j at `b[p * ldb + j]`.
    pub b: &'a [i32],
    pub ldb: usize,
    /// Token scales of the panel (NR values).
    pub x_scale: &'a [f32],
    pub kpc: usize,
    pub rows: usize,
    pub init: Init<'a>,
    pub act: Act,
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
    let (kp, n) = (w.kp, x.c.n);
    assert!(x.kp == kp && kp > 0 && n % NR == 0 && ldc >= n);
    let rows = t_range.start * MR..w.m.min(t_range.end * MR);
    if rows.is_empty() {
        return;
    }
    let tile_stride = kp * MR;
    assert!(c.len() >= (rows.len() - 1) * ldc + n);
    assert!(w.w.len() >= t_range.end * tile_stride && w.scale.len() >= t_range.end * MR);
    for p0 in (0..kp).step_by(KPC) {
        let kpc = KPC.min(kp - p0);
        let last = p0 + kpc == kp;
        let init = match (p0, start) {
            (0, Start::Zero) => Init::Zero,
            (0, Start::Bias(b)) => Init::Bias(&b[rows.start..]),
            (0, Start::LoadBias(b)) => Init::LoadBias(&b[rows.start..]),
            _ => Init::Load,
        };
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
        Isa::available()
    }

    #[test]
    fn pairs_round_trip() {
        for (lo, hi) in [(0, 0), (-127, 127), (127, -127), (-1, -1), (5, -3)] {
            assert_eq!(unpair(pair(lo, hi)), (lo, hi));
        }
    }

    /// The kernel's integer products equal a naive i32 matmul of the
    /// quantized operands, exactly, at edge shapes (M not a multiple of MR,
    /// odd K, K over one pass, several row blocks); the dequantized output
    /// matches the same sums in f64 with bias, residual and activation.
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
            for max in [W_MAX, X_MAX] {
                assert_eq!(quantize(x, max), want(x, max), "{x} {max}");
            }
        }
    }

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
            let mut x = vec![0f32; k * c.ld];
            for v in x.iter_mut() {
                *v = r() * 4.0;
            }
            let lin = QLinear::pack(m, k, |i| &w[i * k..][..k], bias.clone());
            // The quantized operands, unpacked, for the reference.
            let wq = |i: usize, kk: usize| -> i64 {
                let t = i / MR;
                let v = lin.w[t * lin.kp * MR + (kk / 2) * MR + i % MR];
                let (a, b) = unpair(v);
                (if kk.is_multiple_of(2) { a } else { b }) as i64
            };
            let c0: Vec<f32> = (0..m * c.ld).map(|_| r()).collect();
            let mut results = Vec::new();
            for isa in isas() {
                let mut qb = QBuf::default();
                let xq = quantize_cols(isa, &x, k, c, &mut qb);
                let xv = |kk: usize, j: usize| -> i64 {
                    let (a, b) = unpair(xq.data[(kk / 2) * c.ld + j]);
                    (if kk.is_multiple_of(2) { a } else { b }) as i64
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
                    results.push(out);
                }
                // Each column's largest |x| maps to exactly X_MAX.
                for j in 0..c.n {
                    let col_max = (0..k).map(|kk| xv(kk, j).abs()).max().unwrap_or(0);
                    assert_eq!(col_max, X_MAX as i64, "{isa:?} column {j}");
                }
            }
            // Scalar and AVX2 quantize identically, sum exactly and
            // dequantize with the same operations in the same order (GELU's
            // polynomials differ in FMA use, so only the linear case).
            if results.len() == 6 {
                assert_eq!(results[0], results[3], "{m}x{k}x{ntok}");
            }
        }
    }

    /// Quantization error bound: per element at most half a step.
    #[test]
    fn quantized_weights_are_within_half_a_step() {
        let mut r = rng(9);
        let (m, k) = (20, 31);
        let w: Vec<f32> = (0..m * k).map(|_| r() * 0.1).collect();
        let lin = QLinear::pack(m, k, |i| &w[i * k..][..k], vec![0.0; m]);
        for i in 0..m {
            for kk in 0..k {
                let v = lin.w[(i / MR) * lin.kp * MR + (kk / 2) * MR + i % MR];
                let (a, b) = unpair(v);
                let q = if kk % 2 == 0 { a } else { b };
                let err = (q as f32 * lin.scale[i] - w[i * k + kk]).abs();
                assert!(err <= lin.scale[i] * 0.5001, "({i},{kk}) {err}");
            }
        }
    }
}
