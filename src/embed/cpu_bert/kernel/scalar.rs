//! Portable kernels: the reference every vector path is checked against
//! (same constants, same order of operations), and the fallback on CPUs
//! without one.

use super::super::bf16::{self, BPanel};
use super::super::int8::{clamp_round, unpair, unquad, QPanel, QuantSpec, X_MAX};
use super::{Act, Cols, Panel, MR, NR};

/// log2(e), and ln(2) split in a part exact in f32 and the rest (Cephes).
pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
pub(super) const LN2_HI: f32 = 0.693_359_4;
pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes expf polynomial for e^r on |r| <= ln2/2, highest degree first.
pub(super) const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// erf(x) = x·P(x²)/Q(x²) on [-4, 4] (Eigen's / XLA's f32 erf), highest
/// first. The rational itself is within 7e-8 of erf, but evaluated in f32
/// its rounding reaches 4.5e-7 near |x| = 4, so it runs in f64 (on AVX2, two
/// 4-lane halves: still ~1% of the time of the matmul that feeds it).
pub(super) const ERF_P: [f64; 7] = [
    -2.726_142_258_013_06e-10,
    2.770_681_424_959_02e-8,
    -2.101_024_020_825_08e-6,
    -5.692_506_394_623_46e-5,
    -7.349_906_303_268_55e-4,
    -2.954_599_808_540_25e-3,
    -1.609_603_332_624_15e-2,
];
pub(super) const ERF_Q: [f64; 5] = [
    -1.456_607_184_649_96e-5,
    -2.133_740_552_789_05e-4,
    -1.682_826_974_382_03e-3,
    -7.373_329_167_204_68e-3,
    -1.426_473_905_141_89e-2,
];
/// ERF_P and ERF_Q in f32, for `simd::gelu_erf_f32`.
pub(super) const ERF_P_F32: [f32; 7] = f64s_to_f32(ERF_P);
pub(super) const ERF_Q_F32: [f32; 5] = f64s_to_f32(ERF_Q);

const fn f64s_to_f32<const N: usize>(v: [f64; N]) -> [f32; N] {
    let mut out = [0f32; N];
    let mut i = 0;
    while i < N {
        out[i] = v[i] as f32;
        i += 1;
    }
    out
}

/// √(2/π), for the tanh GELU.
pub(super) const SQRT_2_OVER_PI: f32 = 0.797_884_6;

pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let fx = (x * LOG2E).round_ties_even();
    let r = x - fx * LN2_HI - fx * LN2_LO;
    let mut y = EXP_P[0];
    for &c in &EXP_P[1..] {
        y = y * r + c;
    }
    let y = y * r * r + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) as u32) << 23)
}

