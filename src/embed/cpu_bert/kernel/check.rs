//! The self-check a path passes before it is used: small fixed products
//! and element-wise runs against the scalar kernels. A kernel written on a
//! machine without its instruction set, or miscompiled, is refused here
//! rather than giving wrong vectors. Takes well under a millisecond.

use super::super::bf16::{self, BPanel};
use super::super::int8::{pair, quad, QPanel, U8Zero};
use super::super::Cols;
#[cfg(target_arch = "x86_64")]
use super::{
    amx::{TBlock, TScale, TILE},
    tblock,
};
use super::{bpanel, layer_norm, panel, qpanel, softmax_cols, Act, Init, Isa, Panel, MR, NR};

/// Deterministic values in [-1, 1) (xorshift: no rand dependency).
pub(in crate::embed::cpu_bert) fn rng(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` values of [`rng`]`(seed)`.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r()).collect()
}

/// The largest difference of `got` from `want`, relative past magnitude 1.
fn worst(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            let d = (g - w).abs() / w.abs().max(1.0);
            // NaN compares false: make it the worst.
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max)
}

pub(super) fn run(isa: Isa) -> Result<(), String> {
    let fail = |what: &str, err: f32| Err(format!("{what} differs by {err:.1e}"));
    // f32: 3 weight tiles (17 rows, the last tile partial) by 2 panels, 37
    // k steps, each start and activation, column scale and maxima.
    let (m, k, n): (usize, usize, usize) = (17, 37, 2 * NR);
    let tiles = m.div_ceil(MR);
    let a = values(1, tiles * k * MR);
    let b = values(2, k * n);
    let bias = values(3, tiles * MR);
    let scale: Vec<f32> = values(4, n).iter().map(|v| v + 2.0).collect();
    let c0 = values(5, m * n);
    let cases = [
        (Init::Bias(&bias), Act::GeluErf, None),
        (Init::LoadBias(&bias), Act::GeluTanh, Some(&scale[..])),
        (Init::Zero, Act::None, Some(&scale[..])),
    ];
    for (init, act, col_scale) in cases {
        let mut out = [c0.clone(), c0.clone()];
        let mut maxes = [vec![-1e30f32; n], vec![-1e30f32; n]];
        for ((which, c), mx) in [isa, Isa::Scalar].into_iter().zip(&mut out).zip(&mut maxes) {
            for p in 0..n / NR {
                let pn = Panel {
                    a: &a,
                    tile_stride: k * MR,
                    a_ks: MR,
                    b: &b[p * NR..],
                    ldb: n,
                    kc: k,
                    rows: m,
                    init,
                    col_scale: col_scale.map(|s| &s[p * NR..]),
                    act,
                };
                panel(which, &pn, &mut c[p * NR..], n, Some(&mut mx[p * NR..]));
            }
        }
        let err = worst(&out[0], &out[1]).max(worst(&maxes[0], &maxes[1]));
        if err > 1e-5 {
            return fail("the f32 product", err);
        }
    }

    // int8: 5 tiles (29 rows), 21 k groups, exact sums; the GELU is f32 on
    // the vector paths, f64 on the scalar one. i16 pairs on every path,
    // u8 × s8 quads (with zero points) on the paths that have them.
    let (m, kp): (usize, usize) = (29, 21);
    let tiles = m.div_ceil(MR);
    let ints = |seed, len, max: f32| -> Vec<i32> {
        values(seed, len)
            .chunks(2)
            .map(|v| {
                pair(
                    (v[0] * max) as i32,
                    (v.get(1).copied().unwrap_or(0.0) * max) as i32,
                )
            })
            .collect()
    };
    let bytes = |seed, len, lo: f32, hi: f32| -> Vec<i32> {
        values(seed, 4 * len)
            .chunks(4)
            .map(|v| {
                quad(std::array::from_fn(|b| {
                    (lo + (v[b] + 1.0) * 0.5 * (hi - lo)) as i32
                }))
            })
            .collect()
    };
    let mut layouts = vec![(
        ints(6, 2 * tiles * kp * MR, 127.0),
        ints(7, 2 * kp * n, 2047.0),
        None,
    )];
    let (row_sum, zero) = (
        values(15, m)
            .iter()
            .map(|v| (v * 2000.0) as i32)
            .collect::<Vec<_>>(),
        values(16, n)
            .iter()
            .map(|v| ((v + 1.0) * 127.0) as i32)
            .collect::<Vec<_>>(),
    );
    if isa.has_u8_dot() {
        let w = bytes(17, tiles * kp * MR, -127.0, 127.0);
        let x = bytes(18, kp * n, 0.0, 255.0);
        layouts.push((w, x, Some(())));
    }
    let w_scale: Vec<f32> = values(8, m).iter().map(|v| (v + 2.0) * 1e-3).collect();
    let x_scale: Vec<f32> = values(9, n).iter().map(|v| (v + 2.0) * 1e-3).collect();
    let bias = values(10, m);
    for (w, x, quads) in &layouts {
        for (init, act) in [
            (Init::Bias(&bias), Act::GeluErf),
            (Init::LoadBias(&bias), Act::None),
        ] {
            let c0 = values(11, m * n);
            let mut out = [c0.clone(), c0];
            for (which, c) in [isa, Isa::Scalar].into_iter().zip(&mut out) {
                for p in 0..n / NR {
                    let qp = QPanel {
                        a: w,
                        tile_stride: kp * MR,
                        w_scale: &w_scale,
                        b: &x[p * NR..],
                        ldb: n,
                        x_scale: &x_scale[p * NR..],
                        kpc: kp,
                        rows: m,
                        init,
                        act,
                        u8: quads.map(|()| U8Zero {
                            row_sum: &row_sum,
                            zero: &zero[p * NR..],
                        }),
                    };
                    qpanel(which, &qp, &mut c[p * NR..], n);
                }
            }
            let err = worst(&out[0], &out[1]);
            if err > 1e-5 {
                let what = match quads {
                    Some(()) => "the u8 × s8 product",
                    None => "the int8 product",
                };
                return fail(what, err);
            }
            // The same product on tiles, the weights laid out for them.
            #[cfg(target_arch = "x86_64")]
            if quads.is_some() && isa.has_tiles() {
                let q = TScale {
                    w_scale: &w_scale,
                    x_scale: &x_scale,
                    zero: U8Zero {
                        row_sum: &row_sum,
                        zero: &zero,
                    },
                };
                let c = on_tiles(isa, (w, x), (m, kp, n), (init, act), Some(q), 11);
                let err = worst(&c, &out[1]);
                if err > 1e-5 {
                    return fail("the u8 × s8 product on tiles", err);
                }
            }
        }
    }

    // bf16: the same shapes as int8's, on a path with a bf16 dot product.
    if isa.has_bf16_dot() {
        let w: Vec<i32> = values(19, 2 * tiles * kp * MR)
            .chunks(2)
            .map(|v| bf16::pair(v[0], v[1]))
            .collect();
        let x: Vec<i32> = values(20, 2 * kp * n)
            .chunks(2)
            .map(|v| bf16::pair(v[0] * 4.0, v[1] * 4.0))
            .collect();
        for (init, act) in [
            (Init::Bias(&bias), Act::GeluErf),
            (Init::LoadBias(&bias), Act::None),
        ] {
            let c0 = values(21, m * n);
            let mut out = [c0.clone(), c0];
            for (which, c) in [isa, Isa::Scalar].into_iter().zip(&mut out) {
                for p in 0..n / NR {
                    let bp = BPanel {
                        a: &w,
                        tile_stride: kp * MR,
                        b: &x[p * NR..],
                        ldb: n,
                        kpc: kp,
                        rows: m,
                        init,
                        act,
                    };
                    bpanel(which, &bp, &mut c[p * NR..], n);
                }
            }
            let err = worst(&out[0], &out[1]);
            if err > 1e-5 {
                return fail("the bf16 product", err);
            }
            #[cfg(target_arch = "x86_64")]
            if isa.has_tiles() {
                let c = on_tiles(isa, (&w, &x), (m, kp, n), (init, act), None, 21);
                let err = worst(&c, &out[1]);
                if err > 1e-5 {
                    return fail("the bf16 product on tiles", err);
                }
            }
        }
    }

    // Softmax down 9 key rows and LayerNorm over 9 features, 32 columns.
    let c = Cols {
        tokens: n,
        n,
        ld: n + NR,
    };
    let s0: Vec<f32> = values(12, 9 * c.ld).iter().map(|v| v * 20.0).collect();
    let max: Vec<f32> = (0..n)
        .map(|j| (0..9).map(|i| s0[i * c.ld + j]).fold(f32::MIN, f32::max))
        .collect();
    let mut s = [s0.clone(), s0.clone()];
    let mut inv = [vec![0f32; n], vec![0f32; n]];
    for ((which, s), inv) in [isa, Isa::Scalar].into_iter().zip(&mut s).zip(&mut inv) {
        softmax_cols(which, s, 9, c, 0.125, inv, &max);
    }
    let err = worst(&s[0], &s[1]).max(worst(&inv[0], &inv[1]));
    if err > 1e-5 {
        return fail("softmax", err);
    }
    let gb = (values(13, 9), values(14, 9));
    let mut x = [s0.clone(), s0];
    for (which, x) in [isa, Isa::Scalar].into_iter().zip(&mut x) {
        let mut cols = vec![0f32; 2 * n];
        layer_norm(which, x, 9, c, &gb, 1e-12, &mut cols);
    }
    let err = worst(&x[0], &x[1]);
    if err > 1e-5 {
        return fail("LayerNorm", err);
    }
    Ok(())
}

/// The product of weights `w` (MR-row tiles, `kp` lanes, `m` rows) and
/// activations `x` (`kp` lanes of `n` tokens) on tiles, into C starting as
/// `values(seed)`: the weights repacked row-major with lanes and rows
/// padded to whole tiles, the activations padded with zero lanes.
#[cfg(target_arch = "x86_64")]
fn on_tiles(
    isa: Isa,
    (w, x): (&[i32], &[i32]),
    (m, kp, n): (usize, usize, usize),
    (init, act): (Init<'_>, Act),
    q: Option<TScale<'_>>,
    seed: u64,
) -> Vec<f32> {
    let lda = kp.next_multiple_of(TILE);
    let mut a = vec![0; m.next_multiple_of(TILE) * lda];
    for i in 0..m {
        for g in 0..kp {
            a[i * lda + g] = w[(i / MR) * kp * MR + g * MR + i % MR];
        }
    }
    let mut b = x[..kp * n].to_vec();
    b.resize(lda * n, 0);
    let block = TBlock {
        a: &a,
        lda,
        b: &b,
        ldb: n,
        n,
        rows: m,
        init,
        act,
        q,
    };
    let mut c = values(seed, m * n);
    tblock(isa, &block, &mut c, n);
    c
}
