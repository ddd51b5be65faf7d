//! Every path this CPU runs (`Isa::available`), each against references:
//! the element-wise maths against f64 formulas, softmax and LayerNorm
//! against naive f64 code, the self-check on each path, and a broken
//! kernel refused.

use std::cell::Cell;

use super::*;

thread_local! {
    /// The path whose f32 products come out wrong (see `kernel::panel`).
    static BROKEN: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Whether `isa`'s products are to be spoilt on this thread.
pub(super) fn broken(isa: Isa) -> bool {
    BROKEN.with(|b| b.get() == Some(isa))
}

fn erf_ref(x: f64) -> f64 {
    candle_core::cpu::erf::erf_f64(x)
}

/// Function `which` (1 exp, 2 GELU, 3 tanh GELU, 4 GELU with f32 erf) on
/// `isa`'s f32 path.
fn map(isa: Isa, xs: &[f32], which: u8) -> Vec<f32> {
    match isa.f32_kernels() {
        F32Path::Scalar => xs
            .iter()
            .map(|&x| match which {
                1 => scalar::exp(x),
                3 => scalar::act(Act::GeluTanh, x),
                _ => scalar::act(Act::GeluErf, x),
            })
            .collect(),
        // SAFETY (all): the path is available on this CPU.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 => unsafe { avx2::map(xs, which) },
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx512 => unsafe { avx512::map(xs, which) },
        #[cfg(target_arch = "aarch64")]
        F32Path::Neon => unsafe { neon::map(xs, which) },
    }
}

#[test]
fn every_path_this_cpu_has_is_tested() {
    let names: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
    println!("paths on this CPU: {}", names.join(", "));
    assert_eq!(names.last(), Some(&"scalar"));
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(names.contains(&"avx2"));
    }
    #[cfg(target_arch = "aarch64")]
    assert!(names.contains(&"neon"));
}

#[test]
fn erf_is_within_2e7_of_f64_erf() {
    let xs: Vec<f32> = (-800_000..=800_000).map(|i| i as f32 * 1e-5).collect();
    let mut paths: Vec<(&str, Vec<f32>)> = vec![(
        "scalar",
        xs.iter()
            .map(|&x| scalar::erf_f64(x as f64) as f32)
            .collect(),
    )];
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.supported() {
        use std::arch::x86_64::*;
        let got = xs
            .chunks(8)
            .flat_map(|c| {
                let mut buf = [0f32; 8];
                buf[..c.len()].copy_from_slice(c);
                // SAFETY: AVX2 and FMA are present; buf holds 8 floats.
                unsafe {
                    let r = avx2::erf(_mm256_loadu_ps(buf.as_ptr()));
                    _mm256_storeu_ps(buf.as_mut_ptr(), r);
                }
                buf[..c.len()].to_vec()
            })
            .collect();
        paths.push(("avx2", got));
    }
    for (name, got) in paths {
        let (mut worst, mut at) = (0f64, 0f32);
        for (&x, &e) in xs.iter().zip(&got) {
            let d = (e as f64 - erf_ref(x as f64)).abs();
            if d > worst {
                (worst, at) = (d, x);
            }
        }
        println!("erf {name}: max abs error {worst:.3e} at x = {at}");
        assert!(worst <= 2e-7, "{name}: {worst} at {at}");
    }
}

#[test]
fn gelu_matches_f64_formulas() {
    let xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-5).collect();
    for isa in Isa::available() {
        let erf = map(isa, &xs, 2);
        let tanh = map(isa, &xs, 3);
        let erf32 = map(isa, &xs, 4);
        let (mut we, mut wt, mut w32) = (0f64, 0f64, 0f64);
        for (((&x, &e), &t), &e32) in xs.iter().zip(&erf).zip(&tanh).zip(&erf32) {
            let x = x as f64;
            // Absolute error, relative once |x| > 1.
            let want = 0.5 * x * (1.0 + erf_ref(x / 2f64.sqrt()));
            we = we.max((e as f64 - want).abs() / x.abs().max(1.0));
            w32 = w32.max((e32 as f64 - want).abs() / x.abs().max(1.0));
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
            let want_t = 0.5 * x * (1.0 + u.tanh());
            wt = wt.max((t as f64 - want_t).abs() / x.abs().max(1.0));
        }
        println!(
            "gelu {}: erf {we:.3e}, tanh {wt:.3e}, f32 erf {w32:.3e}",
            isa.name()
        );
        assert!(we <= 2e-7 && wt <= 2e-7, "{}: {we} {wt}", isa.name());
        assert!(w32 <= 1e-6, "{}: {w32}", isa.name());
    }
}

#[test]
fn exp_is_within_a_few_ulp() {
    let xs: Vec<f32> = (-870_000..=880_000).map(|i| i as f32 * 1e-4).collect();
    for isa in Isa::available() {
        let got = map(isa, &xs, 1);
        let worst = xs
            .iter()
            .zip(&got)
            .map(|(&x, &e)| {
                let want = (x as f64).exp();
                (e as f64 - want).abs() / want
            })
            .fold(0f64, f64::max);
        println!("exp {}: max relative error {worst:.3e}", isa.name());
        assert!(worst < 3e-7, "{}: {worst}", isa.name());
    }
}

