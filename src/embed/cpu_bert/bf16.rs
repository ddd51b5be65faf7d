//! bf16 dense layers for [`super::CpuBert`] (`--precision bf16`).
//!
//! Weights are rounded to bfloat16 once at load, activations per product;
//! products of two bf16 values are exact in f32, and they are summed in
//! f32. Bias, residual, GELU, LayerNorm, softmax and attention stay f32.
//!
//! On a CPU with a bf16 dot product (AVX-512 BF16's `vdpbf16ps`, AMX's
//! `tdpbf16ps`) the operands are packed as bf16 pairs, one i32 lane per two
//! k steps, in the int8 pair layout (weights `[tile][pair][row]`, or
//! row-major `[row][pair]` padded to whole tiles for AMX; activations
//! `[pair][token]`). Elsewhere the f32 kernels run on the
//! rounded values ([`round`]): the same numbers, at f32's speed, so that a
//! bf16 library can be searched and extended on any CPU.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::kernel::amx::{TBlock, TILE};
use super::kernel::{self, Act, Init, Isa, MR, NR};
use super::{Buf, Cols, Start, MC};

/// The bf16 nearest `x` (ties to even), as its 16 bits. NaN stays NaN.
pub(super) fn bits(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40;
    }
    (b + 0x7fff + ((b >> 16) & 1)) >> 16
}

/// `x` rounded to bf16, as f32.
pub(super) fn round(x: f32) -> f32 {
    f32::from_bits(bits(x) << 16)
}

/// Two bf16 values as one i32 lane: `lo` (k = 2p) in the low half.
pub(super) fn pair(lo: f32, hi: f32) -> i32 {
    (bits(lo) | (bits(hi) << 16)) as i32
}

/// The two f32 values of a bf16 pair.
pub(super) fn unpair(v: i32) -> (f32, f32) {
    let v = v as u32;
    (f32::from_bits(v << 16), f32::from_bits(v & 0xffff_0000))
}

/// Pairs per pass: a B panel of 384 pairs x 16 tokens x 4 bytes (24 KiB)
/// stays in L1, as the f32 kernel's does.
const KPC: usize = 384;

/// A dense layer with bf16 weights in pairs, packed at load.
pub(super) struct BLinear {
    pub m: usize,
    /// k pairs (the input size rounded up to even, halved; for tiles, up
    /// to whole tiles).
    pub kp: usize,
    /// Row-major for AMX tiles, rather than MR-row tiles.
    tiles: bool,
    w: Vec<i32>,
    /// Per output row, padded to whole tiles.
    pub bias: Vec<f32>,
}

impl BLinear {
    /// Rounds and packs the `m x k` matrix whose row r is `row(r)`, for
    /// `isa`'s bf16 product.
    pub fn pack<'a>(
        isa: Isa,
        m: usize,
        k: usize,
        row: impl Fn(usize) -> &'a [f32],
        bias: Vec<f32>,
    ) -> Self {
        let tiles = isa.has_tiles();
        let (kp, rows) = match tiles {
            #[cfg(target_arch = "x86_64")]
            true => (
                k.div_ceil(2).next_multiple_of(TILE),
                m.next_multiple_of(TILE),
            ),
            _ => (k.div_ceil(2), m.next_multiple_of(MR)),
        };
        // Rows past m, and pairs past k, stay zero.
        let mut w = vec![0i32; rows * kp];
        for i in 0..m {
            let src = &row(i)[..k];
            for p in 0..k.div_ceil(2) {
                let at = match tiles {
                    true => i * kp + p,
                    false => (i / MR) * kp * MR + p * MR + i % MR,
                };
                w[at] = pair(src[2 * p], src.get(2 * p + 1).copied().unwrap_or(0.0));
            }
        }
        let mut bias = bias;
        bias.resize(rows, 0.0);
        BLinear {
            m,
            kp,
            tiles,
            w,
            bias,
        }
    }
}

/// One MR-row block of tiles against one 16-token panel over one pass of
/// k pairs: the bf16 counterpart of `super::Panel`.
pub(super) struct BPanel<'a> {
    /// Weights from the block's first tile and the pass's first pair:
    /// tile t, pair p, row r at `a[t * tile_stride + p * MR + r]`.
    pub a: &'a [i32],
    pub tile_stride: usize,
    /// Activations: pair p, token j at `b[p * ldb + j]`.
    pub b: &'a [i32],
    pub ldb: usize,
    pub kpc: usize,
    pub rows: usize,
    pub init: Init<'a>,
    pub act: Act,
}

