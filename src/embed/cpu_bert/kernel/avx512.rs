//! AVX-512 (F, BW, VL, with AVX2 and FMA): the f32 kernels of
//! [`super::simd`] on `__m512`, and the int8 products by 512-bit `vpdpwssd`
//! (i16 pairs) and `vpdpbusd` (u8 × s8 quads), AVX-512 VNNI, and the bf16
//! product by `vdpbf16ps` (AVX-512 BF16). One zmm holds a whole 16-token panel row, so a tile takes
//! several weight tiles at once to keep enough independent accumulators
//! in flight (see `F32_TILES`). The column-wise softmax and
//! LayerNorm run on the AVX2 kernels: they are a few percent of the time,
//! and 8-lane columns keep them exact for any multiple of 8 tokens.

use std::arch::x86_64::*;

use super::super::bf16::BPanel;
use super::super::int8::QPanel;
use super::scalar::{ERF_P, ERF_Q};
use super::simd::{self, Vf32};
use super::{Panel, MR};

/// Weight tiles per register tile: 4 x 6 rows x 16 tokens = 24 zmm
/// accumulators, + 1 B + broadcasts folded into the FMAs. Measured on Zen 5
/// (2 cores, 2026-12-07, `PAPERSIM_ISA=avx512-vnni papersim bench embed -n
/// 300`, arXiv abstracts, three runs each): f32 64.3-64.4 docs/s with 4
/// tiles against 57.2-62.7 with 2 (12 accumulators do not cover the FMA
/// latency); int8 95.8-102.5 with 4 against 89.7-94.3 with 2.
const F32_TILES: usize = 4;
const INT8_TILES: usize = 4;

/// Sixteen f32 lanes.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(in crate::embed::cpu_bert) struct V512(pub __m512);

impl Vf32 for V512 {
    const LANES: usize = 16;
    type I = __m512i;
    #[inline(always)]
    unsafe fn from_i32(i: __m512i) -> Self {
        V512(_mm512_cvtepi32_ps(i))
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        V512(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        V512(_mm512_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        V512(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        V512(_mm512_add_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        V512(_mm512_sub_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        V512(_mm512_mul_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        V512(_mm512_div_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        V512(_mm512_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        V512(_mm512_fnmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        V512(_mm512_max_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        V512(_mm512_min_ps(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V512(_mm512_sqrt_ps(self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        V512(_mm512_roundscale_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(self.0))
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(self.0),
            _mm512_set1_epi32(127),
        ));
        V512(_mm512_castsi512_ps(e))
    }
    #[inline(always)]
    unsafe fn gelu_erf(self) -> Self {
        let lo = gelu_erf_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(self.0)));
        let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0));
        let hi = gelu_erf_pd(_mm512_cvtps_pd(_mm256_castpd_ps(hi)));
        let lo = _mm512_castps256_ps512(_mm512_cvtpd_ps(lo));
        V512(_mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(lo),
            _mm256_castps_pd(_mm512_cvtpd_ps(hi)),
        )))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self::I {
        _mm512_loadu_si512(p as *const __m512i)
    }
    #[inline(always)]
    unsafe fn sub_mul_i32(acc: Self::I, z: Self::I, s: i32) -> Self::I {
        _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(s)))
    }
}

#[inline(always)]
unsafe fn poly_pd(x: __m512d, coeffs: &[f64]) -> __m512d {
    let mut y = _mm512_set1_pd(coeffs[0]);
    for &c in &coeffs[1..] {
        y = _mm512_fmadd_pd(y, x, _mm512_set1_pd(c));
    }
    y
}

/// 0.5·x·(1 + erf(x/√2)) on 8 doubles (see `scalar::ERF_P` for why f64).
#[inline(always)]
unsafe fn gelu_erf_pd(x: __m512d) -> __m512d {
    let u = _mm512_mul_pd(x, _mm512_set1_pd(std::f64::consts::FRAC_1_SQRT_2));
    let u = _mm512_min_pd(_mm512_max_pd(u, _mm512_set1_pd(-4.0)), _mm512_set1_pd(4.0));
    let u2 = _mm512_mul_pd(u, u);
    let e = _mm512_div_pd(_mm512_mul_pd(u, poly_pd(u2, &ERF_P)), poly_pd(u2, &ERF_Q));
    let half_x = _mm512_mul_pd(x, _mm512_set1_pd(0.5));
    _mm512_fmadd_pd(half_x, e, half_x)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn dot_t(
    ap: *const f32,
    a_ks: usize,
    ts: usize,
    bp: *const f32,
    ldb: usize,
    kc: usize,
) -> [[[V512; 1]; MR]; F32_TILES] {
    simd::dot::<V512, F32_TILES, 1>(ap, a_ks, ts, bp, ldb, kc)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn dot_1(
    ap: *const f32,
    a_ks: usize,
    ts: usize,
    bp: *const f32,
    ldb: usize,
    kc: usize,
) -> [[[V512; 1]; MR]; 1] {
    simd::dot::<V512, 1, 1>(ap, a_ks, ts, bp, ldb, kc)
}

/// One f32 panel, `F32_TILES` weight tiles per register tile.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and FMA must be available, and the slices as
/// `kernel::panel` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn panel(p: &Panel<'_>, c: &mut [f32], ldc: usize, col_max: Option<&mut [f32]>) {
    simd::panel::<V512, F32_TILES, 1>(p, c, ldc, col_max, dot_t, dot_1)
}

/// `T` weight tiles against one 16-token panel over `kpc` k groups: per
/// group, one load of X, `T * MR` broadcast weight groups folded into
/// `vpdpbusd` (`U8`: four u8 × s8 products) or `vpdpwssd` (two i16
/// products), added into i32, exact.
#[inline(always)]
unsafe fn qdot<const T: usize, const U8: bool>(
    mut ap: *const i32,
    ts: usize,
    mut bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m512i; 1]; MR]; T] {
    let mut acc = [[[_mm512_setzero_si512(); 1]; MR]; T];
    for _ in 0..kpc {
        let b = _mm512_loadu_si512(bp as *const __m512i);
        for (t, tile) in acc.iter_mut().enumerate() {
            for (r, a) in tile.iter_mut().enumerate() {
                let w = _mm512_set1_epi32(*ap.add(t * ts + r));
                a[0] = match U8 {
                    true => _mm512_dpbusd_epi32(a[0], b, w),
                    false => _mm512_dpwssd_epi32(a[0], b, w),
                };
            }
        }
        ap = ap.add(MR);
        bp = bp.add(ldb);
    }
    acc
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn qdot_t(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m512i; 1]; MR]; INT8_TILES] {
    qdot::<INT8_TILES, false>(ap, ts, bp, ldb, kpc)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn qdot_1(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m512i; 1]; MR]; 1] {
    qdot::<1, false>(ap, ts, bp, ldb, kpc)
}

/// One int8 panel by 512-bit `vpdpwssd`.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI, AVX2 and FMA must be available, and the slices as
/// `kernel::qpanel` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(super) unsafe fn qpanel(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V512, INT8_TILES, 1>(p, c, ldc, qdot_t, qdot_1)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn udot_t(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m512i; 1]; MR]; INT8_TILES] {
    qdot::<INT8_TILES, true>(ap, ts, bp, ldb, kpc)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn udot_1(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m512i; 1]; MR]; 1] {
    qdot::<1, true>(ap, ts, bp, ldb, kpc)
}

