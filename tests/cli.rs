//! End-to-end: the real binary, the real model, small committed corpora.

mod common;

use common::{json, ok, papersim, papersim_env, stderr};

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn hf_daily() -> PathBuf {
    common::root().join("data/hf-daily-papers.txt")
}

fn build(corpus: &Path, lib: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "build",
        "--corpus",
        corpus.to_str().unwrap(),
        "--library",
        lib.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&ok(papersim(&args)))
}

fn similar(lib: &Path, id: &str, k: &str) -> Value {
    json(&ok(papersim(&[
        "similar",
        "--library",
        lib.to_str().unwrap(),
        id,
        "-k",
        k,
        "--json",
    ])))
}

fn result_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

const OBJECTIVE_MISMATCH: &str = "objective-mismatch-in-model-based-reinforcement-learning";

#[test]
fn hf_daily_papers_similar_finds_the_value_gradient_paper_first() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let report = build(&hf_daily(), &lib, &[]);
    assert_eq!(report["papers"], 61);
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["format"], "hf-daily");
    assert!(report["docs_per_s"].as_f64().unwrap() > 0.0);

    for strategy in ["--exact", "--ann"] {
        let out = ok(papersim(&[
            "similar",
            "--library",
            lib.to_str().unwrap(),
            OBJECTIVE_MISMATCH,
            "--json",
            strategy,
        ]));
        let v = json(&out);
        assert_eq!(v["query"], OBJECTIVE_MISMATCH);
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 10);
        assert_eq!(
            results[0]["title"], "Value Gradient weighted Model-Based Reinforcement Learning",
            "{strategy}"
        );
        assert!(results.iter().all(|r| r["id"] != OBJECTIVE_MISMATCH));
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }

    // A free-text search lands on the paper it paraphrases.
    let v = json(&ok(papersim(&[
        "search",
        "--library",
        lib.to_str().unwrap(),
        "mismatch between dynamics model likelihood and control performance in model-based RL",
        "-k",
        "3",
        "--json",
    ])));
    assert_eq!(v["results"][0]["id"], OBJECTIVE_MISMATCH);

    // The human table names the paper too.
    let table = ok(papersim(&[
        "similar",
        "--library",
        lib.to_str().unwrap(),
        OBJECTIVE_MISMATCH,
        "-k",
        "3",
    ]));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Value Gradient weighted"), "{text}");

    let info = json(&ok(papersim(&[
        "info",
        "--library",
        lib.to_str().unwrap(),
        "--json",
    ])));
    assert_eq!(info["papers"], 61);
    assert_eq!(info["model"]["max_seq_length"], 256);
    assert_eq!(info["model"]["pooling"], "mean");
    assert_eq!(
        info["model"]["weights_sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
}

#[test]
fn reopened_library_answers_the_same_and_matches_the_library_api() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build(&hf_daily(), &lib, &[]);
    let first = similar(&lib, OBJECTIVE_MISMATCH, "20");
    let again = similar(&lib, OBJECTIVE_MISMATCH, "20");
    assert_eq!(first, again);

    // The same through the library API, in this process.
    let opened = papersim::store::Library::open(&lib).unwrap();
    let opts = papersim::query::Options {
        k: 20,
        ..Default::default()
    };
    let hits = papersim::query::similar(&opened, OBJECTIVE_MISMATCH, &opts).unwrap();
    let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(ids, result_ids(&first));
}

#[test]
fn malformed_input_is_reported_with_file_and_line_and_good_records_kept() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("papers.jsonl");
    std::fs::write(
        &corpus,
        concat!(
            r#"{"id": "a1", "title": "Contrastive learning of sentence embeddings", "abstract": "We train sentence encoders with in-batch negatives."}"#,
            "\n",
            r#"{"id": "a2", "title": "Graph neural networks for molecules", "abstract": "#,
            "\n",
            r#"{"id": "a3", "title": "", "abstract": ""}"#,
            "\n",
            r#"{"id": "a1", "title": "Duplicate", "abstract": "Same id again."}"#,
            "\n",
            r#"{"id": "a4", "title": "Protein structure prediction with transformers", "abstract": "Attention over residue pairs."}"#,
            "\n",
        ),
    )
    .unwrap();
    let lib = tmp.path().join("lib");
    let out = ok(papersim(&[
        "build",
        "--corpus",
        corpus.to_str().unwrap(),
        "--library",
        lib.to_str().unwrap(),
        "--json",
    ]));
    let report = json(&out);
    assert_eq!(report["papers"], 2);
    assert_eq!(report["skipped"], 3);
    let err = stderr(&out);
    let name = corpus.display().to_string();
    for line in [2, 3, 4] {
        assert!(
            err.contains(&format!("{name}:{line}:")),
            "line {line}:\n{err}"
        );
    }

    let strict = papersim(&[
        "build",
        "--corpus",
        corpus.to_str().unwrap(),
        "--library",
        tmp.path().join("strict").to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(
        stderr(&strict).contains(&format!("{name}:2:")),
        "{}",
        stderr(&strict)
    );
    assert!(!tmp.path().join("strict/manifest.json").exists());
}

/// A build stopped at any step of its commit (a crash, `kill -9`) leaves the
/// previous library whole: it opens and answers exactly as before.
#[test]
fn an_interrupted_build_leaves_the_old_library_intact() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build(&hf_daily(), &lib, &[]);
    let before = similar(&lib, OBJECTIVE_MISMATCH, "10");
    let sample = common::root().join("data/arxiv-sample.jsonl.gz");

    for point in ["after-papers", "after-vectors", "after-graph"] {
        let out = papersim_env(
            &[
                "build",
                "--corpus",
                sample.to_str().unwrap(),
                "--library",
                lib.to_str().unwrap(),
                "--limit",
                "40",
            ],
            &[("PAPERSIM_FAILPOINT", point)],
        );
        assert!(
            !out.status.success(),
            "failpoint {point} did not stop the build"
        );
        assert_eq!(
            similar(&lib, OBJECTIVE_MISMATCH, "10"),
            before,
            "after {point}"
        );
    }

    // A real kill in the middle of embedding.
    let mut child = Command::new(env!("CARGO_BIN_EXE_papersim"))
        .args([
            "build",
            "--corpus",
            sample.to_str().unwrap(),
            "--library",
            lib.to_str().unwrap(),
        ])
        .current_dir(common::root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        similar(&lib, OBJECTIVE_MISMATCH, "10"),
        before,
        "after kill"
    );

    // And a build that completes replaces it.
    build(&sample, &lib, &["--limit", "40"]);
    let info = json(&ok(papersim(&[
        "info",
        "--library",
        lib.to_str().unwrap(),
        "--json",
    ])));
    assert_eq!(info["papers"], 40);
    assert_eq!(info["generation"], 2);
}

