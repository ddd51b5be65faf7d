//! Every CPU kernel path this machine runs, forced through `PAPERSIM_ISA`
//! on the real binary: f32 and bf16 match sentence-transformers to cosine
//! ≥ 0.9999 and int8 to ≥ 0.997 on the reference texts, and a path the CPU
//! lacks (or an unknown name) is refused before any work, exit 2.
//!
//! `PAPERSIM_ISA_TEST_TEXTS` (default 48) sets how many reference texts
//! each path embeds: the aarch64 run under QEMU keeps it small.

mod common;

use common::{s, Reference};

/// `n` reference texts: every short edge case first (empty, CJK, emoji,
/// LaTeX, over-long…), then abstracts.
fn texts(refs: &[Reference], n: usize) -> Vec<&Reference> {
    let (mut short, long): (Vec<&Reference>, Vec<&Reference>) =
        refs.iter().partition(|r| !r.id.starts_with("abs-"));
    short.truncate(n / 2);
    let rest = n - short.len();
    short.extend(long.into_iter().take(rest));
    short
}

#[test]
fn every_path_this_cpu_runs_matches_sentence_transformers() {
    let (Some(_), Some(refs)) = (common::model_dir(), common::references()) else {
        return;
    };
    let n = std::env::var("PAPERSIM_ISA_TEST_TEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let chosen = texts(&refs, n);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.jsonl");
    let lines: Vec<String> = chosen
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "text": r.text}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let kernels = papersim::embed::cpu_kernels().unwrap();
    println!("paths on this CPU: {}", kernels.available.join(", "));
    for isa in &kernels.available {
        for (precision, bar) in [("f32", 0.9999f32), ("bf16", 0.9999), ("int8", 0.997)] {
            let out = dir.path().join(format!("{isa}-{precision}.jsonl"));
            let o = common::ok(common::papersim_env(
                &[
                    "embed",
                    s(&input),
                    "--precision",
                    precision,
                    "--output",
                    s(&out),
                    "--json",
                ],
                &[("PAPERSIM_ISA", isa)],
            ));
            let summary = common::json(&o);
            assert_eq!(summary["embedded"], chosen.len(), "{summary}");
            let text = std::fs::read_to_string(&out).unwrap();
            let mut worst = (f32::MAX, String::new());
            for (line, r) in text.lines().zip(&chosen) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["id"], r.id.as_str());
                let e: Vec<f32> = v["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                let c = common::cosine(&e, &r.embedding);
                if c < worst.0 {
                    worst = (c, r.id.clone());
                }
            }
            println!(
                "{isa} {precision}: min cosine {:.6} ({}) over {} texts",
                worst.0,
                worst.1,
                chosen.len()
            );
            assert!(
                worst.0 >= bar,
                "{isa} {precision}: {} at {}",
                worst.0,
                worst.1
            );
        }
    }
}

#[test]
fn a_path_the_cpu_lacks_or_an_unknown_name_is_refused() {
    let Some(_) = common::model_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"a\", \"text\": \"graph neural networks\"}\n",
    )
    .unwrap();
    let kernels = papersim::embed::cpu_kernels().unwrap();
    let mut refused = vec!["avx9000"];
    refused.extend(
        [
            "avx512-bf16",
            "avx512-vnni",
            "avx512",
            "avx-vnni",
            "avx2",
            "neon",
        ]
        .into_iter()
        .filter(|n| !kernels.available.contains(n)),
    );
    for name in refused {
        let o = common::papersim_env(&["embed", s(&input)], &[("PAPERSIM_ISA", name)]);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(&format!("PAPERSIM_ISA={name}")), "{err}");
        assert!(err.contains("scalar"), "the message lists what runs: {err}");
    }
}

#[test]
fn info_build_and_bench_name_the_kernels_that_ran() {
    let Some(lib) = common::hf_daily_library() else {
        return;
    };
    let kernels = papersim::embed::cpu_kernels().unwrap();
    let info = common::info(lib);
    assert_eq!(info["cpu_kernels"]["selected"], kernels.selected);
    let text = common::ok(common::papersim_env(
        &["info", "--library", s(lib)],
        &[("PAPERSIM_ISA", "scalar")],
    ));
    assert!(String::from_utf8_lossy(&text.stdout).contains("cpu kernels  scalar (this CPU runs"));
    let o = common::ok(common::papersim_env(
        &[
            "bench",
            "embed",
            "--corpus",
            s(&common::hf_daily()),
            "-n",
            "4",
            "--json",
        ],
        &[("PAPERSIM_ISA", "scalar")],
    ));
    let runs = common::json(&o);
    assert!(
        runs[0]["device"].as_str().unwrap().contains("scalar"),
        "{runs}"
    );
}
