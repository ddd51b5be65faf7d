//! Sentence vectors: stored by a default build, left out with
//! `--no-sentences`, kept one list per row by `add`, `remove` and `compact`,
//! checked by `verify`, and what `similar` ranks and explains with.

mod common;

use std::path::Path;

use common::{build_env, build_json, build_ok, hf_daily, json, ok, papersim, s, stderr};
use papersim::corpus::locate_sentences;
use papersim::embed::{from_dir, relative_to, DeviceSpec, Embedder, Precision, Role};
use papersim::store::{quantize, Library};
use serde_json::Value;

const QUERY: &str = "objective-mismatch-in-model-based-reinforcement-learning";

fn manifest(lib: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(lib.join("manifest.json")).unwrap()).unwrap()
}

/// `similar QUERY` as JSON, with `extra` flags.
fn similar(lib: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["similar", QUERY, "--library", s(lib), "--json"];
    args.extend_from_slice(extra);
    json(&ok(papersim(&args)))
}

fn ids(v: &Value) -> Vec<String> {
    common::result_ids(v)
}

fn verify_ok(lib: &Path) {
    let o = papersim(&["verify", "--library", s(lib)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// Rows of the sentence vectors file, read from its header (offset 16).
fn sentence_rows(lib: &Path) -> u64 {
    let m = manifest(lib);
    let name = m["files"]["sentences"]["name"].as_str().unwrap();
    let b = std::fs::read(lib.join(name)).unwrap();
    u64::from_le_bytes(b[16..24].try_into().unwrap())
}

/// `add` of the Daily Papers sample to `lib`, with `extra` flags.
fn add_daily(lib: &Path, extra: &[&str]) {
    let corpus = hf_daily();
    let mut args = vec!["add", "--corpus", s(&corpus), "--library", s(lib)];
    args.extend_from_slice(extra);
    ok(papersim(&args));
}

#[test]
fn a_default_build_stores_sentence_vectors_and_similar_explains_with_them() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let report = build_json(&hf_daily(), &lib, &["--limit", "40"]);
    let papers = report["papers"].as_u64().unwrap();
    // A title and a few abstract sentences each.
    assert!(
        report["sentences"].as_u64().unwrap() > 2 * papers,
        "{report}"
    );
    assert_eq!(sentence_rows(&lib), papers);
    verify_ok(&lib);

    // similar explains every hit by its best sentence pair, with no model
    // loaded; the sentences mode ranks by the alignment too.
    let v = similar(&lib, &["-k", "5", "--mode", "sentences"]);
    assert_eq!(ids(&v).len(), 5);
    for hit in v["results"].as_array().unwrap() {
        let why = &hit["why"];
        assert_eq!(why["source"], format!("paper {QUERY}"), "{hit}");
        assert!(!why["paper_sentence"].as_str().unwrap().is_empty(), "{hit}");
        let sim = why["similarity"].as_f64().unwrap();
        assert!(sim > 0.0 && sim <= 1.01, "{hit}");
        assert!(hit["fused"].as_f64().unwrap() > 0.0, "{hit}");
    }
    let hybrid = similar(&lib, &["-k", "5"]);
    assert!(hybrid["results"][0]["why"].is_object(), "{hybrid}");
    assert_ne!(ids(&hybrid), Vec::<String>::new());
}

#[test]
fn no_sentences_builds_a_smaller_library_where_similar_ranks_by_hybrid() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (with, without) = (tmp.path().join("with"), tmp.path().join("without"));
    build_ok(&hf_daily(), &with, &["--limit", "40"]);
    let report = build_json(&hf_daily(), &without, &["--limit", "40", "--no-sentences"]);
    assert_eq!(report["sentences"], 0, "{report}");
    assert!(manifest(&without)["files"].get("sentences").is_none());
    verify_ok(&without);
    let size = |lib: &Path| {
        std::fs::read_dir(lib)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    };
    assert!(size(&without) < size(&with));
    // Same papers and vectors: without sentence vectors the sentences mode
    // is hybrid, and nothing is explained without the model.
    let fallback = similar(&without, &["-k", "10", "--mode", "sentences"]);
    let hybrid = similar(&with, &["-k", "10", "--mode", "hybrid"]);
    assert_eq!(ids(&fallback), ids(&hybrid));
    assert!(fallback["results"][0].get("why").is_none());
}

#[test]
fn add_remove_and_compact_keep_one_sentence_list_per_row() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "20"]);
    let before = sentence_rows(&lib);
    add_daily(&lib, &["--limit", "40"]);
    let m = manifest(&lib);
    let rows = m["papers"].as_u64().unwrap();
    assert!(rows > before);
    assert_eq!(sentence_rows(&lib), rows);
    verify_ok(&lib);
    let v = similar(&lib, &["-k", "3"]);
    assert!(v["results"][0]["why"].is_object(), "{v}");

    let gone = ids(&v)[0].clone();
    ok(papersim(&["remove", "--library", s(&lib), &gone]));
    assert!(!ids(&similar(&lib, &["-k", "10"])).contains(&gone));
    let m = manifest(&lib);
    let dead = m["dead"].as_array().map_or(0, Vec::len) as u64;
    assert!(dead >= 1, "{m}");
    ok(papersim(&["compact", "--library", s(&lib), "--force"]));
    assert_eq!(manifest(&lib)["papers"], rows - dead);
    assert_eq!(sentence_rows(&lib), rows - dead);
    verify_ok(&lib);
    let after = similar(&lib, &["-k", "3"]);
    assert!(!ids(&after).contains(&gone));
    assert!(after["results"][0]["why"].is_object(), "{after}");
}

