//! The f32 kernels, written once over [`Vf32`] and instantiated per
//! instruction set (AVX2 `__m256`, AVX-512 `__m512`, NEON `float32x4_t`),
//! so that what the AVX2 machine tests is the very code the others run.
//!
//! Everything here is `#[inline(always)]` and has no target features of its
//! own: it is compiled inside each instruction set's `#[target_feature]`
//! entry points (`avx2::panel`, …), where the trait's intrinsics inline.
//! The register tile is the caller's choice: `T` MR-row weight tiles by `V`
//! vectors (one 16-token panel), `T * MR * V` accumulators.
//!
//! Written this way rather than through a SIMD crate (`pulp`) or
//! `std::simd` (nightly only): the trait is ~20 one-line methods per
//! instruction set, and the generic kernel runs as fast as the hand-written
//! AVX2 one it replaced (see `docs/kernels.md` for the figures).

use super::super::bf16::BPanel;
use super::super::int8::QPanel;
use super::scalar::{ERF_P_F32, ERF_Q_F32, EXP_P, LN2_HI, LN2_LO, LOG2E, SQRT_2_OVER_PI};
use super::{Act, Cols, Panel, MR, NR};

/// A vector of f32 lanes and the operations the kernels use. Every method
/// requires the CPU to have the instruction set of the implementing type.
#[allow(clippy::missing_safety_doc)]
pub(in crate::embed::cpu_bert) trait Vf32: Copy {
    /// Lanes per vector; a divisor of [`NR`].
    const LANES: usize;
    /// The i32 vector of as many lanes (the int8 kernels' sums).
    type I: Copy;
    /// Lane-wise i32 to f32, rounding to nearest as `as f32` does.
    unsafe fn from_i32(i: Self::I) -> Self;
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn div(self, o: Self) -> Self;
    /// `self * b + c`, fused.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `c - self * b`, fused.
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum; `o` where `self` is NaN (x86's `maxps` order).
    unsafe fn max(self, o: Self) -> Self;
    unsafe fn min(self, o: Self) -> Self;
    unsafe fn sqrt(self) -> Self;
    /// Round to nearest, ties to even.
    unsafe fn round(self) -> Self;
    /// 2^self for whole `self` in -127..=128, built in the exponent bits.
    unsafe fn pow2i(self) -> Self;
    /// BERT's GELU within ~1e-7 (erf in f64: see `scalar::ERF_P`).
    unsafe fn gelu_erf(self) -> Self;
    /// `LANES` i32 values from `p`.
    unsafe fn load_i32(p: *const i32) -> Self::I;
    /// `acc - z * s`, lane-wise on i32 (the zero-point correction of a
    /// u8 × s8 product).
    unsafe fn sub_mul_i32(acc: Self::I, z: Self::I, s: i32) -> Self::I;
}

/// `coeffs` (highest degree first) at `x`, by Horner with fused steps.
#[inline(always)]
unsafe fn poly<S: Vf32>(x: S, coeffs: &[f32]) -> S {
    let mut y = S::splat(coeffs[0]);
    for &c in &coeffs[1..] {
        y = y.mul_add(x, S::splat(c));
    }
    y
}

/// e^x, Cephes' expf: x = n·ln2 + r, e^r by a degree-6 polynomial, 2^n
/// by building the exponent bits. Within 2 ulp on [-87, 88].
#[inline(always)]
pub(super) unsafe fn exp<S: Vf32>(x: S) -> S {
    let x = x.max(S::splat(-87.0)).min(S::splat(88.0));
    let fx = x.mul(S::splat(LOG2E)).round();
    let r = fx.neg_mul_add(S::splat(LN2_HI), x);
    let r = fx.neg_mul_add(S::splat(LN2_LO), r);
    let y = poly(r, &EXP_P);
    let y = y.mul_add(r.mul(r), r.add(S::splat(1.0)));
    y.mul(fx.pow2i())
}

/// GELU with erf evaluated in f32: the same rational as the f64 one,
/// within ~5e-7 instead of 1e-7, at a third of the cost. For int8, whose
/// own error is ~1e-3, the f64 version is wasted work.
#[inline(always)]
pub(super) unsafe fn gelu_erf_f32<S: Vf32>(x: S) -> S {
    let u = x.mul(S::splat(std::f32::consts::FRAC_1_SQRT_2));
    let u = u.max(S::splat(-4.0)).min(S::splat(4.0));
    let u2 = u.mul(u);
    let p = u.mul(poly(u2, &ERF_P_F32));
    let e = p.div(poly(u2, &ERF_Q_F32));
    let half_x = x.mul(S::splat(0.5));
    half_x.mul_add(e, half_x)
}

/// 0.5·x·(1 + tanh(u)), tanh(u) = 1 - 2 / (e^(2u) + 1).
#[inline(always)]
pub(super) unsafe fn gelu_tanh<S: Vf32>(x: S) -> S {
    let x3 = x.mul(x).mul(x);
    let u = S::splat(SQRT_2_OVER_PI).mul(S::splat(0.044715).mul_add(x3, x));
    let one = S::splat(1.0);
    let e = exp(u.add(u));
    let t = one.sub(S::splat(2.0).div(e.add(one)));
    let half_x = x.mul(S::splat(0.5));
    half_x.mul_add(t, half_x)
}

/// `T` MR-row tiles of A·B over `kc` k steps, from zero: per k, `V` loads
/// of B (one 16-token panel), `T * MR` broadcasts of A and `T * MR * V`
/// FMAs. Called through each instruction set's out-of-line `dot`: inlined
/// next to the epilogue's row loop, LLVM kept the accumulators in memory
/// and stored them all on every k, halving throughput.
#[inline(always)]
pub(super) unsafe fn dot<S: Vf32, const T: usize, const V: usize>(
    mut ap: *const f32,
    a_ks: usize,
    tile_stride: usize,
    mut bp: *const f32,
    ldb: usize,
    kc: usize,
) -> [[[S; V]; MR]; T] {
    let mut acc = [[[S::zero(); V]; MR]; T];
    for _ in 0..kc {
        let mut b = [S::zero(); V];
        for (v, bv) in b.iter_mut().enumerate() {
            *bv = S::load(bp.add(v * S::LANES));
        }
        for (t, tile) in acc.iter_mut().enumerate() {
            for (r, row) in tile.iter_mut().enumerate() {
                let a = S::splat(*ap.add(t * tile_stride + r));
                for (x, &bv) in row.iter_mut().zip(&b) {
                    *x = a.mul_add(bv, *x);
                }
            }
        }
        ap = ap.add(a_ks);
        bp = bp.add(ldb);
    }
    acc
}

/// The product of `T` tiles from `a` (the panel's tile `t0` onwards).
pub(super) type Dot<S, const T: usize, const V: usize> =
    unsafe fn(*const f32, usize, usize, *const f32, usize, usize) -> [[[S; V]; MR]; T];

/// A panel's tiles, `T` at a time through `dot_t` and the rest one by one
/// through `dot_1`: the product, then the start value (bias, C), column
/// scale and activation on the registers, one store per value.
///
/// # Safety
/// The instruction set of `S` must be available, and the slices as
/// `kernel::panel` asserts.
#[inline(always)]
pub(super) unsafe fn panel<S: Vf32, const T: usize, const V: usize>(
    p: &Panel<'_>,
    c: &mut [f32],
    ldc: usize,
    col_max: Option<&mut [f32]>,
    dot_t: Dot<S, T, V>,
    dot_1: Dot<S, 1, V>,
) {
    debug_assert!(V * S::LANES == NR);
    let cp = c.as_mut_ptr();
    let mut max = col_max.as_deref().map(|m| {
        let mut v = [S::zero(); V];
        for (i, x) in v.iter_mut().enumerate() {
            *x = S::load(m.as_ptr().add(i * S::LANES));
        }
        v
    });
    let scale = p.col_scale.map(|s| {
        let mut v = [S::zero(); V];
        for (i, x) in v.iter_mut().enumerate() {
            *x = S::load(s.as_ptr().add(i * S::LANES));
        }
        v
    });
    let tiles = p.rows.div_ceil(MR);
    let mut t = 0;
    while t < tiles {
        let ap = p.a.as_ptr().add(t * p.tile_stride);
        let (bp, kc) = (p.b.as_ptr(), p.kc);
        if t + T <= tiles {
            let acc = dot_t(ap, p.a_ks, p.tile_stride, bp, p.ldb, kc);
            for (i, tile) in acc.iter().enumerate() {
                store_tile(
                    &p.into(),
                    tile,
                    t + i,
                    cp,
                    ldc,
                    scale.as_ref(),
                    max.as_mut(),
                );
            }
            t += T;
        } else {
            let acc = dot_1(ap, p.a_ks, p.tile_stride, bp, p.ldb, kc);
            store_tile(&p.into(), &acc[0], t, cp, ldc, scale.as_ref(), max.as_mut());
            t += 1;
        }
    }
    if let (Some(m), Some(out)) = (max, col_max) {
        for (i, v) in m.iter().enumerate() {
            v.store(out.as_mut_ptr().add(i * S::LANES));
        }
    }
}

/// What a float panel's epilogue applies besides the column scale:
/// `rows` of output, where the accumulators start, the activation.
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    pub rows: usize,
    pub init: super::Init<'a>,
    pub act: Act,
}