pub(super) fn erf_f64(x: f64) -> f64 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ERF_P[0];
    for &c in &ERF_P[1..] {
        p = p * x2 + c;
    }
    let mut q = ERF_Q[0];
    for &c in &ERF_Q[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

pub(in crate::embed::cpu_bert) fn act(act: Act, x: f32) -> f32 {
    match act {
        Act::None => x,
        Act::GeluErf => {
            let x = x as f64;
            (0.5 * x * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
        }
        Act::GeluTanh => {
            let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            // tanh(u) = 1 - 2 / (e^(2u) + 1)
            let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
            0.5 * x * (1.0 + t)
        }
    }
}

/// One f32 panel, as `kernel::panel` (which checks the sizes).
pub(super) fn panel(p: &Panel<'_>, c: &mut [f32], ldc: usize, mut col_max: Option<&mut [f32]>) {
    for t in 0..p.rows.div_ceil(MR) {
        let rows = MR.min(p.rows - t * MR);
        let mut acc = [[0f32; NR]; MR];
        for kk in 0..p.kc {
            let bk = &p.b[kk * p.ldb..][..NR];
            let ak = &p.a[t * p.tile_stride + kk * p.a_ks..][..MR];
            for (row, &av) in acc.iter_mut().zip(ak) {
                for (x, &bv) in row.iter_mut().zip(bk) {
                    *x += av * bv;
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            let c_row = &mut c[(t * MR + r) * ldc..][..NR];
            let bias = p.init.bias(t * MR + r);
            let load = p.init.loads();
            for (j, (o, &x)) in c_row.iter_mut().zip(row).enumerate() {
                let x = x + if load { *o + bias } else { bias };
                let x = p.col_scale.map_or(x, |s| x * s[j]);
                *o = act(p.act, x);
                if let Some(m) = col_max.as_deref_mut() {
                    m[j] = m[j].max(*o);
                }
            }
        }
    }
}

/// One int8 panel, as `kernel::qpanel` (which checks the sizes): i16
/// pairs, or u8 × s8 quads less their zero points. Integer sums are
/// exact, so every path's sums equal these.
pub(super) fn qpanel(p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    let dot = |a: i32, b: i32| -> i32 {
        if p.u8.is_some() {
            let (w, x) = (unquad(a, true), unquad(b, false));
            w.iter().zip(&x).map(|(w, x)| w * x).sum()
        } else {
            let ((a0, a1), (b0, b1)) = (unpair(a), unpair(b));
            a0 * b0 + a1 * b1
        }
    };
    for t in 0..p.rows.div_ceil(MR) {
        let rows = MR.min(p.rows - t * MR);
        let mut acc = [[0i32; NR]; MR];
        for pp in 0..p.kpc {
            let bk = &p.b[pp * p.ldb..][..NR];
            let ak = &p.a[t * p.tile_stride + pp * MR..][..MR];
            for (row, &av) in acc.iter_mut().zip(ak) {
                for (x, &bv) in row.iter_mut().zip(bk) {
                    *x += dot(av, bv);
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            let i = t * MR + r;
            let c_row = &mut c[i * ldc..][..NR];
            let (bias, load) = (p.init.bias(i), p.init.loads());
            for (j, ((o, &x), &xs)) in c_row.iter_mut().zip(row).zip(p.x_scale).enumerate() {
                let x = match p.u8 {
                    Some(z) => x - z.zero[j] * z.row_sum[i],
                    None => x,
                };
                // The vector epilogue's order: (acc·w_scale)·x_scale + bias + C.
                let v = x as f32 * p.w_scale[i] * xs + bias;
                let v = if load { v + *o } else { v };
                *o = act(p.act, v);
            }
        }
    }
}

/// One bf16 panel, as `kernel::bpanel` (which checks the sizes): per
/// pair, the odd k's product added first, then the even one's, each
/// rounded to f32 as `vdpbf16ps` does (the products of two bf16 values are
/// exact in f32).
pub(super) fn bpanel(p: &BPanel<'_>, c: &mut [f32], ldc: usize) {
    for t in 0..p.rows.div_ceil(MR) {
        let rows = MR.min(p.rows - t * MR);
        let mut acc = [[0f32; NR]; MR];
        for pp in 0..p.kpc {
            let bk = &p.b[pp * p.ldb..][..NR];
            let ak = &p.a[t * p.tile_stride + pp * MR..][..MR];
            for (row, &av) in acc.iter_mut().zip(ak) {
                let (a0, a1) = bf16::unpair(av);
                for (x, &bv) in row.iter_mut().zip(bk) {
                    let (b0, b1) = bf16::unpair(bv);
                    *x += a1 * b1;
                    *x += a0 * b0;
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            let c_row = &mut c[(t * MR + r) * ldc..][..NR];
            let bias = p.init.bias(t * MR + r);
            let load = p.init.loads();
            for (o, &x) in c_row.iter_mut().zip(row) {
                let x = x + if load { *o + bias } else { bias };
                *o = act(p.act, x);
            }
        }
    }
}

/// Rows 2p and 2p + 1 of `x` rounded to bf16 into row p of `out`.
pub(super) fn bf16_pairs(x: &[f32], k: usize, n: usize, ld: usize, out: &mut [i32]) {
    for (p, out) in out[..k.div_ceil(2) * ld].chunks_exact_mut(ld).enumerate() {
        let lo = &x[2 * p * ld..][..n];
        let hi = (2 * p + 1 < k).then(|| &x[(2 * p + 1) * ld..][..n]);
        for (j, o) in out[..n].iter_mut().enumerate() {
            *o = bf16::pair(lo[j], hi.map_or(0.0, |h| h[j]));
        }
    }
}

/// Rows g·p .. g·p + g of `x` into row p of `out`, g = `q.layout.group()`.
pub(super) fn quantize_groups(
    x: &[f32],
    k: usize,
    n: usize,
    ld: usize,
    q: &QuantSpec<'_>,
    out: &mut [i32],
) {
    let g = q.layout.group();
    let (bits, mask) = (32 / g, (1i64 << (32 / g)) - 1);
    for (p, out) in out[..k.div_ceil(g) * ld].chunks_exact_mut(ld).enumerate() {
        for (j, o) in out[..n].iter_mut().enumerate() {
            let mut lane = 0i64;
            for r in 0..g.min(k - g * p) {
                let x = match q.skip.get(g * p + r) {
                    Some(true) => 0.0,
                    _ => x[(g * p + r) * ld + j],
                };
                let v = x * q.inv[j] + q.off[j];
                let v = clamp_round(v, 0.0, X_MAX) - q.sub.get(j).copied().unwrap_or(0);
                lane |= (v as i64 & mask) << (bits * r);
            }
            *o = lane as u32 as i32;
        }
    }
}

/// Column softmax numerators, as `kernel::softmax_cols`.
pub(super) fn softmax_cols(s: &mut [f32], c: Cols, scale: f32, inv_sum: &mut [f32], max: &[f32]) {
    inv_sum.fill(0.0);
    for row in s.chunks_exact_mut(c.ld) {
        for ((v, &m), sum) in row.iter_mut().zip(max).zip(inv_sum.iter_mut()) {
            *v = exp((*v - m) * scale);
            *sum += *v;
        }
    }
    inv_sum.iter_mut().for_each(|v| *v = 1.0 / *v);
}

/// LayerNorm down the token columns, as `kernel::layer_norm`.
pub(super) fn layer_norm(
    x: &mut [f32],
    c: Cols,
    g: &[f32],
    b: &[f32],
    eps: f32,
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let (h, ld) = (g.len(), c.ld);
    mean.fill(0.0);
    for row in x.chunks_exact(ld) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= h as f32);
    rstd.fill(0.0);
    for row in x.chunks_exact(ld) {
        for ((r, &m), &v) in rstd.iter_mut().zip(&*mean).zip(row) {
            *r += (v - m) * (v - m);
        }
    }
    rstd.iter_mut()
        .for_each(|r| *r = 1.0 / (*r / h as f32 + eps).sqrt());
    for ((row, &gk), &bk) in x.chunks_exact_mut(ld).zip(g).zip(b) {
        for ((v, &m), &r) in row.iter_mut().zip(&*mean).zip(&*rstd) {
            *v = (*v - m) * r * gk + bk;
        }
    }
}