#[test]
fn a_damaged_sentence_file_is_named_by_verify_and_by_similar() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "20"]);
    let name = manifest(&lib)["files"]["sentences"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = lib.join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let v = papersim(&["verify", "--library", s(&lib)]);
    assert_eq!(v.status.code(), Some(1));
    let said = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(said.contains(&name) && said.contains("FAIL"), "{said}");
    let o = papersim(&["similar", QUERY, "--library", s(&lib)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&name) && e.contains("corrupt"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_crash_after_writing_sentence_vectors_leaves_the_old_library() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "20"]);
    let good = similar(&lib, &["-k", "5"]);
    let o = build_env(
        &hf_daily(),
        &lib,
        &["--limit", "30"],
        &[("PAPERSIM_FAILPOINT", "after-sentences")],
    );
    assert!(!o.status.success(), "the failpoint did not fire");
    assert_eq!(manifest(&lib)["papers"], 20);
    assert_eq!(similar(&lib, &["-k", "5"]), good);
    verify_ok(&lib);
}

/// nDCG@10 of `mode` in `eval --json` rows.
fn ndcg10(rows: &Value, mode: &str) -> f64 {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["mode"] == mode)
        .and_then(|r| r["ndcg@10"].as_f64())
        .unwrap_or_else(|| panic!("no {mode} row in {rows}"))
}

