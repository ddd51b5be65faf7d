//! AVX2 + FMA: the f32 kernels of [`super::simd`] on `__m256` (a 6x16
//! register tile, 12 accumulators of the 16 ymm registers), the int8 product
//! by `vpmaddwd`, GELU's f64 erf and the activation quantizer. Every
//! function requires a CPU with AVX2 and FMA.

use std::arch::x86_64::*;

use super::super::int8::{QPanel, QuantSpec, X_MAX};
use super::scalar::{ERF_P, ERF_Q};
use super::simd::{self, Vf32};
use super::{Cols, Panel, MR};

/// Eight f32 lanes.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(in crate::embed::cpu_bert) struct V256(pub __m256);

impl Vf32 for V256 {
    const LANES: usize = 8;
    type I = __m256i;
    #[inline(always)]
    unsafe fn from_i32(i: __m256i) -> Self {
        V256(_mm256_cvtepi32_ps(i))
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        V256(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        V256(_mm256_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        V256(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        V256(_mm256_add_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        V256(_mm256_sub_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        V256(_mm256_mul_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        V256(_mm256_div_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        V256(_mm256_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        V256(_mm256_fnmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        V256(_mm256_max_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        V256(_mm256_min_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V256(_mm256_sqrt_ps(self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        V256(_mm256_round_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(self.0))
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(self.0),
            _mm256_set1_epi32(127),
        ));
        V256(_mm256_castsi256_ps(e))
    }
    #[inline(always)]
    unsafe fn gelu_erf(self) -> Self {
        V256(gelu_erf(self.0))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self::I {
        _mm256_loadu_si256(p as *const __m256i)
    }
    #[inline(always)]
    unsafe fn sub_mul_i32(acc: Self::I, z: Self::I, s: i32) -> Self::I {
        _mm256_sub_epi32(acc, _mm256_mullo_epi32(z, _mm256_set1_epi32(s)))
    }
}

#[inline(always)]
unsafe fn poly_pd(x: __m256d, coeffs: &[f64]) -> __m256d {
    let mut y = _mm256_set1_pd(coeffs[0]);
    for &c in &coeffs[1..] {
        y = _mm256_fmadd_pd(y, x, _mm256_set1_pd(c));
    }
    y
}

/// erf on 4 doubles (see `scalar::ERF_P` for why f64).
#[inline(always)]
unsafe fn erf_pd(x: __m256d) -> __m256d {
    let x = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(-4.0)), _mm256_set1_pd(4.0));
    let x2 = _mm256_mul_pd(x, x);
    let p = _mm256_mul_pd(x, poly_pd(x2, &ERF_P));
    _mm256_div_pd(p, poly_pd(x2, &ERF_Q))
}

/// 0.5·x·(1 + erf(x/√2)) on 4 doubles.
#[inline(always)]
unsafe fn gelu_erf_pd(x: __m256d) -> __m256d {
    let e = erf_pd(_mm256_mul_pd(
        x,
        _mm256_set1_pd(std::f64::consts::FRAC_1_SQRT_2),
    ));
    let half_x = _mm256_mul_pd(x, _mm256_set1_pd(0.5));
    _mm256_fmadd_pd(half_x, e, half_x)
}

/// Runs `$f` on the two f64 halves of `$x` (a macro, not a closure: it
/// must inline into each `#[target_feature]` caller).
macro_rules! via_f64 {
    ($x:expr, $f:ident) => {{
        let x = $x;
        let lo = $f(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
        let hi = $f(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
        _mm256_insertf128_ps::<1>(
            _mm256_castps128_ps256(_mm256_cvtpd_ps(lo)),
            _mm256_cvtpd_ps(hi),
        )
    }};
}

/// BERT's GELU on 8 floats, erf in f64. AVX-512 uses it on each half.
#[inline(always)]
pub(super) unsafe fn gelu_erf(x: __m256) -> __m256 {
    via_f64!(x, gelu_erf_pd)
}

/// erf on 8 floats, in f64 (the tests compare it with the reference).
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn erf(x: __m256) -> __m256 {
    via_f64!(x, erf_pd)
}

#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot(
    ap: *const f32,
    a_ks: usize,
    ts: usize,
    bp: *const f32,
    ldb: usize,
    kc: usize,
) -> [[[V256; 2]; MR]; 1] {
    simd::dot::<V256, 1, 2>(ap, a_ks, ts, bp, ldb, kc)
}

/// One f32 panel: 6x16 tiles (two ymm per row, 12 accumulators + 2 B + 1
/// broadcast of the 16 registers).
///
/// # Safety
/// AVX2 and FMA must be available, and the slices as `kernel::panel` asserts.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn panel(p: &Panel<'_>, c: &mut [f32], ldc: usize, col_max: Option<&mut [f32]>) {
    simd::panel::<V256, 1, 2>(p, c, ldc, col_max, dot, dot)
}

/// # Safety
/// AVX2 and FMA must be available, and the slices as `kernel::softmax_cols` asserts.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax_cols(
    s: &mut [f32],
    c: Cols,
    scale: f32,
    inv_sum: &mut [f32],
    max: &[f32],
) {
    simd::softmax_cols::<V256>(s, c, scale, inv_sum, max)
}

/// # Safety
/// AVX2 and FMA must be available, and the slices as `kernel::layer_norm` asserts.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn layer_norm(
    x: &mut [f32],
    c: Cols,
    g: &[f32],
    b: &[f32],
    eps: f32,
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    simd::layer_norm::<V256>(x, c, g, b, eps, mean, rstd)
}

/// One 6x16 tile of W·X over `kpc` k pairs: per pair, two loads of X
/// (one cache line of 16 tokens), six broadcasts of a weight pair,
/// twelve `vpmaddwd` and twelve adds. 12 accumulators + 2 X + 1
/// broadcast + 1 product: all 16 ymm registers. Out of line for the
/// same reason as the f32 `dot`.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn qdot(
    mut ap: *const i32,
    _ts: usize,
    mut bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m256i; 2]; MR]; 1] {
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    // Two pairs per iteration: the loop counter and pointer updates
    // are a tenth of the instructions otherwise, and the core is
    // dispatch-bound here (36 instructions for 12 vpmaddwd).
    let step = |acc: &mut [[__m256i; 2]; MR], ap: *const i32, bp: *const i32| {
        let b0 = _mm256_loadu_si256(bp as *const __m256i);
        let b1 = _mm256_loadu_si256(bp.add(8) as *const __m256i);
        for (r, a) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(*ap.add(r));
            a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(av, b0));
            a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(av, b1));
        }
    };
    for _ in 0..kpc / 2 {
        step(&mut acc, ap, bp);
        step(&mut acc, ap.add(MR), bp.add(ldb));
        ap = ap.add(2 * MR);
        bp = bp.add(2 * ldb);
    }
    if kpc % 2 == 1 {
        step(&mut acc, ap, bp);
    }
    [acc]
}

/// One int8 panel by `vpmaddwd`.
///
/// # Safety
/// AVX2 and FMA must be available, and the slices as `kernel::qpanel` asserts.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn qpanel(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V256, 1, 2>(p, c, ldc, qdot, qdot)
}

/// Rows g·p .. g·p + g of `x` into row p of `out`, g =
/// `q.layout.group()`: the scalar `quantize_groups`, eight columns at a
/// time (the same multiply, add, clamp and round to nearest even).
///
/// # Safety
/// AVX2 and FMA must be available; `x` holds `k * ld` values, `out`
/// `k.div_ceil(g) * ld`, `q`'s slices `n` (`sub` may be empty), and `n`
/// is a multiple of 8.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_groups(
    x: &[f32],
    k: usize,
    n: usize,
    ld: usize,
    q: &QuantSpec<'_>,
    out: &mut [i32],
) {
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let g = q.layout.group();
    let bits = 32 / g;
    let mask = _mm256_set1_epi32(((1i64 << bits) - 1) as i32);
    let (lo, hi) = (_mm256_setzero_ps(), _mm256_set1_ps(X_MAX));
    for p in 0..k.div_ceil(g) {
        for j in (0..n).step_by(8) {
            let inv = _mm256_loadu_ps(q.inv.as_ptr().add(j));
            let off = _mm256_loadu_ps(q.off.as_ptr().add(j));
            let sub = match q.sub.is_empty() {
                true => _mm256_setzero_si256(),
                false => _mm256_loadu_si256(q.sub.as_ptr().add(j) as *const __m256i),
            };
            let mut lane = _mm256_setzero_si256();
            for r in 0..g.min(k - g * p) {
                let v = match q.skip.get(g * p + r) {
                    Some(true) => _mm256_setzero_ps(),
                    _ => _mm256_loadu_ps(xp.add((g * p + r) * ld + j)),
                };
                let v = _mm256_add_ps(_mm256_mul_ps(v, inv), off);
                let v = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(v, hi), lo));
                let v = _mm256_and_si256(_mm256_sub_epi32(v, sub), mask);
                let shift = _mm_cvtsi32_si128((bits * r) as i32);
                lane = _mm256_or_si256(lane, _mm256_sll_epi32(v, shift));
            }
            _mm256_storeu_si256(op.add(p * ld + j) as *mut __m256i, lane);
        }
    }
}

