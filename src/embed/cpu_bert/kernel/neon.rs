//! aarch64 Advanced SIMD (NEON; every aarch64 CPU has it): the f32 kernels
//! of [`super::simd`] on `float32x4_t` (a 6x16 register tile: 24
//! accumulators + 4 B + 1 broadcast of the 32 vector registers), GELU's
//! erf in f64 (`float64x2_t`), and the int8 product by `smlal`.
//!
//! The int8 kernel takes the i16-pair layout (activations stored as
//! `q - z`, within ±255: see `int8`), so it uses `smlal` (i16 x i16 into
//! i32); `sdot` (s8 x s8) would need activations shifted into s8 and
//! another correction, and an aarch64 CPU with it has not been measured.

use std::arch::aarch64::*;

use super::super::int8::QPanel;
use super::scalar::{ERF_P, ERF_Q};
use super::simd::{self, Vf32};
use super::{Cols, Panel, MR};

/// Four f32 lanes.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(in crate::embed::cpu_bert) struct V128(pub float32x4_t);

impl Vf32 for V128 {
    const LANES: usize = 4;
    type I = int32x4_t;
    #[inline(always)]
    unsafe fn from_i32(i: int32x4_t) -> Self {
        V128(vcvtq_f32_s32(i))
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        V128(vdupq_n_f32(0.0))
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        V128(vdupq_n_f32(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        V128(vld1q_f32(p))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        vst1q_f32(p, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        V128(vaddq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        V128(vsubq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        V128(vmulq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        V128(vdivq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        V128(vfmaq_f32(c.0, self.0, b.0))
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        V128(vfmsq_f32(c.0, self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // maxnm: the number where one side is NaN, close to x86's maxps.
        V128(vmaxnmq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        V128(vminnmq_f32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V128(vsqrtq_f32(self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        V128(vrndnq_f32(self.0))
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        let e = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(self.0), vdupq_n_s32(127)));
        V128(vreinterpretq_f32_s32(e))
    }
    #[inline(always)]
    unsafe fn gelu_erf(self) -> Self {
        let lo = gelu_erf_pd(vcvt_f64_f32(vget_low_f32(self.0)));
        let hi = gelu_erf_pd(vcvt_high_f64_f32(self.0));
        V128(vcvt_high_f32_f64(vcvt_f32_f64(lo), hi))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self::I {
        vld1q_s32(p)
    }
    #[inline(always)]
    unsafe fn sub_mul_i32(acc: Self::I, z: Self::I, s: i32) -> Self::I {
        vmlsq_n_s32(acc, z, s)
    }
}

#[inline(always)]
unsafe fn poly_pd(x: float64x2_t, coeffs: &[f64]) -> float64x2_t {
    let mut y = vdupq_n_f64(coeffs[0]);
    for &c in &coeffs[1..] {
        y = vfmaq_f64(vdupq_n_f64(c), y, x);
    }
    y
}

/// 0.5·x·(1 + erf(x/√2)) on 2 doubles (see `scalar::ERF_P` for why f64).
#[inline(always)]
unsafe fn gelu_erf_pd(x: float64x2_t) -> float64x2_t {
    let u = vmulq_f64(x, vdupq_n_f64(std::f64::consts::FRAC_1_SQRT_2));
    let u = vminnmq_f64(vmaxnmq_f64(u, vdupq_n_f64(-4.0)), vdupq_n_f64(4.0));
    let u2 = vmulq_f64(u, u);
    let e = vdivq_f64(vmulq_f64(u, poly_pd(u2, &ERF_P)), poly_pd(u2, &ERF_Q));
    let half_x = vmulq_f64(x, vdupq_n_f64(0.5));
    vfmaq_f64(half_x, half_x, e)
}

#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn dot(
    ap: *const f32,
    a_ks: usize,
    ts: usize,
    bp: *const f32,
    ldb: usize,
    kc: usize,
) -> [[[V128; 4]; MR]; 1] {
    simd::dot::<V128, 1, 4>(ap, a_ks, ts, bp, ldb, kc)
}

/// One f32 panel: 6x16 tiles, four q registers per row.
///
/// # Safety
/// The slices as `kernel::panel` asserts.
#[target_feature(enable = "neon")]
pub(super) unsafe fn panel(p: &Panel<'_>, c: &mut [f32], ldc: usize, col_max: Option<&mut [f32]>) {
    simd::panel::<V128, 1, 4>(p, c, ldc, col_max, dot, dot)
}

/// # Safety
/// The slices as `kernel::softmax_cols` asserts.
#[target_feature(enable = "neon")]
pub(super) unsafe fn softmax_cols(
    s: &mut [f32],
    c: Cols,
    scale: f32,
    inv_sum: &mut [f32],
    max: &[f32],
) {
    simd::softmax_cols::<V128>(s, c, scale, inv_sum, max)
}

/// # Safety
/// The slices as `kernel::layer_norm` asserts.
#[target_feature(enable = "neon")]
pub(super) unsafe fn layer_norm(
    x: &mut [f32],
    c: Cols,
    g: &[f32],
    b: &[f32],
    eps: f32,
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    simd::layer_norm::<V128>(x, c, g, b, eps, mean, rstd)
}

/// A 6x16 int8 tile over `kpc` k pairs, as two 8-token halves (a whole
/// panel's partial sums would need 48 registers). An activation pair
/// (lo, hi) times a weight pair through `smlal` leaves lo·w_lo and
/// hi·w_hi in neighbouring i32 lanes; a pairwise add at the end gives each
/// token's sum. Every partial sum has at most `kpc` products, so it is as
/// exact in i32 as the whole.
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn qdot(
    ap0: *const i32,
    _ts: usize,
    bp0: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[int32x4_t; 4]; MR]; 1] {
    let mut out = [[vdupq_n_s32(0); 4]; MR];
    for half in 0..2 {
        // acc[r][q]: lanes (2t, 2t+1) hold token t's lo and hi products.
        let mut acc = [[vdupq_n_s32(0); 4]; MR];
        let (mut ap, mut bp) = (ap0, bp0.add(half * 8));
        for _ in 0..kpc {
            let b0 = vld1q_s16(bp as *const i16);
            let b1 = vld1q_s16(bp.add(4) as *const i16);
            for (r, a) in acc.iter_mut().enumerate() {
                let w = vreinterpretq_s16_s32(vdupq_n_s32(*ap.add(r)));
                let wl = vget_low_s16(w);
                a[0] = vmlal_s16(a[0], vget_low_s16(b0), wl);
                a[1] = vmlal_high_s16(a[1], b0, w);
                a[2] = vmlal_s16(a[2], vget_low_s16(b1), wl);
                a[3] = vmlal_high_s16(a[3], b1, w);
            }
            ap = ap.add(MR);
            bp = bp.add(ldb);
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            o[2 * half] = vpaddq_s32(a[0], a[1]);
            o[2 * half + 1] = vpaddq_s32(a[2], a[3]);
        }
    }
    [out]
}

/// One int8 panel by `smlal`.
///
/// # Safety
/// The slices as `kernel::qpanel` asserts.
#[target_feature(enable = "neon")]
pub(super) unsafe fn qpanel(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V128, 1, 4>(p, c, ldc, qdot, qdot)
}

/// `simd::map` on 4 lanes, for the tests.
#[cfg(test)]
#[target_feature(enable = "neon")]
pub(super) unsafe fn map(xs: &[f32], which: u8) -> Vec<f32> {
    simd::map::<V128>(xs, which)
}