/// The bar, end to end on CiteSeer's citation links: a default
/// build fits the re-ranking space, and the default paper-to-paper mode
/// beats dense by at least 0.03 nDCG@10. Then `remove`, `compact` and `add`
/// keep the space (int8 encoder, to keep the build short).
#[test]
fn on_citeseer_the_default_ranking_beats_dense_and_updates_keep_the_space() {
    if common::model_dir().is_none() {
        return;
    }
    let (Some(corpus), Some(qrels)) = (
        common::shared("data/citeseer/corpus.jsonl.gz"),
        common::shared("data/citeseer/paper-qrels.txt"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&corpus, &lib, &["--format", "beir", "--precision", "int8"]);
    let space = |lib: &Path| common::info(lib)["sentences"]["reranking_space"].clone();
    assert_eq!(space(&lib), true);
    let eval = |lib: &Path| {
        json(&ok(papersim(&[
            "eval",
            "--library",
            s(lib),
            "--paper-qrels",
            s(&qrels),
            "--modes",
            "dense,hybrid,sentences",
            "--json",
        ])))
    };
    let rows = eval(&lib);
    let (dense, hybrid, default) = (
        ndcg10(&rows, "dense"),
        ndcg10(&rows, "hybrid"),
        ndcg10(&rows, "sentences"),
    );
    eprintln!(
        "CiteSeer nDCG@10 (int8): dense {dense:.4}, hybrid {hybrid:.4}, sentences {default:.4}"
    );
    assert!(default >= dense + 0.03, "{rows}");
    assert!(default > hybrid, "{rows}");

    // Remove and compact: the rows left keep their norms in the same space.
    let gone = "labrou01standardizing";
    ok(papersim(&["remove", "--library", s(&lib), gone]));
    ok(papersim(&["compact", "--library", s(&lib), "--force"]));
    assert_eq!(space(&lib), true);
    verify_ok(&lib);
    let after = ndcg10(&eval(&lib), "sentences");
    assert!((after - default).abs() < 0.002, "{after} vs {default}");

    // Papers added later are normed in the library's space.
    add_daily(&lib, &["--limit", "5", "--precision", "int8"]);
    assert_eq!(space(&lib), true);
    verify_ok(&lib);
    let v = json(&ok(papersim(&[
        "similar",
        "100157",
        "--library",
        s(&lib),
        "-k",
        "3",
        "--json",
    ])));
    assert_eq!(ids(&v).len(), 3, "{v}");
    assert!(!ids(&v).contains(&gone.to_string()), "{v}");
    assert!(v["results"][0]["why"].is_object(), "{v}");
}

/// `v` as the sentences file stores it: 8-bit codes times their scale.
fn stored_form(v: &[f32]) -> Vec<f32> {
    let mut codes = Vec::new();
    let scale = quantize(v, &mut codes);
    codes.iter().map(|&c| f32::from(c) * scale).collect()
}

/// Every paper's sentence vectors as the library stores them, decoded.
fn stored_sentences(lib: &Path) -> Vec<Vec<f32>> {
    let lib = Library::open(lib).unwrap();
    let s = lib.sentences().unwrap().expect("sentence vectors");
    (0..s.rows()).map(|row| s.row_f32(row)).collect()
}

/// What `lib` stores for each paper is what one forward pass per paper
/// gives: each sentence pooled over its tokens in its paper's pass, those
/// past the model's window at the end left out, one the text does not hold
/// embedded alone, each made relative to the paper's vector. Returns how
/// many sentences were pooled, embedded alone and left out.
fn check_single_pass(lib: &Path, embedder: &Embedder) -> (usize, usize, usize) {
    let stored = stored_sentences(lib);
    let library = Library::open(lib).unwrap();
    let template = library.manifest().text_template.clone();
    let dim = embedder.info().dim;
    let (mut pooled, mut alone, mut left_out) = (0, 0, 0);
    for (row, stored) in stored.iter().enumerate() {
        let located = locate_sentences(&template, &library.paper(row).unwrap());
        let spans = located.spans.iter().flatten().cloned().collect();
        let pass = embedder
            .embed_with_spans(Role::Document, &[&located.text], &[spans], &|_| {})
            .unwrap();
        let paper = library.vectors().row(row);
        assert!(common::cosine(paper, &pass.vectors) > 0.9999, "row {row}");
        let mut from_pass = pass.spans[0].iter();
        let mut want: Vec<Option<Vec<f32>>> = located
            .spans
            .iter()
            .map(|span| {
                span.as_ref()
                    .and_then(|_| from_pass.next().cloned().flatten())
            })
            .collect();
        // The sentences the window cut at the end are left out.
        while want.len() > 1
            && want.last().is_some_and(Option::is_none)
            && located.spans[want.len() - 1].is_some()
        {
            want.pop();
            left_out += 1;
        }
        assert_eq!(stored.len(), want.len() * dim, "row {row}");
        for (j, v) in want.into_iter().enumerate() {
            let mut v = match v {
                Some(v) => {
                    pooled += 1;
                    v
                }
                None => {
                    alone += 1;
                    let text = located.sentences[j].as_str();
                    embedder
                        .embed_as(Role::Document, &[text], &|_| {})
                        .unwrap()
                        .0
                }
            };
            // A one-sentence paper's sentence is the paper.
            match located.sentences.len() {
                1 => v.clone_from(&pass.vectors),
                _ => relative_to(&mut v, &pass.vectors),
            }
            let got = &stored[j * dim..(j + 1) * dim];
            let cos = common::cosine(got, &stored_form(&v));
            assert!(cos >= 0.9999, "row {row} sentence {j}: cosine {cos}");
        }
    }
    (pooled, alone, left_out)
}

/// A build and `add` store what one forward pass per paper gives.
#[test]
fn stored_sentence_vectors_are_pooled_from_their_papers_own_pass() {
    let Some(model) = common::model_dir() else {
        return;
    };
    let files = from_dir(&model, "models/all-MiniLM-L6-v2").unwrap();
    let embedder = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = common::arxiv_sample();
    // arXiv abstracts often run past 256 tokens.
    let lib = tmp.path().join("lib");
    let report = build_json(&corpus, &lib, &["--limit", "20"]);
    assert_eq!(report["sentences_alone"], 0, "{report}");
    let args = ["add", "--corpus", s(&corpus), "--library", s(&lib)];
    ok(papersim(&[&args[..], &["--limit", "30"]].concat()));
    assert_eq!(stored_sentences(&lib).len(), 30);
    let (pooled, alone, left_out) = check_single_pass(&lib, &embedder);
    assert!(
        pooled > 100 && alone == 0 && left_out > 0,
        "{pooled} {alone} {left_out}"
    );

    // A template without the title: titles are embedded alone.
    let untitled = tmp.path().join("untitled");
    let report = build_json(
        &corpus,
        &untitled,
        &["--limit", "5", "--template", "{abstract}"],
    );
    assert_eq!(report["sentences_alone"], 5, "{report}");
    let (pooled, alone, _) = check_single_pass(&untitled, &embedder);
    assert!(pooled > 10 && alone == 5, "{pooled} {alone}");
}

/// A build killed after its first checkpoint resumes without embedding
/// those papers again and stores the same sentence vectors as a build
/// that was never interrupted.
#[test]
fn an_interrupted_build_resumes_with_the_same_sentence_vectors() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let corpus = common::arxiv_sample();
    let run = |lib: &Path, env: &[(&str, &str)]| {
        let flags = ["--limit", "24", "--checkpoint-every", "8", "--json"];
        build_env(&corpus, lib, &flags, env)
    };
    let lib = tmp.path().join("lib");
    let killed = run(&lib, &[("PAPERSIM_FAILPOINT", "after-checkpoint")]);
    assert!(!killed.status.success(), "the failpoint did not fire");
    assert!(lib.join("embed-cache.bin").exists());
    let resumed = json(&ok(run(&lib, &[])));
    assert_eq!(resumed["resumed"], 8, "{resumed}");
    assert_eq!(resumed["embed"]["docs"], 16, "{resumed}");

    let clean = tmp.path().join("clean");
    let whole = json(&ok(run(&clean, &[])));
    assert_eq!(resumed["sentences"], whole["sentences"]);
    let (a, b) = (stored_sentences(&lib), stored_sentences(&clean));
    assert_eq!(a.len(), b.len());
    for (row, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.len(), y.len(), "row {row}");
        let dim = 384;
        for (j, (u, v)) in x.chunks(dim).zip(y.chunks(dim)).enumerate() {
            let cos = common::cosine(u, v);
            assert!(cos >= 0.9999, "row {row} sentence {j}: cosine {cos}");
        }
    }
}