/// One u8 × s8 panel by 512-bit `vpdpbusd`.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI, AVX2 and FMA must be available, and the slices as
/// `kernel::qpanel` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(super) unsafe fn qpanel_u8(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V512, INT8_TILES, 1>(p, c, ldc, udot_t, udot_1)
}

/// `T` weight tiles against one 16-token panel over `kpc` k pairs of
/// bf16: per pair, one load of X, `T * MR` broadcast weight pairs folded
/// into `vdpbf16ps` (two products added into f32).
#[inline(always)]
unsafe fn bdot<const T: usize>(
    mut ap: *const i32,
    ts: usize,
    mut bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[V512; 1]; MR]; T] {
    let mut acc = [[[_mm512_setzero_ps(); 1]; MR]; T];
    for _ in 0..kpc {
        let b: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const __m512i));
        for (t, tile) in acc.iter_mut().enumerate() {
            for (r, a) in tile.iter_mut().enumerate() {
                let w: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(t * ts + r)));
                a[0] = _mm512_dpbf16_ps(a[0], b, w);
            }
        }
        ap = ap.add(MR);
        bp = bp.add(ldb);
    }
    acc.map(|tile| tile.map(|row| row.map(V512)))
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
unsafe fn bdot_t(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[V512; 1]; MR]; F32_TILES] {
    bdot::<F32_TILES>(ap, ts, bp, ldb, kpc)
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
unsafe fn bdot_1(
    ap: *const i32,
    ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[V512; 1]; MR]; 1] {
    bdot::<1>(ap, ts, bp, ldb, kpc)
}

/// One bf16 panel by `vdpbf16ps`.
///
/// # Safety
/// AVX-512 F/BW/VL/BF16, AVX2 and FMA must be available, and the slices as
/// `kernel::bpanel` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
pub(super) unsafe fn bpanel(p: &BPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::bpanel::<V512, F32_TILES, 1>(p, c, ldc, bdot_t, bdot_1)
}

/// `simd::map` on 16 lanes, for the tests.
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn map(xs: &[f32], which: u8) -> Vec<f32> {
    simd::map::<V512>(xs, which)
}