#[test]
fn embed_writes_vectors_in_input_order() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let texts = [
        ("t1", "A long sentence about graph neural networks and their use in chemistry, with more words to make it longer than the others."),
        ("t2", "Short."),
        ("t3", "Transformers for protein folding."),
    ];
    let lines: String = texts
        .iter()
        .map(|(id, t)| format!("{}\n", serde_json::json!({"id": id, "text": t})))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let output = tmp.path().join("out.jsonl");
    ok(papersim(&[
        "embed",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]));
    let rows: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["t1", "t2", "t3"]);

    // Each vector equals the text embedded alone.
    for (row, (id, text)) in rows.iter().zip(texts) {
        let single = tmp.path().join(format!("{id}.jsonl"));
        std::fs::write(
            &single,
            format!("{}\n", serde_json::json!({"id": id, "text": text})),
        )
        .unwrap();
        let out = ok(papersim(&["embed", single.to_str().unwrap()]));
        let alone: Value = serde_json::from_slice(&out.stdout).unwrap();
        let vec = |v: &Value| -> Vec<f32> {
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let (a, b) = (vec(row), vec(&alone));
        assert_eq!(a.len(), 384);
        assert!(common::cosine(&a, &b) >= 0.9999, "{id}");
    }
}

#[test]
fn errors_name_what_is_wrong_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let not_lib = papersim(&["similar", "--library", tmp.path().to_str().unwrap(), "x"]);
    assert_eq!(not_lib.status.code(), Some(2));
    assert!(
        stderr(&not_lib).contains("no papersim library"),
        "{}",
        stderr(&not_lib)
    );
    assert!(
        stderr(&not_lib).contains("papersim build"),
        "{}",
        stderr(&not_lib)
    );

    let no_model = papersim(&[
        "embed",
        hf_daily().to_str().unwrap(),
        "--model",
        tmp.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(no_model.status.code(), Some(2));
    assert!(
        stderr(&no_model).contains("fetch-model.sh"),
        "{}",
        stderr(&no_model)
    );

    let bad_manifest = tmp.path().join("broken");
    std::fs::create_dir_all(&bad_manifest).unwrap();
    std::fs::write(
        bad_manifest.join("manifest.json"),
        "{\"format\": \"papersim-library\",\n \"format_version\": 99}",
    )
    .unwrap();
    let out = papersim(&["info", "--library", bad_manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("manifest.json"), "{}", stderr(&out));
    assert!(stderr(&out).contains("version 99"), "{}", stderr(&out));

    if common::model_dir().is_none() {
        return;
    }
    let lib = tmp.path().join("lib");
    build(&hf_daily(), &lib, &[]);
    let unknown = papersim(&[
        "similar",
        "--library",
        lib.to_str().unwrap(),
        "objective-mismatch",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("did you mean"),
        "{}",
        stderr(&unknown)
    );

    // Flip one byte of the vectors file: the checksum catches it.
    let vectors = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "f32"))
        .unwrap();
    let mut bytes = std::fs::read(&vectors).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&vectors, bytes).unwrap();
    let out = papersim(&[
        "similar",
        "--library",
        lib.to_str().unwrap(),
        OBJECTIVE_MISMATCH,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
    assert!(stderr(&out).contains(".f32"), "{}", stderr(&out));
}

/// `bench index --json` is the object the issue specifies, over exactly the
/// rows asked for: `--limit` keeps the first N, the last `--queries` of
/// them are held out, and every ef row has a sane recall.
#[test]
fn bench_index_json_reports_each_ef_over_the_limited_rows() {
    let v = json(&ok(papersim(&[
        "bench",
        "index",
        "--synthetic",
        "600",
        "--limit",
        "500",
        "--queries",
        "50",
        "--ef",
        "16,64",
        "--json",
    ])));
    assert_eq!(v["indexed"], 450, "{v}");
    assert_eq!(v["queries"], 50, "{v}");
    assert!(v["build_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["peak_rss_mb"].as_f64().unwrap() > 0.0, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, ef) in rows.iter().zip([16, 64]) {
        assert_eq!(row["ef"], ef);
        let recall = row["recall@10"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&recall), "ef {ef}: recall {recall}");
        assert!(row["qps_1t"].as_f64().unwrap() > 0.0 && row["qps_2t"].as_f64().unwrap() > 0.0);
    }
    assert!(
        v["source"].as_str().unwrap().contains("first 500 rows"),
        "{v}"
    );
}