/// `--sentences separate` embeds each sentence alone, as papersim did
/// before contextual vectors, and `add` keeps a library's method: the
/// sentences it adds are embedded alone too.
#[test]
fn a_library_of_separately_embedded_sentences_keeps_its_method_through_add() {
    let Some(model) = common::model_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let report = build_json(
        &hf_daily(),
        &lib,
        &["--limit", "8", "--sentences", "separate"],
    );
    let sentences = report["sentences"].as_u64().unwrap();
    assert_eq!(
        report["sentences_alone"].as_u64().unwrap(),
        sentences,
        "{report}"
    );
    let method = |lib: &Path| common::info(lib)["sentences"]["method"].clone();
    assert_eq!(method(&lib), "separate");
    add_daily(&lib, &["--limit", "12"]);
    assert_eq!(method(&lib), "separate");
    verify_ok(&lib);

    let files = from_dir(&model, "models/all-MiniLM-L6-v2").unwrap();
    let embedder = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let library = Library::open(&lib).unwrap();
    let stored = stored_sentences(&lib);
    let dim = embedder.info().dim;
    for row in [0, 11] {
        let texts = papersim::corpus::paper_sentences(&library.paper(row).unwrap());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (alone, _) = embedder.embed_as(Role::Document, &refs, &|_| {}).unwrap();
        for (j, (got, want)) in stored[row].chunks(dim).zip(alone.chunks(dim)).enumerate() {
            let cos = common::cosine(got, &stored_form(want));
            assert!(cos >= 0.9999, "row {row} sentence {j}: cosine {cos}");
        }
    }
    // The two methods cannot be asked for at once with --no-sentences.
    let o = common::build(
        &hf_daily(),
        &tmp.path().join("x"),
        &["--no-sentences", "--sentences", "separate"],
    );
    assert!(!o.status.success());
}