/// `c = act(start + W·x)` over the `k` feature rows of `x` (token columns
/// `cols`), the activations rounded into `buf` first; C's rows cut into
/// blocks of MC as rayon tasks. `c` holds exactly `w.m` rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn par_bmatmul(
    isa: Isa,
    w: &BLinear,
    x: &[f32],
    k: usize,
    cols: Cols,
    start: Start<'_>,
    act: Act,
    buf: &mut Vec<i32>,
    c: &mut [f32],
) {
    let (n, ld) = (cols.n, cols.ld);
    let kp = k.div_ceil(2);
    assert!(kp <= w.kp && n % NR == 0 && c.len() == w.m * ld);
    assert!(w.tiles == isa.has_tiles());
    if buf.len() < w.kp * ld {
        buf.resize(w.kp * ld, 0);
    }
    let b = &mut buf[..w.kp * ld];
    kernel::bf16_pairs(isa, x, k, n, ld, b);
    // Pairs past k (tiles are padded to whole tiles) multiply zero
    // weights: zeros here too, as stale bits could be NaN (NaN·0 is NaN).
    b[kp * ld..].fill(0);
    let b = &*b;
    c.par_chunks_mut(MC * ld).enumerate().for_each(|(i, c)| {
        let t0 = i * MC / MR;
        let t1 = (t0 + MC / MR).min(w.m.div_ceil(MR));
        let rows = t0 * MR..w.m.min(t1 * MR);
        #[cfg(target_arch = "x86_64")]
        if w.tiles {
            let block = TBlock {
                a: &w.w[rows.start * w.kp..],
                lda: w.kp,
                b,
                ldb: ld,
                n,
                rows: rows.len(),
                init: start.init(0, rows.start),
                act,
                q: None,
            };
            return kernel::tblock(isa, &block, c, ld);
        }
        let tile_stride = w.kp * MR;
        for p0 in (0..w.kp).step_by(KPC) {
            let kpc = KPC.min(w.kp - p0);
            let last = p0 + kpc == w.kp;
            let init = start.init(p0, rows.start);
            for p in 0..n / NR {
                let panel = BPanel {
                    a: &w.w[t0 * tile_stride + p0 * MR..],
                    tile_stride,
                    b: &b[p0 * ld + p * NR..],
                    ldb: ld,
                    kpc,
                    rows: rows.len(),
                    init,
                    act: if last { act } else { Act::None },
                };
                kernel::bpanel(isa, &panel, &mut c[p * NR..], ld);
            }
        }
    });
}

/// Rounds the `k` feature rows of `x` (token columns `c`) to bf16 into
/// `out`, for the f32 kernels of a CPU without a bf16 dot product.
pub(super) fn round_cols<'a>(x: &[f32], k: usize, c: Cols, out: &'a mut Buf) -> &'a [f32] {
    let out = out.get(k * c.ld);
    for (o, row) in out.chunks_exact_mut(c.ld).zip(x.chunks_exact(c.ld)) {
        for (o, &v) in o[..c.n].iter_mut().zip(&row[..c.n]) {
            *o = round(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::kernel::rng;

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6.
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round(-2.5), -2.5);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        let mut r = rng(5);
        for _ in 0..100_000 {
            let x = r() * 1e3;
            let y = round(x);
            // Within half a unit of bf16's 8-bit mantissa.
            assert!((x - y).abs() <= x.abs() / 256.0, "{x} {y}");
            assert_eq!(round(y), y);
            let (lo, hi) = unpair(pair(x, y));
            assert_eq!((lo, hi), (y, y));
        }
    }

    /// Every path's bf16 product equals the f64 product of the rounded
    /// operands within f32 summation error, at edge shapes (M not a
    /// multiple of MR, odd K, K over one pass, several row blocks).
    #[test]
    fn bf16_matmul_matches_the_rounded_product() {
        for (m, k, ntok) in [(1, 1, 1), (7, 3, 17), (200, 385, 40), (6, 1536, 33)] {
            let mut r = rng((m * 1000 + k * 10 + ntok) as u64);
            let w: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let bias: Vec<f32> = (0..m).map(|_| r()).collect();
            let c = Cols::for_tokens(ntok);
            let x: Vec<f32> = (0..k * c.ld).map(|_| r() * 4.0).collect();
            let c0: Vec<f32> = (0..m * c.ld).map(|_| r()).collect();
            for isa in Isa::testable()
                .into_iter()
                .filter(|i| i.has_bf16_dot() || *i == Isa::Scalar)
            {
                let lin = BLinear::pack(isa, m, k, |i| &w[i * k..][..k], bias.clone());
                for (start, act) in [
                    (Start::Bias(&lin.bias), Act::None),
                    (Start::LoadBias(&lin.bias), Act::GeluErf),
                ] {
                    let mut out = c0.clone();
                    let mut buf = Vec::new();
                    par_bmatmul(isa, &lin, &x, k, c, start, act, &mut buf, &mut out);
                    for i in 0..m {
                        for j in 0..c.n {
                            let mut want = bias[i] as f64;
                            if matches!(start, Start::LoadBias(_)) {
                                want += c0[i * c.ld + j] as f64;
                            }
                            for kk in 0..k {
                                want +=
                                    round(w[i * k + kk]) as f64 * round(x[kk * c.ld + j]) as f64;
                            }
                            let want = kernel::scalar::act(act, want as f32) as f64;
                            let got = out[i * c.ld + j] as f64;
                            let tol = 1e-5 * (k as f64).sqrt() * (1.0 + want.abs());
                            assert!(
                                (got - want).abs() <= tol,
                                "{isa:?} {m}x{k}x{ntok} ({i},{j}) {got} {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
