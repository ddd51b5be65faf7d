//! Sentence-transformers models other than all-MiniLM-L6-v2: tiny
//! random-weight fixtures (built by scripts/make-test-models.py, with
//! reference vectors from sentence-transformers itself and from a float64
//! numpy transcription) embedded to cosine >= 0.9999 on both CPU backends,
//! prompts applied per role as sentence-transformers applies them, hub ids
//! resolved from an offline Hugging Face cache, and architectures or modules
//! papersim cannot run refused by name.

mod common;

use std::path::{Path, PathBuf};

use common::{json, ok, papersim, papersim_env, s, stderr};
use papersim::embed::{from_dir, CandleBert, DeviceSpec, Embedder, Precision, Role};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn references(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let vec = r["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (r["text"].as_str().unwrap().to_string(), vec)
        })
        .collect()
}

/// One set of sentence-transformers' vectors from `dir/st-reference.json`
/// (see `st_references` in scripts/make-test-models.py for the sets).
fn st_set(dir: &Path, set: &str) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(dir.join("st-reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["sets"][set]
        .as_array()
        .unwrap_or_else(|| panic!("no set {set:?} in {}", dir.display()))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// Both CPU backends over the model in `dir` (edited or not).
fn backends(dir: &Path) -> Vec<(&'static str, Embedder)> {
    let files = from_dir(dir, "fixture").unwrap();
    let cpu = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let candle = Embedder::with_backend(
        &files,
        Box::new(CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap()),
    )
    .unwrap();
    vec![("cpu", cpu), ("candle", candle)]
}

/// Asserts `e` embeds the fixture texts as `role` to cosine >= 0.9999 of
/// sentence-transformers' `set`.
fn assert_matches_st(label: &str, e: &Embedder, role: Role, dir: &Path, set: &str) {
    let refs = references(dir);
    let texts: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    let want = st_set(dir, set);
    assert_eq!(want.len(), texts.len(), "{set}");
    let dim = e.info().dim;
    let (v, _) = e.embed_as(role, &texts, &|_| {}).unwrap();
    for (i, w) in want.iter().enumerate() {
        let c = cosine(&v[i * dim..(i + 1) * dim], w);
        assert!(
            c >= 0.9999,
            "{label} {role:?} vs sentence-transformers' {set:?}: cosine {c} on {:?}",
            texts[i]
        );
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

fn check(name: &str, dim: usize) {
    let dir = fixture(name);
    let files = from_dir(&dir, name).unwrap();
    let refs = references(&dir);
    let texts: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    let cpu = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let candle = Embedder::with_backend(
        &files,
        Box::new(CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap()),
    )
    .unwrap();
    let st = st_set(&dir, "plain");
    for (label, e) in [("cpu", &cpu), ("candle", &candle)] {
        assert_eq!(e.info().dim, dim, "{name} {label}");
        let (v, _) = e.embed(&texts, &|_| {}).unwrap();
        for (i, (text, want)) in refs.iter().enumerate() {
            let got = &v[i * dim..(i + 1) * dim];
            let c = cosine(got, want);
            assert!(c >= 0.9999, "{name} {label}: cosine {c} on {text:?}");
            let c = cosine(got, &st[i]);
            assert!(
                c >= 0.9999,
                "{name} {label}: cosine {c} to sentence-transformers on {text:?}"
            );
        }
    }
}

#[test]
fn bert_with_cls_pooling_and_a_dense_head_matches_its_reference() {
    check("bert-cls-dense", 16);
}

#[test]
fn roberta_positions_start_after_the_padding_id() {
    check("roberta-mean", 32);
}

/// A copy of the BERT fixture with `edit` applied to it.
fn variant(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let src = fixture("bert-cls-dense");
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["", "1_Pooling", "2_Dense"] {
        std::fs::create_dir_all(tmp.path().join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), tmp.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    edit(tmp.path());
    tmp
}

#[test]
fn an_unsupported_architecture_is_refused_by_name() {
    let tmp = variant(|d| {
        let p = d.join("config.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"bert\"", "\"gpt2\"")).unwrap();
    });
    let err = from_dir(tmp.path(), "gpt2-like").unwrap_err().to_string();
    assert!(
        err.contains("\"gpt2\"") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn an_unsupported_module_is_refused_by_name() {
    let tmp = variant(|d| {
        let p = d.join("modules.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            text.replace(
                "sentence_transformers.models.Dense",
                "sentence_transformers.models.LSTM",
            ),
        )
        .unwrap();
    });
    let err = from_dir(tmp.path(), "lstm").unwrap_err().to_string();
    assert!(
        err.contains("sentence_transformers.models.LSTM") && err.contains("modules.json"),
        "{err}"
    );
}

/// A copy of fixture `name` with its config_sentence_transformers.json
/// edited by `edit`.
fn with_st_config(name: &str, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture(name), tmp.path());
    let p = tmp.path().join("config_sentence_transformers.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&p, c.to_string()).unwrap();
    tmp
}

#[test]
fn prompts_are_applied_per_role_as_sentence_transformers_applies_them() {
    // prompts {"query": "query: ", "document": "passage: ",
    // "classification": "classify the topic: "}, default "classification".
    let dir = fixture("bert-prompts");
    for (label, mut e) in backends(&dir) {
        assert_matches_st(label, &e, Role::Query, &dir, "query");
        assert_matches_st(label, &e, Role::Document, &dir, "document");
        // default_prompt_name reaches role-less texts only (encode()).
        assert_matches_st(label, &e, Role::Plain, &dir, "plain");
        // --prompt query: encode(prompt_name="query") for every role.
        e.override_prompt("query").unwrap();
        assert_matches_st(label, &e, Role::Plain, &dir, "prompt:query");
        assert_matches_st(label, &e, Role::Document, &dir, "prompt:query");
        let err = e.override_prompt("title").unwrap_err().to_string();
        assert!(
            err.contains("\"title\"") && err.contains("classification, document, query"),
            "{err}"
        );
    }

    // Without default_prompt_name a role-less text gets no prompt; queries
    // and documents are unchanged.
    let tmp = with_st_config("bert-prompts", |c| c["default_prompt_name"] = Value::Null);
    for (label, e) in backends(tmp.path()) {
        assert_matches_st(label, &e, Role::Plain, &dir, "plain-without-default");
        assert_matches_st(label, &e, Role::Query, &dir, "query");
    }

    // e5's keys: documents take "passage" (papersim follows the documented
    // document, passage, corpus order; see src/embed/prompts.rs).
    let tmp = with_st_config("bert-prompts", |c| {
        c["prompts"] = serde_json::json!({"query": "query: ", "passage": "passage: "});
        c["default_prompt_name"] = Value::Null;
    });
    for (label, e) in backends(tmp.path()) {
        assert_matches_st(label, &e, Role::Document, &dir, "e5-document");
        assert_matches_st(label, &e, Role::Plain, &dir, "plain-without-default");
    }
}

#[test]
fn a_library_records_its_document_prompt_and_queries_get_the_query_prompt() {
    let model = fixture("bert-prompts");
    let refs = references(&model);
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("papers.jsonl");
    let lines: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            serde_json::json!({"id": format!("p{i}"), "title": format!("Paper {i}"), "abstract": text})
                .to_string()
        })
        .collect();
    std::fs::write(&corpus, lines[..6].join("\n") + "\n").unwrap();
    let lib = tmp.path().join("lib");
    ok(papersim(&[
        "build",
        "--corpus",
        s(&corpus),
        "--library",
        s(&lib),
        "--model",
        s(&model),
    ]));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(lib.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["model"]["document_prompt"],
        serde_json::json!({"name": "document", "text": "passage: "})
    );

    // A paper's own text as the query: embedded as a document ("passage: "),
    // it is that paper's vector; as a query ("query: ", the default) it is not.
    let query = format!("Paper 2. {}", refs[2].0);
    let search = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "--library",
            s(&lib),
            &query,
            "-k",
            "1",
            "--mode",
            "dense",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v = json(&ok(papersim(&args)));
        let hit = v["results"][0].clone();
        assert_eq!(hit["id"], "p2", "{v}");
        hit["score"].as_f64().unwrap()
    };
    let as_document = search(&["--prompt", "document"]);
    assert!(as_document > 0.9999, "{as_document}");
    let as_query = search(&[]);
    assert!(
        as_query < 0.999,
        "the query prompt was not applied: {as_query}"
    );

    // add keeps the recorded prompt; another one is refused by name.
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec!["add", "--corpus", s(&corpus), "--library", s(&lib)];
        args.extend_from_slice(extra);
        papersim(&args)
    };
    let refused = add(&["--prompt", "query"]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("--prompt \"query\"") && err.contains("\"document\""),
        "{err}"
    );
    ok(add(&[]));
    let query = format!("Paper 8. {}", refs[8].0);
    let v = json(&ok(papersim(&[
        "search",
        "--library",
        s(&lib),
        &query,
        "-k",
        "1",
        "--mode",
        "dense",
        "--json",
        "--prompt",
        "document",
    ])));
    assert_eq!(v["results"][0]["id"], "p8", "{v}");
    assert!(v["results"][0]["score"].as_f64().unwrap() > 0.9999, "{v}");

    let bad = papersim(&["search", "--library", s(&lib), "x", "--prompt", "title"]);
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(err.contains("classification, document, query"), "{err}");
}

#[test]
fn embed_prompt_gives_sentence_transformers_vectors() {
    let model = fixture("bert-prompts");
    let refs = references(&model);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("texts.jsonl");
    let lines: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| serde_json::json!({"id": i.to_string(), "text": text}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    for (extra, set) in [
        (vec![], "plain"),
        (vec!["--prompt", "query"], "prompt:query"),
    ] {
        let mut args = vec!["embed", s(&input), "--model", s(&model)];
        args.extend_from_slice(&extra);
        let out = ok(papersim(&args));
        let want = st_set(&model, set);
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), want.len());
        for (row, w) in rows.iter().zip(&want) {
            let got: Vec<f32> = row["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let c = cosine(&got, w);
            assert!(c >= 0.9999, "{set}: cosine {c}");
        }
    }
}

/// A Hugging Face cache ($HF_HOME/hub) holding the prompt fixture as
/// `acme/tiny-prompts`, in the layout huggingface_hub writes.
fn hf_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--acme--tiny-prompts");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    common::copy_dir(&fixture("bert-prompts"), &repo.join("snapshots").join(rev));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    home
}

