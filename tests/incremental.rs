//! `add`, `remove`, `compact` and `export` on the real binary: only new or
//! changed papers are embedded, removed and replaced papers never come back
//! from any query, and add-then-remove gives the original answers.

mod common;

use std::io::{BufRead, Write};
use std::path::Path;

use common::{build_ok, json, ok, papersim, result_ids, s};
use serde_json::Value;

/// The first `n` papers of the bundled arXiv sample, as JSON values.
fn sample(n: usize) -> Vec<Value> {
    let f = std::fs::File::open(common::arxiv_sample()).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .take(n)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

fn write_corpus(path: &Path, papers: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for p in papers {
        writeln!(f, "{p}").unwrap();
    }
}

/// Ids returned by a query, in order.
fn ids(lib: &Path, args: &[&str]) -> Vec<String> {
    // args[0] is the subcommand; the common flags follow it.
    let mut all = vec![args[0], "--library", s(lib), "--json", "-k", "10"];
    all.extend_from_slice(&args[1..]);
    let out = papersim(&all);
    assert!(
        out.status.code().unwrap_or(2) < 2,
        "{}",
        common::stderr(&out)
    );
    result_ids(&json(&out))
}

/// A battery of queries in `modes`, exact and HNSW.
fn answers_in(lib: &Path, probe: &str, modes: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for &mode in modes {
        for strategy in ["--exact", "--ann"] {
            out.push(ids(
                lib,
                &[
                    "search",
                    "neural networks for language",
                    "--mode",
                    mode,
                    strategy,
                ],
            ));
            out.push(ids(lib, &["similar", probe, "--mode", mode, strategy]));
        }
    }
    out
}

fn answers(lib: &Path, probe: &str) -> Vec<Vec<String>> {
    answers_in(lib, probe, &["dense", "keyword", "hybrid", "sentences"])
}

#[test]
fn add_embeds_only_new_and_changed_papers_and_replaced_versions_never_return() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let papers = sample(60);
    let first = tmp.path().join("first.jsonl");
    write_corpus(&first, &papers[..40]);
    build_ok(&first, &lib, &[]);

    // 20 new papers, one with a new title (re-embedded), one with new
    // authors only (its vector is reused), 38 unchanged.
    let mut next = papers.clone();
    next[3]["title"] = "A completely different title about protein folding".into();
    next[5]["authors"] = serde_json::json!(["Someone Else"]);
    let second = tmp.path().join("second.jsonl");
    write_corpus(&second, &next);
    let r = json(&ok(papersim(&[
        "add",
        "--corpus",
        s(&second),
        "--library",
        s(&lib),
        "--json",
    ])));
    assert_eq!(r["new"], 20, "{r}");
    assert_eq!(r["replaced"], 2, "{r}");
    assert_eq!(r["vectors_reused"], 1, "{r}");
    assert_eq!(r["unchanged"], 38, "{r}");
    assert_eq!(r["embed"]["docs"], 21, "only new texts are embedded: {r}");
    assert_eq!(r["live"], 60, "{r}");

    let info = common::info(&lib);
    assert_eq!(info["papers"], 62, "rows, dead included");
    assert_eq!(info["live"], 60);

    // The replaced paper comes back in its new version only, exactly once.
    let changed = next[3]["id"].as_str().unwrap();
    let hits = ids(
        &lib,
        &["search", "protein folding", "--exact", "--mode", "dense"],
    );
    assert_eq!(hits.iter().filter(|h| *h == changed).count(), 1, "{hits:?}");
    for a in answers(&lib, next[7]["id"].as_str().unwrap()) {
        let mut seen = a.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), a.len(), "an id twice: {a:?}");
    }

    // Adding the same corpus again changes nothing and commits nothing.
    let before = std::fs::read(lib.join("manifest.json")).unwrap();
    let again = json(&ok(papersim(&[
        "add",
        "--corpus",
        s(&second),
        "--library",
        s(&lib),
        "--json",
    ])));
    assert_eq!(again["unchanged"], 60, "{again}");
    assert_eq!(again["embed"]["docs"], 0);
    assert_eq!(std::fs::read(lib.join("manifest.json")).unwrap(), before);
}

