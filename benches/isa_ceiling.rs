//! How many multiply-adds per second this CPU core can do at all, for the
//! instruction mixes the f32 and int8 kernels are made of. The int8 speed
//! target of the embedding issue (3x sentence-transformers, "this CPU has
//! AVX-512 VNNI") rests on a fused integer multiply-add; this bench measures
//! what the machine offers instead, on one thread, with the operands in
//! registers or L1, so nothing but the execution units limits it.
//!
//! `cargo bench --bench isa_ceiling`. Each mix is an unrolled asm loop
//! (the compiler cannot reorder, hoist or vectorise it away); the figures
//! are multiply-adds per second and per TSC cycle (the TSC ticks at the
//! nominal clock, so "per cycle" is only comparable within one run).
//!
//! Mixes:
//! - `fma`: 12 independent `vfmadd231ps` (8 f32 multiply-adds each), the
//!   f32 ceiling.
//! - `f32 kernel step`: the f32 kernel's 6x16 tile step (2 loads, 6
//!   broadcasts, 12 FMA).
//! - `vpmaddwd`: 12 independent `vpmaddwd` (16 i16 multiply-adds each,
//!   pairwise summed to i32), not accumulated: the integer multipliers
//!   alone.
//! - `vpmaddwd+vpaddd`: the same, each added into an accumulator, which
//!   is what an int8/int16 multiply-add costs without VNNI's `vpdpwssd`.
//! - `int8 kernel step`: the int8 kernel's 6x16 tile step (2 loads, 6
//!   broadcasts, 12 `vpmaddwd`, 12 `vpaddd`).

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::time::Instant;

    const STEPS: usize = 20_000_000;

    #[derive(Clone, Copy)]
    #[repr(align(64))]
    struct Line(#[expect(dead_code, reason = "read through a raw pointer, by the asm")] [u32; 16]);

    /// Runs `$ins` STEPS times in an asm loop and returns seconds.
    macro_rules! timed {
        ($($ins:expr),* $(,)?) => {{
            // Cache-line aligned: from a plain Vec<u32> the 32-byte loads
            // sometimes straddled two lines, and a mix's figure then
            // changed by up to 40% from one run to the next.
            let buf = vec![Line([0x0001_0001; 16]); 64];
            let p = buf.as_ptr() as *const u32;
            let start = Instant::now();
            // SAFETY: the loop reads at most 320 bytes from `buf` (4 KiB),
            // writes only the registers declared clobbered, and touches no
            // stack.
            unsafe {
                asm!(
                    "lea {p}, [{p}]",
                    "2:",
                    $($ins,)*
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) STEPS => _,
                    p = in(reg) p,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack),
                );
            }
            std::hint::black_box(&buf);
            start.elapsed().as_secs_f64()
        }};
    }

    /// One broadcast row of the 6x16 tile step: `$op` multiplies the
    /// broadcast ymm14 by the two loaded columns ymm12 and ymm13.
    macro_rules! int_row {
        ($off:literal, $a0:literal, $a1:literal) => {
            concat!(
                "vpbroadcastd ymm14, [{p}+",
                $off,
                "]\n",
                "vpmaddwd ymm15, ymm14, ymm12\n",
                "vpaddd ",
                $a0,
                ", ",
                $a0,
                ", ymm15\n",
                "vpmaddwd ymm14, ymm14, ymm13\n",
                "vpaddd ",
                $a1,
                ", ",
                $a1,
                ", ymm14\n",
            )
        };
    }
    macro_rules! f32_row {
        ($off:literal, $a0:literal, $a1:literal) => {
            concat!(
                "vbroadcastss ymm14, [{p}+",
                $off,
                "]\n",
                "vfmadd231ps ",
                $a0,
                ", ymm14, ymm12\n",
                "vfmadd231ps ",
                $a1,
                ", ymm14, ymm13\n",
            )
        };
    }

    /// `$op ymmN, ymm12, ymm13` for N in 0..12: twelve instructions with
    /// no dependency between them (an FMA depends only on its own ymmN).
    #[rustfmt::skip]
    macro_rules! twelve {
        ($op:literal) => {
            concat!(
                $op, " ymm0, ymm12, ymm13\n", $op, " ymm1, ymm12, ymm13\n",
                $op, " ymm2, ymm12, ymm13\n", $op, " ymm3, ymm12, ymm13\n",
                $op, " ymm4, ymm12, ymm13\n", $op, " ymm5, ymm12, ymm13\n",
                $op, " ymm6, ymm12, ymm13\n", $op, " ymm7, ymm12, ymm13\n",
                $op, " ymm8, ymm12, ymm13\n", $op, " ymm9, ymm12, ymm13\n",
                $op, " ymm10, ymm12, ymm13\n", $op, " ymm11, ymm12, ymm13\n",
            )
        };
    }

    fn fma() -> f64 {
        timed!(twelve!("vfmadd231ps"))
    }

    fn f32_step() -> f64 {
        timed!(
            "vmovups ymm12, [{p}+64]",
            "vmovups ymm13, [{p}+96]",
            f32_row!("0", "ymm0", "ymm1"),
            f32_row!("4", "ymm2", "ymm3"),
            f32_row!("8", "ymm4", "ymm5"),
            f32_row!("12", "ymm6", "ymm7"),
            f32_row!("16", "ymm8", "ymm9"),
            f32_row!("20", "ymm10", "ymm11"),
        )
    }

    fn madd() -> f64 {
        timed!(twelve!("vpmaddwd"))
    }

    fn madd_add() -> f64 {
        timed!(
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm0, ymm0, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm1, ymm1, ymm14",
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm2, ymm2, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm3, ymm3, ymm14",
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm4, ymm4, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm5, ymm5, ymm14",
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm6, ymm6, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm7, ymm7, ymm14",
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm8, ymm8, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm9, ymm9, ymm14",
            "vpmaddwd ymm15, ymm12, ymm13",
            "vpaddd ymm10, ymm10, ymm15",
            "vpmaddwd ymm14, ymm12, ymm13",
            "vpaddd ymm11, ymm11, ymm14",
        )
    }

    fn int8_step() -> f64 {
        timed!(
            "vmovdqu ymm12, [{p}+64]",
            "vmovdqu ymm13, [{p}+96]",
            int_row!("0", "ymm0", "ymm1"),
            int_row!("4", "ymm2", "ymm3"),
            int_row!("8", "ymm4", "ymm5"),
            int_row!("12", "ymm6", "ymm7"),
            int_row!("16", "ymm8", "ymm9"),
            int_row!("20", "ymm10", "ymm11"),
        )
    }

    /// A mix's name, its loop, and the multiply-adds one step does.
    type Mix = (&'static str, fn() -> f64, usize);

    /// TSC ticks per second, over the same kind of interval the mixes run.
    fn tsc_hz() -> f64 {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let t0 = unsafe { std::arch::x86_64::_rdtsc() };
        let start = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: as above.
        let t1 = unsafe { std::arch::x86_64::_rdtsc() };
        (t1 - t0) as f64 / start.elapsed().as_secs_f64()
    }

    pub fn main() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            println!("SKIPPED: this CPU has no AVX2+FMA; papersim's kernels are scalar here");
            return;
        }
        let vnni = is_x86_feature_detected!("avx512vnni") || is_x86_feature_detected!("avxvnni");
        let hz = tsc_hz();
        println!(
            "one thread; TSC {:.2} GHz; VNNI: {}",
            hz / 1e9,
            if vnni { "yes" } else { "no" }
        );
        println!();
        println!("| mix | multiply-adds per step | GMAC/s (best of 5) | per TSC cycle | vs fma |");
        println!("|---|---|---|---|---|");
        // 12 instructions of 8 (f32) or 16 (i16 pairs) multiply-adds a step.
        let mixes: [Mix; 5] = [
            ("fma", fma, 96),
            ("f32 kernel step", f32_step, 96),
            ("vpmaddwd", madd, 192),
            ("vpmaddwd+vpaddd", madd_add, 192),
            ("int8 kernel step", int8_step, 192),
        ];
        // Rounds interleave the mixes, so a change of clock or load
        // between them hits every mix alike; each keeps its best round.
        let mut best = [f64::INFINITY; 5];
        for _ in 0..5 {
            for (b, (_, run, _)) in best.iter_mut().zip(&mixes) {
                *b = b.min(run());
            }
        }
        let rate = |i: usize| (STEPS * mixes[i].2) as f64 / best[i];
        for (i, (name, _, macs)) in mixes.iter().enumerate() {
            println!(
                "| {name} | {macs} | {:.1} | {:.1} | {:.2}x |",
                rate(i) / 1e9,
                rate(i) / hz,
                rate(i) / rate(0)
            );
        }
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench too; a plain
    // `cargo test` runs them without, and there is nothing to test here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("SKIPPED: the mixes are x86_64 assembly");
}