impl<'a> From<&Panel<'a>> for Epilogue<'a> {
    fn from(p: &Panel<'a>) -> Self {
        Epilogue {
            rows: p.rows,
            init: p.init,
            act: p.act,
        }
    }
}

impl<'a> From<&BPanel<'a>> for Epilogue<'a> {
    fn from(p: &BPanel<'a>) -> Self {
        Epilogue {
            rows: p.rows,
            init: p.init,
            act: p.act,
        }
    }
}

/// The bf16 product of `T` tiles from `a` (the panel's tile `t0` onwards).
#[cfg(target_arch = "x86_64")]
pub(super) type BDot<S, const T: usize, const V: usize> =
    unsafe fn(*const i32, usize, *const i32, usize, usize) -> [[[S; V]; MR]; T];

/// A bf16 panel's tiles, `T` at a time through `dot_t`, the rest through
/// `dot_1`, with the f32 panel's epilogue.
///
/// # Safety
/// The instruction set of `S` must be available, and the slices as
/// `kernel::bpanel` asserts.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn bpanel<S: Vf32, const T: usize, const V: usize>(
    p: &BPanel<'_>,
    c: &mut [f32],
    ldc: usize,
    dot_t: BDot<S, T, V>,
    dot_1: BDot<S, 1, V>,
) {
    debug_assert!(V * S::LANES == NR);
    let cp = c.as_mut_ptr();
    let e = Epilogue::from(p);
    let tiles = p.rows.div_ceil(MR);
    let mut t = 0;
    while t < tiles {
        let ap = p.a.as_ptr().add(t * p.tile_stride);
        if t + T <= tiles {
            let acc = dot_t(ap, p.tile_stride, p.b.as_ptr(), p.ldb, p.kpc);
            for (i, tile) in acc.iter().enumerate() {
                store_tile(&e, tile, t + i, cp, ldc, None, None);
            }
            t += T;
        } else {
            let acc = dot_1(ap, p.tile_stride, p.b.as_ptr(), p.ldb, p.kpc);
            store_tile(&e, &acc[0], t, cp, ldc, None, None);
            t += 1;
        }
    }
}

