//! AVX-VNNI (256-bit VNNI, VEX-encoded: Intel client CPUs since Alder
//! Lake, AMD Zen 5): the int8 products by `vpdpwssd` (i16 pairs, one
//! instruction where AVX2 needs `vpmaddwd` and an add) and `vpdpbusd` (u8 ×
//! s8 quads) on ymm registers. f32 runs as AVX2.

use std::arch::x86_64::*;

use super::super::int8::QPanel;
use super::avx2::V256;
use super::simd;
use super::MR;

/// One 6x16 tile over `kpc` k groups: per group, two loads of X, six
/// broadcast weight groups, twelve `vpdpbusd` (`U8`) or `vpdpwssd` (12
/// accumulators + 2 X + 1 broadcast of the 16 ymm registers).
#[inline(always)]
unsafe fn tile<const U8: bool>(
    mut ap: *const i32,
    mut bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m256i; 2]; MR]; 1] {
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for _ in 0..kpc {
        let b0 = _mm256_loadu_si256(bp as *const __m256i);
        let b1 = _mm256_loadu_si256(bp.add(8) as *const __m256i);
        for (r, a) in acc.iter_mut().enumerate() {
            let w = _mm256_set1_epi32(*ap.add(r));
            if U8 {
                a[0] = _mm256_dpbusd_avx_epi32(a[0], b0, w);
                a[1] = _mm256_dpbusd_avx_epi32(a[1], b1, w);
            } else {
                a[0] = _mm256_dpwssd_avx_epi32(a[0], b0, w);
                a[1] = _mm256_dpwssd_avx_epi32(a[1], b1, w);
            }
        }
        ap = ap.add(MR);
        bp = bp.add(ldb);
    }
    [acc]
}

/// i16 pairs: `vpdpwssd`.
#[inline(never)]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn qdot(
    ap: *const i32,
    _ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m256i; 2]; MR]; 1] {
    tile::<false>(ap, bp, ldb, kpc)
}

/// u8 activations × s8 weights: `vpdpbusd`.
#[inline(never)]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn udot(
    ap: *const i32,
    _ts: usize,
    bp: *const i32,
    ldb: usize,
    kpc: usize,
) -> [[[__m256i; 2]; MR]; 1] {
    tile::<true>(ap, bp, ldb, kpc)
}

/// One int8 panel by 256-bit `vpdpwssd`.
///
/// # Safety
/// AVX2, FMA and AVX-VNNI must be available, and the slices as
/// `kernel::qpanel` asserts.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) unsafe fn qpanel(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V256, 1, 2>(p, c, ldc, qdot, qdot)
}

/// One u8 × s8 panel by 256-bit `vpdpbusd`.
///
/// # Safety
/// AVX2, FMA and AVX-VNNI must be available, and the slices as
/// `kernel::qpanel` asserts.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) unsafe fn qpanel_u8(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    simd::qpanel::<V256, 1, 2>(p, c, ldc, udot, udot)
}
