//! End-to-end: the real binary, the real model, small committed corpora.

mod common;

use common::{
    build, build_args, build_env, build_json, build_ok, hf_daily, json, ok, papersim, result_ids,
    s, stderr,
};

use std::path::Path;

use serde_json::Value;

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

const OBJECTIVE_MISMATCH: &str = "objective-mismatch-in-model-based-reinforcement-learning";

#[test]
fn hf_daily_papers_similar_finds_the_value_gradient_paper_first() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let report = build_json(&hf_daily(), &lib, &[]);
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
        // Hybrid ranks by the fused value; the headline score is the cosine.
        let fused: Vec<f64> = results
            .iter()
            .map(|r| r["fused"].as_f64().unwrap())
            .collect();
        assert!(fused.windows(2).all(|w| w[0] >= w[1]), "{fused:?}");
        assert!(results.iter().all(|r| {
            let s = r["score"].as_f64().unwrap();
            (-1.0..=1.0).contains(&s)
        }));
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
    // Scores people can read: a paraphrase of the paper scores as a cosine
    // (well above the ~0.03 of a reciprocal-rank value), fusion kept apart.
    let top = &v["results"][0];
    assert!(top["score"].as_f64().unwrap() > 0.4, "{top}");
    assert!(top["fused"].as_f64().unwrap() < 0.05, "{top}");

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

    let info = common::info(&lib);
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
    build_json(&hf_daily(), &lib, &[]);
    let first = similar(&lib, OBJECTIVE_MISMATCH, "20");
    let again = similar(&lib, OBJECTIVE_MISMATCH, "20");
    assert_eq!(first, again);

    // The same through the library API, in this process.
    let opened = papersim::store::Library::open(&lib).unwrap();
    let opts = papersim::query::Options {
        k: 20,
        mode: papersim::query::PAPER_DEFAULT_MODE,
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
    let out = build_ok(&corpus, &lib, &["--json"]);
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

    let strict = build(&corpus, &tmp.path().join("strict"), &["--strict"]);
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
    build_json(&hf_daily(), &lib, &[]);
    let before = similar(&lib, OBJECTIVE_MISMATCH, "10");
    let sample = common::arxiv_sample();

    for point in ["after-papers", "after-vectors", "after-graph"] {
        let out = build_env(
            &sample,
            &lib,
            &["--limit", "40"],
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
    common::kill_after(
        &build_args(&sample, &lib, &[]),
        std::time::Duration::from_millis(2500),
    );
    assert_eq!(
        similar(&lib, OBJECTIVE_MISMATCH, "10"),
        before,
        "after kill"
    );

    // And a build that completes replaces it.
    build_json(&sample, &lib, &["--limit", "40"]);
    let info = common::info(&lib);
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
    build_json(&hf_daily(), &lib, &[]);
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

/// `papersim search … | head -c 100`: the reader goes away mid-output and
/// papersim ends quietly with status 0, no panic and no error message.
#[test]
fn a_closed_pipe_ends_quietly() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&common::arxiv_sample(), &lib, &["--limit", "200"]);
    let args = [
        "search",
        "--library",
        s(&lib),
        "graph",
        "-k",
        "900",
        "--json",
    ];
    // More than a pipe holds (64 KiB on Linux), so papersim is still writing
    // when the reader closes its end.
    let whole = ok(papersim(&args)).stdout.len();
    assert!(
        whole > 96 * 1024,
        "only {whole} bytes: the pipe never fills"
    );

    let mut child = common::command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 100];
    std::io::Read::read_exact(&mut stdout, &mut head).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("error"), "{err}");
    assert!(String::from_utf8_lossy(&head).contains("\"query\""));
}