/// The bf16 bits (ties to even, NaN kept quiet) of 8 floats, as
/// `bf16::bits` computes them, in the low 16 bits of each lane.
#[inline(always)]
unsafe fn bf16_bits(x: __m256) -> __m256i {
    let b = _mm256_castps_si256(x);
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
    let r = _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), lsb);
    let r = _mm256_srli_epi32::<16>(r);
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(0x40));
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
    _mm256_blendv_epi8(r, quiet, nan)
}

/// Rows 2p and 2p + 1 of `x` rounded to bf16 into row p of `out`, as the
/// scalar `bf16_pairs`.
///
/// # Safety
/// AVX2 must be available; `x` holds `k * ld` values, `out`
/// `k.div_ceil(2) * ld`, and `n` is a multiple of 8.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn bf16_pairs(x: &[f32], k: usize, n: usize, ld: usize, out: &mut [i32]) {
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    for p in 0..k.div_ceil(2) {
        let lo = xp.add(2 * p * ld);
        let hi = (2 * p + 1 < k).then(|| xp.add((2 * p + 1) * ld));
        for j in (0..n).step_by(8) {
            let a = bf16_bits(_mm256_loadu_ps(lo.add(j)));
            let b = match hi {
                Some(hi) => bf16_bits(_mm256_loadu_ps(hi.add(j))),
                None => _mm256_setzero_si256(),
            };
            let v = _mm256_or_si256(a, _mm256_slli_epi32::<16>(b));
            _mm256_storeu_si256(op.add(p * ld + j) as *mut __m256i, v);
        }
    }
}

/// `simd::map` on 8 lanes, for the tests.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn map(xs: &[f32], which: u8) -> Vec<f32> {
    simd::map::<V256>(xs, which)
}
