//! `related`, modes, filters and output formats, through the real binary on
//! the bundled Hugging Face Daily Papers sample (61 papers).

mod common;

use common::{json, ok, papersim, result_ids as ids};

use serde_json::Value;

/// One library for the whole file (building it embeds 61 papers).
fn library() -> Option<&'static str> {
    common::hf_daily_library()?.to_str()
}

fn papers(lib: &str) -> Vec<Value> {
    let text = std::fs::read_dir(lib)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ids are title slugs cut at 80 characters; look them up by title.
fn id_of(lib: &str, title: &str) -> String {
    papers(lib)
        .iter()
        .find(|p| p["title"] == title)
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("no paper titled {title:?}"))
        .to_string()
}

const MBRL: &str = "objective-mismatch-in-model-based-reinforcement-learning";
const VALUE_GRADIENT: &str = "value-gradient-weighted-model-based-reinforcement-learning";

#[test]
fn a_draft_made_of_two_abstracts_finds_both_papers_and_their_neighbours_with_reasons() {
    let Some(lib) = library() else { return };
    let all = papers(lib);
    let abs = |id: &str| {
        all.iter()
            .find(|p| p["id"] == id)
            .map(|p| p["abstract"].as_str().unwrap().to_string())
            .unwrap()
    };
    let second = id_of(
        lib,
        "HarmoniCa: Harmonizing Training and Inference for Better Feature Cache in Diffusion Transformer Acceleration",
    );
    let second = second.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let draft = tmp.path().join("draft.txt");
    std::fs::write(&draft, format!("{} {}", abs(MBRL), abs(second))).unwrap();

    let v = json(&ok(papersim(&[
        "related",
        "--library",
        lib,
        "--abstract",
        draft.to_str().unwrap(),
        "-k",
        "8",
        "--json",
    ])));
    let got = ids(&v);
    assert_eq!(got.len(), 8);
    assert!(got.contains(&MBRL.to_string()), "{got:?}");
    assert!(got.contains(&second.to_string()), "{got:?}");
    assert!(got.contains(&VALUE_GRADIENT.to_string()), "{got:?}");
    for r in v["results"].as_array().unwrap() {
        let why = &r["why"];
        assert_eq!(why["source"], "draft");
        assert!(!why["source_sentence"].as_str().unwrap().is_empty());
        assert!(!why["paper_sentence"].as_str().unwrap().is_empty());
        if r["id"] == MBRL {
            // Its own sentences are in the draft: one of them is the pair.
            // (Each is read in its own text, the draft or the paper, so
            // the two vectors are close, not equal.)
            assert_eq!(why["source_sentence"], why["paper_sentence"], "{why}");
            assert!(why["similarity"].as_f64().unwrap() > 0.5, "{why}");
            assert!(!why["shared_terms"].as_array().unwrap().is_empty(), "{why}");
        }
    }
}

#[test]
fn seeds_negatives_and_exclusions_never_appear() {
    let Some(lib) = library() else { return };
    let negative = id_of(
        lib,
        "The Alignment Ceiling: Objective Mismatch in Reinforcement Learning from Human Feedback",
    );
    let v = json(&ok(papersim(&[
        "related",
        "--library",
        lib,
        "--seed",
        MBRL,
        "--seed",
        VALUE_GRADIENT,
        "--negative",
        &negative,
        "--exclude",
        "mapss-manifold-based-assessment-of-perceptual-source-separation",
        "-k",
        "20",
        "--diversity",
        "0.3",
        "--json",
        "--no-why",
    ])));
    let got = ids(&v);
    assert_eq!(got.len(), 20);
    for banned in [
        MBRL,
        VALUE_GRADIENT,
        negative.as_str(),
        "mapss-manifold-based-assessment-of-perceptual-source-separation",
    ] {
        assert!(!got.contains(&banned.to_string()), "{banned} in {got:?}");
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len());
}

#[test]
fn filters_return_exactly_k_when_k_match_in_every_mode() {
    let Some(lib) = library() else { return };
    let all = papers(lib);
    let since_2024 = all
        .iter()
        .filter(|p| p["date"].as_str().is_some_and(|d| d >= "2024"))
        .count();
    assert!(
        since_2024 >= 10,
        "fixture has {since_2024} papers from 2024 on"
    );
    for mode in ["dense", "keyword", "hybrid", "sentences"] {
        for strategy in ["--exact", "--ann"] {
            let v = json(&ok(papersim(&[
                "similar",
                "--library",
                lib,
                MBRL,
                "--since",
                "2024",
                "-k",
                "10",
                "--mode",
                mode,
                strategy,
                "--json",
            ])));
            let results = v["results"].as_array().unwrap();
            // Keyword ranking returns only papers sharing a term; these
            // abstracts share "learning", "model" and more, so all qualify.
            assert_eq!(results.len(), 10, "{mode} {strategy}");
            assert!(results
                .iter()
                .all(|r| r["date"].as_str().is_some_and(|d| d >= "2024")));
        }
    }
    // Fewer matches than k: all of them, no more.
    let v = json(&ok(papersim(&[
        "search",
        "--library",
        lib,
        "reinforcement learning",
        "--until",
        "2020-12",
        "-k",
        "50",
        "--json",
    ])));
    let expected = all
        .iter()
        .filter(|p| p["date"].as_str().is_some_and(|d| d <= "2020-12-31"))
        .count();
    assert_eq!(v["results"].as_array().unwrap().len(), expected);
}