/// `remove`, `compact` and `export` report in JSON with `--json`.
#[test]
fn remove_compact_and_export_speak_json() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&common::arxiv_sample(), &lib, &["--limit", "30"]);
    let id = common::result_ids(&json(&ok(papersim(&[
        "search",
        "--library",
        s(&lib),
        "graph",
        "-k",
        "1",
        "--json",
    ]))))
    .remove(0);

    let removed = json(&ok(papersim(&[
        "remove",
        "--library",
        s(&lib),
        "--json",
        &id,
    ])));
    assert_eq!(removed["removed"], 1, "{removed}");
    assert_eq!(removed["live"], 29, "{removed}");

    let compacted = json(&ok(papersim(&[
        "compact",
        "--library",
        s(&lib),
        "--force",
        "--json",
    ])));
    assert_eq!(compacted["compacted"], true, "{compacted}");
    assert_eq!(compacted["rows"], removed["live"], "{compacted}");

    let (npy, meta) = (tmp.path().join("out.npy"), tmp.path().join("out.jsonl"));
    let exported = json(&ok(papersim(&[
        "export",
        "--library",
        s(&lib),
        "--json",
        "--vectors",
        s(&npy),
        "--metadata",
        s(&meta),
    ])));
    assert_eq!(exported["rows"], 29, "{exported}");
    assert_eq!(exported["dim"], 384, "{exported}");
    assert!(npy.is_file() && meta.is_file(), "{exported}");
    assert_eq!(std::fs::read_to_string(&meta).unwrap().lines().count(), 29);
}

/// `embed -o out.jsonl` writes through a temporary file it renames into
/// place: nothing else is left in the folder, and a sibling `out.json` (a
/// name a careless temporary name could take) is untouched.
#[test]
fn embed_to_a_file_leaves_no_temporary_and_spares_its_siblings() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"a\", \"text\": \"Graph neural networks.\"}\n{\"id\": \"b\", \"text\": \"Protein folding.\"}\n",
    )
    .unwrap();
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let sibling = dir.join("out.json");
    std::fs::write(&sibling, "{\"keep\": true}\n").unwrap();
    let output = dir.join("out.jsonl");
    ok(papersim(&["embed", s(&input), "-o", s(&output)]));

    assert_eq!(
        std::fs::read_to_string(&sibling).unwrap(),
        "{\"keep\": true}\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out.json", "out.jsonl"]);
    let rows: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], "b");
    assert_eq!(rows[1]["embedding"].as_array().unwrap().len(), 384);
}

/// Queries are embedded the way the library was: `--precision int8` on an
/// f32 library is refused (exit 2) with what to do instead.
#[test]
fn int8_queries_on_an_f32_library_are_refused_with_what_to_do() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "6"]);
    let out = papersim(&[
        "search",
        "--library",
        s(&lib),
        "model-based reinforcement learning",
        "--precision",
        "int8",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--precision int8"), "{err}");
    assert!(err.contains("leave --precision out"), "{err}");
}

/// A library built in the repo records the default model by its hub id and
/// answers `papersim search` run from a folder outside the repo: through a
/// Hugging Face cache laid out as scripts/fetch-model.sh lays it out
/// (HF_HOME), and, with an empty cache, through the checkout's models/.
#[test]
fn a_library_built_in_the_repo_answers_from_any_folder() {
    let Some(model) = common::model_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "20"]);
    let info = common::info(&lib);
    assert_eq!(
        info["model"]["id"],
        "sentence-transformers/all-MiniLM-L6-v2"
    );

    let hf = tmp.path().join("hf");
    let repo = hf.join("hub/models--sentence-transformers--all-MiniLM-L6-v2");
    let snap = repo.join("snapshots/0123456789abcdef");
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ] {
        let to = snap.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(model.join(f), &to).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();

    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let empty_hf = tmp.path().join("empty-hf");
    let search_from_elsewhere = |home: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_papersim"))
            .args([
                "search",
                "--library",
                s(&lib),
                "mixture of experts",
                "-k",
                "3",
            ])
            .arg("--json")
            .current_dir(&elsewhere)
            .env("HF_HOME", home)
            .env_remove("PAPERSIM_LIBRARY")
            .output()
            .unwrap();
        let v = json(&ok(out));
        let top = &v["results"][0];
        assert!(top["score"].as_f64().unwrap() > 0.2, "{top}");
    };
    search_from_elsewhere(&hf);
    search_from_elsewhere(&empty_hf);

    // A library from before: the model recorded as the relative path it was
    // built with (same checksum rule, resealed as read_manifest checks it).
    let path = lib.join(papersim::store::MANIFEST);
    let mut m: papersim::store::Manifest =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m.model.id = "models/all-MiniLM-L6-v2".into();
    m.checksum = 0;
    m.checksum = crc32fast::hash(&serde_json::to_vec(&m).unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    search_from_elsewhere(&hf);
    search_from_elsewhere(&empty_hf);
}