/// Tile `t`'s epilogue and store. Rows past the edge of M were computed
/// and are dropped here.
#[inline(always)]
pub(super) unsafe fn store_tile<S: Vf32, const V: usize>(
    p: &Epilogue<'_>,
    acc: &[[S; V]; MR],
    t: usize,
    cp: *mut f32,
    ldc: usize,
    scale: Option<&[S; V]>,
    mut max: Option<&mut [S; V]>,
) {
    let rows = MR.min(p.rows - t * MR);
    let load = p.init.loads();
    let has_bias = matches!(p.init, super::Init::Bias(_) | super::Init::LoadBias(_));
    for (r, row) in acc.iter().enumerate().take(rows) {
        let ct = cp.add((t * MR + r) * ldc);
        let bias = S::splat(p.init.bias(t * MR + r));
        for (h, &v) in row.iter().enumerate() {
            let mut v = v;
            if has_bias {
                v = v.add(bias);
            }
            if load {
                v = v.add(S::load(ct.add(h * S::LANES)));
            }
            if let Some(s) = scale {
                v = v.mul(s[h]);
            }
            let v = match p.act {
                Act::None => v,
                Act::GeluErf => v.gelu_erf(),
                Act::GeluTanh => gelu_tanh(v),
            };
            v.store(ct.add(h * S::LANES));
            if let Some(m) = max.as_deref_mut() {
                m[h] = m[h].max(v);
            }
        }
    }
}