#[test]
fn keyword_mode_needs_no_model() {
    let Some(lib) = library() else { return };
    let kw = json(&ok(papersim(&[
        "search",
        "--library",
        lib,
        "objective mismatch",
        "--mode",
        "keyword",
        "--model",
        "/nonexistent/model",
        "--json",
    ])));
    let got = ids(&kw);
    assert!(got.len() >= 3, "{got:?}");
    assert_eq!(got[0], MBRL);
}

#[test]
fn bibtex_parses_and_markdown_and_csv_are_well_formed() {
    let Some(lib) = library() else { return };
    let out = ok(papersim(&[
        "similar",
        "--library",
        lib,
        MBRL,
        "-k",
        "12",
        "--format",
        "bibtex",
    ]));
    let text = String::from_utf8(out.stdout).unwrap();
    let bib = biblatex::Bibliography::parse(&text)
        .unwrap_or_else(|e| panic!("BibTeX does not parse: {e:?}\n{text}"));
    assert_eq!(bib.len(), 12);
    let mut keys: Vec<&str> = bib.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 12);
    for e in bib.iter() {
        assert!(e.title().is_ok(), "{} has no title", e.key);
    }
    // Stable: the same query gives the same keys.
    let again = ok(papersim(&[
        "similar",
        "--library",
        lib,
        MBRL,
        "-k",
        "12",
        "--format",
        "bibtex",
    ]));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);

    let md = String::from_utf8(
        ok(papersim(&[
            "related",
            "--library",
            lib,
            "--seed",
            MBRL,
            "-k",
            "3",
            "--format",
            "markdown",
        ]))
        .stdout,
    )
    .unwrap();
    assert!(md.starts_with("1. "), "{md}");
    assert!(md.contains("Why:"), "{md}");

    let csv = String::from_utf8(
        ok(papersim(&[
            "similar",
            "--library",
            lib,
            MBRL,
            "-k",
            "4",
            "--format",
            "csv",
        ]))
        .stdout,
    )
    .unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(r.headers().unwrap().get(1), Some("id"));
    assert_eq!(r.records().count(), 4);
}

#[test]
fn eval_scores_paper_to_paper_judgements_and_writes_a_trec_run() {
    let Some(lib) = library() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let qrels = tmp.path().join("qrels.txt");
    std::fs::write(&qrels, format!("{MBRL} {VALUE_GRADIENT} 1\n")).unwrap();
    let run = tmp.path().join("run.trec");
    let v = json(&ok(papersim(&[
        "eval",
        "--library",
        lib,
        "--paper-qrels",
        qrels.to_str().unwrap(),
        "--modes",
        "dense,keyword,hybrid",
        "--run",
        run.to_str().unwrap(),
        "--json",
    ])));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let dense = rows.iter().find(|r| r["mode"] == "dense").unwrap();
    // The value-gradient paper is the query's nearest neighbour: perfect scores.
    assert_eq!(dense["queries"], 1);
    assert_eq!(dense["ndcg@10"], 1.0);
    assert_eq!(dense["mrr@10"], 1.0);
    let run = std::fs::read_to_string(run).unwrap();
    let first: Vec<&str> = run.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(first.len(), 6, "{first:?}");
    assert_eq!(first[0], MBRL);
    assert_eq!(first[1], "Q0");
    assert_eq!(first[3], "1");
    assert!(
        !run.contains(&format!("{MBRL} Q0 {MBRL} ")),
        "query paper in its own run"
    );
    assert_eq!(run.lines().count(), 3 * 60);
}

#[test]
fn eval_related_scores_lists_built_from_a_papers_abstract_and_a_seed() {
    let Some(lib) = library() else { return };
    let other = papers(lib)
        .iter()
        .filter_map(|p| p["id"].as_str())
        .find(|id| *id != MBRL && *id != VALUE_GRADIENT)
        .unwrap()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let qrels = tmp.path().join("qrels.txt");
    std::fs::write(
        &qrels,
        format!("{MBRL} {VALUE_GRADIENT} 1\n{MBRL} {other} 1\n"),
    )
    .unwrap();
    let v = json(&ok(papersim(&[
        "eval",
        "--library",
        lib,
        "--paper-qrels",
        qrels.to_str().unwrap(),
        "--modes",
        "dense",
        "--related",
        "--json",
    ])));
    let rows = v.as_array().unwrap();
    let related: Vec<&Value> = rows.iter().filter(|r| r["set"] == "related").collect();
    // No seed: RRF only (one positive has no centroid to speak of); one
    // seed: RRF and the centroid.
    let settings: Vec<(String, u64)> = related
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["seeds"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        settings,
        vec![
            ("rrf".to_string(), 0),
            ("rrf".to_string(), 1),
            ("centroid".to_string(), 1)
        ]
    );
    for r in &related {
        assert_eq!(r["queries"], 1, "{r}");
        let (r10, r50) = (
            r["recall@10"].as_f64().unwrap(),
            r["recall@50"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&r10) && r10 <= r50, "{r}");
    }
    // Without a seed the value-gradient paper (the query's nearest
    // neighbour) is among the top 10.
    assert!(related[0]["recall@10"].as_f64().unwrap() >= 0.5);
}