#[test]
fn hub_ids_resolve_from_hf_home_offline_and_a_missing_one_names_the_cache() {
    let home = hf_home();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("texts.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"a\", \"text\": \"graph neural networks\"}\n",
    )
    .unwrap();
    let env = [
        ("HF_HOME", s(home.path())),
        ("HF_HUB_OFFLINE", "1"),
        // Nothing may be fetched: an endpoint that cannot answer.
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let out = ok(papersim_env(
        &["embed", s(&input), "--model", "acme/tiny-prompts"],
        &env,
    ));
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["embedding"].as_array().map(Vec::len), Some(32), "{row}");

    let cache = home.path().join("hub");
    let missing = |env: &[(&str, &str)]| {
        let out = papersim_env(&["embed", s(&input), "--model", "acme/absent"], env);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("acme/absent") && err.contains(s(&cache)),
            "the error names neither the model nor {}: {err}",
            cache.display()
        );
        err
    };
    let err = missing(&env);
    if cfg!(feature = "hub") {
        assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    }
    // Online, a hub build tries the (dead) endpoint and says so; a build
    // without `hub` says how to get one that downloads.
    let err = missing(
        &env[..1]
            .iter()
            .chain(&env[2..])
            .copied()
            .collect::<Vec<_>>(),
    );
    let why = if cfg!(feature = "hub") {
        "downloading it failed"
    } else {
        "rebuild with --features hub"
    };
    assert!(err.contains(why), "{err}");
}