/// Column softmax numerators, as `kernel::softmax_cols` (which checks the
/// sizes); `c.n` a multiple of `S::LANES`.
#[inline(always)]
pub(super) unsafe fn softmax_cols<S: Vf32>(
    s: &mut [f32],
    c: Cols,
    scale: f32,
    inv_sum: &mut [f32],
    max: &[f32],
) {
    let (sp, mp, ip) = (s.as_mut_ptr(), max.as_ptr(), inv_sum.as_mut_ptr());
    let (n, ld, l) = (c.n, c.ld, S::LANES);
    let rows = s.len() / ld;
    for i in (0..n).step_by(l) {
        S::zero().store(ip.add(i));
    }
    let vs = S::splat(scale);
    for j in 0..rows {
        for i in (0..n).step_by(l) {
            let p = sp.add(j * ld + i);
            let d = S::load(p).sub(S::load(mp.add(i)));
            let e = exp(d.mul(vs));
            e.store(p);
            S::load(ip.add(i)).add(e).store(ip.add(i));
        }
    }
    let one = S::splat(1.0);
    for i in (0..n).step_by(l) {
        one.div(S::load(ip.add(i))).store(ip.add(i));
    }
}

/// LayerNorm down the token columns, as `kernel::layer_norm` (which
/// checks the sizes); `c.n` a multiple of `S::LANES`.
#[inline(always)]
pub(super) unsafe fn layer_norm<S: Vf32>(
    x: &mut [f32],
    c: Cols,
    g: &[f32],
    b: &[f32],
    eps: f32,
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let (h, n, ld, l) = (g.len(), c.n, c.ld, S::LANES);
    let (xp, mp, rp) = (x.as_mut_ptr(), mean.as_mut_ptr(), rstd.as_mut_ptr());
    for i in (0..n).step_by(l) {
        S::zero().store(mp.add(i));
        S::zero().store(rp.add(i));
    }
    for k in 0..h {
        for i in (0..n).step_by(l) {
            let v = S::load(xp.add(k * ld + i));
            S::load(mp.add(i)).add(v).store(mp.add(i));
        }
    }
    let inv_h = S::splat(1.0 / h as f32);
    for i in (0..n).step_by(l) {
        S::load(mp.add(i)).mul(inv_h).store(mp.add(i));
    }
    for k in 0..h {
        for i in (0..n).step_by(l) {
            let d = S::load(xp.add(k * ld + i)).sub(S::load(mp.add(i)));
            d.mul_add(d, S::load(rp.add(i))).store(rp.add(i));
        }
    }
    let (ve, one) = (S::splat(eps), S::splat(1.0));
    for i in (0..n).step_by(l) {
        let var = S::load(rp.add(i)).mul_add(inv_h, ve);
        one.div(var.sqrt()).store(rp.add(i));
    }
    for k in 0..h {
        let (gk, bk) = (S::splat(g[k]), S::splat(b[k]));
        for i in (0..n).step_by(l) {
            let p = xp.add(k * ld + i);
            let d = S::load(p).sub(S::load(mp.add(i)));
            let d = d.mul(S::load(rp.add(i)));
            d.mul_add(gk, bk).store(p);
        }
    }
}

/// The int8 product of `T` tiles over `kpc` k pairs (weights from the
/// panel's tile `t0`, activations from the panel's first pair).
pub(super) type QDot<I, const T: usize, const V: usize> =
    unsafe fn(*const i32, usize, *const i32, usize, usize) -> [[[I; V]; MR]; T];