#[test]
fn add_then_remove_gives_the_original_answers_and_compact_restores_them_all() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let papers = sample(50);
    let first = tmp.path().join("first.jsonl");
    write_corpus(&first, &papers[..35]);
    build_ok(&first, &lib, &[]);
    let probe = papers[2]["id"].as_str().unwrap();
    let original = answers(&lib, probe);

    let all = tmp.path().join("all.jsonl");
    write_corpus(&all, &papers);
    ok(papersim(&[
        "add",
        "--corpus",
        s(&all),
        "--library",
        s(&lib),
    ]));
    let added: Vec<&str> = papers[35..]
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_ne!(answers(&lib, probe), original, "the added papers show up");

    let mut args = vec!["remove", "--library", s(&lib)];
    args.extend(&added);
    ok(papersim(&args));
    for a in &answers(&lib, probe) {
        assert!(a.iter().all(|id| !added.contains(&id.as_str())), "{a:?}");
    }
    // Dense answers are the original ones at once. BM25's statistics
    // (document frequencies, mean length) still count the removed papers
    // until `compact`, so keyword scores may differ slightly until then.
    let dense = |a: &[Vec<String>]| a[..4].to_vec();
    assert_eq!(answers_in(&lib, probe, &["dense"]), dense(&original));

    // A removed id is unknown to `similar`; removing it again is an error.
    let gone = papersim(&["similar", "--library", s(&lib), added[0]]);
    assert_eq!(gone.status.code(), Some(2));
    let twice = papersim(&["remove", "--library", s(&lib), added[0]]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(common::stderr(&twice).contains(added[0]));

    let info = common::info(&lib);
    assert!((info["dead_fraction"].as_f64().unwrap() - 15.0 / 50.0).abs() < 1e-9);
    let out = ok(papersim(&["compact", "--library", s(&lib)]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted"));
    let info = common::info(&lib);
    assert_eq!(info["papers"], 35);
    assert_eq!(info["dead_fraction"], 0.0);
    assert_eq!(answers(&lib, probe), original);
}

#[test]
fn export_writes_the_live_vectors_as_npy_and_papers_in_the_same_order() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let papers = sample(12);
    let corpus = tmp.path().join("c.jsonl");
    write_corpus(&corpus, &papers);
    build_ok(&corpus, &lib, &[]);
    let removed = papers[4]["id"].as_str().unwrap();
    ok(papersim(&["remove", "--library", s(&lib), removed]));
    let npy = tmp.path().join("v.npy");
    let meta = tmp.path().join("m.jsonl");
    ok(papersim(&[
        "export",
        "--library",
        s(&lib),
        "--vectors",
        s(&npy),
        "--metadata",
        s(&meta),
    ]));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'shape': (11, 384)"), "{header}");
    let data: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(data.len(), 11 * 384);
    let lines: Vec<Value> = std::fs::read_to_string(&meta)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);
    assert!(lines.iter().all(|p| p["id"] != removed));
    // Row i is the vector of line i: each row's nearest paper is itself.
    for (i, p) in lines.iter().enumerate() {
        let row = &data[i * 384..(i + 1) * 384];
        let norm: f32 = row.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let best = (0..11)
            .max_by(|&a, &b| {
                let d = |j: usize| -> f32 {
                    data[j * 384..(j + 1) * 384]
                        .iter()
                        .zip(row)
                        .map(|(x, y)| x * y)
                        .sum()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        assert_eq!(best, i, "{}", p["id"]);
    }
    // Line i's vector is the library's vector of that paper: `similar` with
    // the exported order agrees on the nearest neighbour.
    let first = lines[0]["id"].as_str().unwrap();
    let top = ids(&lib, &["similar", first, "--mode", "dense", "--exact"]);
    let second_best = (1..11)
        .max_by(|&a, &b| {
            let d = |j: usize| -> f32 {
                data[j * 384..(j + 1) * 384]
                    .iter()
                    .zip(&data[..384])
                    .map(|(x, y)| x * y)
                    .sum()
            };
            d(a).total_cmp(&d(b))
        })
        .unwrap();
    assert_eq!(top[0], lines[second_best]["id"].as_str().unwrap());
}

/// Format version 1 libraries (an hnsw_rs graph dump, never released) are
/// not read: every command that opens one says so, and what to do.
#[test]
fn a_format_1_library_is_refused_with_how_to_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(
        lib.join("manifest.json"),
        r#"{"format": "papersim-library", "format_version": 1, "generation": 1}"#,
    )
    .unwrap();
    let want = format!(
        "{}: library format version 1 is no longer read; rebuild it with papersim build",
        lib.join("manifest.json").display()
    );
    for args in [
        &["info", "--library", s(&lib)][..],
        &["verify", "--library", s(&lib)],
        &[
            "search",
            "--library",
            s(&lib),
            "--mode",
            "keyword",
            "graphs",
        ],
    ] {
        let out = papersim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = common::stderr(&out);
        assert!(err.contains(&want), "{args:?}: {err}");
    }
    let e = papersim::store::Library::open(&lib).err().unwrap();
    assert_eq!(e.to_string(), want);
}