#[test]
fn column_softmax_and_layer_norm_match_naive() {
    let mut r = rng(5);
    for isa in Isa::available() {
        // Rows `ld` apart, the first `n` columns in use (the rest untouched).
        for (rows, n, ld) in [(1, 8, 8), (7, 16, 32), (29, 32, 40), (240, 240, 240)] {
            let c = Cols { tokens: n, n, ld };
            let s0: Vec<f32> = (0..rows * ld).map(|_| r() * 30.0).collect();
            let mut s = s0.clone();
            let max: Vec<f32> = (0..n)
                .map(|i| (0..rows).map(|j| s0[j * ld + i]).fold(f32::MIN, f32::max))
                .collect();
            let mut inv = vec![0f32; n];
            softmax_cols(isa, &mut s, rows, c, 0.25, &mut inv, &max);
            for i in 0..n {
                let col: Vec<f64> = (0..rows).map(|j| s0[j * ld + i] as f64).collect();
                let mx = col.iter().copied().fold(f64::MIN, f64::max);
                let e: Vec<f64> = col.iter().map(|&x| ((x - mx) * 0.25).exp()).collect();
                let sum: f64 = e.iter().sum();
                for j in 0..rows {
                    let got = s[j * ld + i] as f64 * inv[i] as f64;
                    assert!((got - e[j] / sum).abs() < 1e-6, "{isa:?} {rows}x{ld}");
                }
            }
            for j in 0..rows {
                assert_eq!(s[j * ld + n..(j + 1) * ld], s0[j * ld + n..(j + 1) * ld]);
            }

            let h = rows;
            let x0: Vec<f32> = (0..h * ld).map(|_| r() * 3.0 + 1.0).collect();
            let g: Vec<f32> = (0..h).map(|_| r() + 1.0).collect();
            let b: Vec<f32> = (0..h).map(|_| r()).collect();
            let mut x = x0.clone();
            let mut cols = vec![0f32; 2 * n];
            layer_norm(isa, &mut x, h, c, &(g.clone(), b.clone()), 1e-12, &mut cols);
            for i in 0..n {
                let col: Vec<f64> = (0..h).map(|k| x0[k * ld + i] as f64).collect();
                let mean = col.iter().sum::<f64>() / h as f64;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
                for k in 0..h {
                    let want = if h == 1 {
                        b[k] as f64
                    } else {
                        (col[k] - mean) / (var + 1e-12).sqrt() * g[k] as f64 + b[k] as f64
                    };
                    let got = x[k * ld + i] as f64;
                    assert!((got - want).abs() < 1e-4, "{isa:?} {h}x{ld} {got} {want}");
                }
            }
        }
    }
}

#[test]
fn every_available_path_passes_its_self_check() {
    // The AMX tiles too, emulated on a CPU without them.
    for isa in Isa::testable() {
        assert_eq!(self_check(isa), Ok(()), "{}", isa.name());
    }
    for isa in Isa::available() {
        let (chosen, warnings) = Isa::checked(isa, self_check);
        assert_eq!((chosen, warnings.len()), (isa, 0));
    }
}

#[test]
fn a_broken_kernel_is_refused_by_name_and_the_next_one_used() {
    let available = Isa::available();
    for (i, &isa) in available.iter().enumerate() {
        if isa == Isa::Scalar {
            continue;
        }
        BROKEN.with(|b| b.set(Some(isa)));
        let err = self_check(isa).expect_err("a spoilt product must fail the check");
        assert!(err.contains("f32 product"), "{err}");
        let (chosen, warnings) = Isa::checked(isa, self_check);
        BROKEN.with(|b| b.set(None));
        assert_eq!(chosen, available[i + 1], "{}", isa.name());
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains(isa.name()) && warnings[0].contains("self-check"),
            "{}",
            warnings[0]
        );
        println!("{}", warnings[0]);
    }
}

#[test]
fn isa_names_parse_and_refusals_say_why() {
    assert_eq!(Isa::parse(""), Ok(Isa::available()[0]));
    assert_eq!(Isa::parse("auto"), Ok(Isa::available()[0]));
    for isa in Isa::available() {
        assert_eq!(Isa::parse(isa.name()), Ok(isa));
    }
    let err = Isa::parse("avx9000").unwrap_err();
    assert!(
        err.contains("unknown") && err.contains("avx512-vnni"),
        "{err}"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let err = Isa::parse("neon").unwrap_err();
        assert!(
            err.contains("not an instruction set of this architecture"),
            "{err}"
        );
        for isa in Isa::ladder() {
            if !isa.supported() {
                let err = Isa::parse(isa.name()).unwrap_err();
                assert!(err.contains("lacks"), "{err}");
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let err = Isa::parse("avx2").unwrap_err();
        assert!(
            err.contains("not an instruction set of this architecture"),
            "{err}"
        );
    }
}