/// An int8 panel's tiles, `T` at a time through `dot_t`, the rest through
/// `dot_1`: exact i32 sums (less the zero points' share for quads),
/// dequantized ((acc·w_scale)·x_scale, unfused, as the scalar code), plus
/// bias and C, activation, one store per value.
///
/// # Safety
/// The instruction set of `S` must be available, and the slices as
/// `kernel::qpanel` asserts.
#[inline(always)]
pub(super) unsafe fn qpanel<S: Vf32, const T: usize, const V: usize>(
    p: &QPanel<'_>,
    c: &mut [f32],
    ldc: usize,
    dot_t: QDot<S::I, T, V>,
    dot_1: QDot<S::I, 1, V>,
) {
    debug_assert!(V * S::LANES == NR);
    let cp = c.as_mut_ptr();
    let mut xs = [S::zero(); V];
    for (i, x) in xs.iter_mut().enumerate() {
        *x = S::load(p.x_scale.as_ptr().add(i * S::LANES));
    }
    let zero = p.u8.map(|z| {
        std::array::from_fn::<S::I, V, _>(|i| S::load_i32(z.zero.as_ptr().add(i * S::LANES)))
    });
    let e = QEpilogue::from(p);
    let tiles = p.rows.div_ceil(MR);
    let mut t = 0;
    while t < tiles {
        let ap = p.a.as_ptr().add(t * p.tile_stride);
        if t + T <= tiles {
            let acc = dot_t(ap, p.tile_stride, p.b.as_ptr(), p.ldb, p.kpc);
            for (i, tile) in acc.iter().enumerate() {
                qstore_tile(&e, tile, t + i, cp, ldc, &xs, zero.as_ref());
            }
            t += T;
        } else {
            let acc = dot_1(ap, p.tile_stride, p.b.as_ptr(), p.ldb, p.kpc);
            qstore_tile(&e, &acc[0], t, cp, ldc, &xs, zero.as_ref());
            t += 1;
        }
    }
}

/// What an int8 panel's epilogue applies: [`Epilogue`]'s, and the
/// dequantization's row side (scales, and the row sums of the zero-point
/// correction for quads).
pub(super) struct QEpilogue<'a> {
    pub rows: usize,
    pub init: super::Init<'a>,
    pub act: Act,
    pub w_scale: &'a [f32],
    pub row_sum: Option<&'a [i32]>,
}

impl<'a> From<&QPanel<'a>> for QEpilogue<'a> {
    fn from(p: &QPanel<'a>) -> Self {
        QEpilogue {
            rows: p.rows,
            init: p.init,
            act: p.act,
            w_scale: p.w_scale,
            row_sum: p.u8.map(|z| z.row_sum),
        }
    }
}

/// Tile `t`'s int8 epilogue and store: `(acc - z·row_sum)·w_scale·x_scale
/// + bias (+ C)`, then the activation. Rows past the edge of M are dropped.
#[inline(always)]
pub(super) unsafe fn qstore_tile<S: Vf32, const V: usize>(
    p: &QEpilogue<'_>,
    acc: &[[S::I; V]; MR],
    t: usize,
    cp: *mut f32,
    ldc: usize,
    xs: &[S; V],
    zero: Option<&[S::I; V]>,
) {
    let rows = MR.min(p.rows - t * MR);
    let load = p.init.loads();
    for (r, row) in acc.iter().enumerate().take(rows) {
        let i = t * MR + r;
        let ct = cp.add(i * ldc);
        let (ws, bias) = (S::splat(p.w_scale[i]), S::splat(p.init.bias(i)));
        for (h, &a) in row.iter().enumerate() {
            let a = match (zero, p.row_sum) {
                (Some(z), Some(row_sum)) => S::sub_mul_i32(a, z[h], row_sum[i]),
                _ => a,
            };
            let v = S::from_i32(a).mul(ws).mul(xs[h]).add(bias);
            let v = if load {
                v.add(S::load(ct.add(h * S::LANES)))
            } else {
                v
            };
            let v = match p.act {
                Act::None => v,
                Act::GeluErf => gelu_erf_f32(v),
                Act::GeluTanh => gelu_tanh(v),
            };
            v.store(ct.add(h * S::LANES));
        }
    }
}

/// Applies function `which` (1 exp, 2 GELU, 3 tanh GELU, 4 GELU with f32
/// erf) to `xs`, a vector at a time, for the tests.
#[cfg(test)]
#[inline(always)]
pub(super) unsafe fn map<S: Vf32>(xs: &[f32], which: u8) -> Vec<f32> {
    let l = S::LANES;
    let mut buf = vec![0f32; xs.len().div_ceil(l) * l];
    buf[..xs.len()].copy_from_slice(xs);
    for ch in buf.chunks_exact_mut(l) {
        let v = S::load(ch.as_ptr());
        let r = match which {
            1 => exp(v),
            2 => v.gelu_erf(),
            3 => gelu_tanh(v),
            _ => gelu_erf_f32(v),
        };
        r.store(ch.as_mut_ptr());
    }
    buf.truncate(xs.len());
    buf
}
