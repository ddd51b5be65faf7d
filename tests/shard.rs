//! Sharded builds and merge, through the real binary: a shard depends only
//! on the ids (not the file order, not the other shards), a killed shard
//! resumes, a merge of all shards is the single-process build, and a merge
//! with a missing, duplicated or foreign shard refuses and commits nothing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use papersim::store::Library;
use serde_json::Value;

/// The first `n` records of the bundled arXiv sample as a plain JSON-lines
/// file, reversed when asked (the same papers in another order).
fn corpus(dir: &Path, name: &str, n: usize, reversed: bool) -> PathBuf {
    let gz = std::fs::File::open(common::root().join("data/arxiv-sample.jsonl.gz")).unwrap();
    let mut lines: Vec<String> = BufReader::new(flate2::read::GzDecoder::new(gz))
        .lines()
        .take(n)
        .map(Result::unwrap)
        .collect();
    if reversed {
        lines.reverse();
    }
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `build --shard K/N --out DIR --json` with more flags and variables.
fn shard(corpus: &Path, spec: &str, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["build", "--corpus", s(corpus), "--out", s(out), "--json"];
    if !spec.is_empty() {
        args.extend(["--shard", spec]);
    }
    args.extend_from_slice(extra);
    common::papersim_env(&args, env)
}

fn merge(lib: &Path, shards: &[&Path]) -> Output {
    let mut args = vec!["merge", "--library", s(lib), "--json"];
    args.extend(shards.iter().map(|p| s(p)));
    common::papersim(&args)
}

/// Every live row's id and vector, in row order.
fn rows(lib: &Path) -> Vec<(String, Vec<f32>)> {
    let l = Library::open(lib).unwrap();
    (0..l.len())
        .filter(|&r| l.is_live(r))
        .map(|r| {
            (
                l.papers().id(r).unwrap().to_string(),
                l.vectors().row(r).to_vec(),
            )
        })
        .collect()
}

fn top10(lib: &Path, id: &str) -> Vec<String> {
    let o = common::ok(common::papersim(&[
        "similar",
        "--library",
        s(lib),
        id,
        "-k",
        "10",
        "--json",
    ]));
    common::json(&o)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of a shard folder, sorted, with their vectors.
fn shard_rows(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join("shard.json")).unwrap()).unwrap();
    let papers = std::fs::read(dir.join("papers.bin")).unwrap();
    let vectors = std::fs::read(dir.join("vectors.bin")).unwrap();
    let n = m["papers"].as_u64().unwrap() as usize;
    let dim = m["model"]["dim"].as_u64().unwrap() as usize;
    // papers.bin: magic, version, u64 rows, rows x u64 positions, JSON lines, crc.
    let text = std::str::from_utf8(&papers[20 + 8 * n..papers.len() - 4]).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // vectors.bin: magic, version, u32 dim, u64 rows, f32s, crc.
    let floats: Vec<f32> = vectors[24..vectors.len() - 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut out: Vec<(String, Vec<f32>)> = ids
        .into_iter()
        .zip(floats.chunks_exact(dim).map(<[f32]>::to_vec))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn shards_depend_only_on_ids_and_merge_to_the_single_build() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let forward = corpus(t, "forward.jsonl", 45, false);
    let backward = corpus(t, "backward.jsonl", 45, true);

    let dirs: Vec<PathBuf> = (0..3).map(|k| t.join(format!("s{k}"))).collect();
    let mut total = 0;
    for (k, d) in dirs.iter().enumerate() {
        let r = common::json(&common::ok(shard(&forward, &format!("{k}/3"), d, &[], &[])));
        assert_eq!(r["up_to_date"], false);
        assert_eq!(r["corpus_papers"], 45);
        total += r["papers"].as_u64().unwrap();
        assert!(!d.join("embed-cache.bin").exists());
    }
    assert_eq!(total, 45, "every paper is in exactly one shard");

    // A finished shard rerun is a no-op.
    let again = common::json(&common::ok(shard(&forward, "1/3", &dirs[1], &[], &[])));
    assert_eq!(again["up_to_date"], true, "{again}");
    assert_eq!(again["embed"]["docs"], 0);

    // The same shard of the corpus in the other order, as a Slurm array task
    // (no --shard: the array variables give it), holds the same papers.
    let other = t.join("other2");
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let r = common::json(&common::ok(shard(&backward, "", &other, &[], &slurm)));
    assert_eq!(r["shard"], "2/3");
    assert_eq!(shard_rows(&other), shard_rows(&dirs[2]));

    // Merged == one process over the same corpus: same rows in the same
    // order, equal vectors, same neighbours.
    let merged = t.join("merged");
    let m = common::json(&common::ok(merge(&merged, &[&dirs[2], &dirs[0], &dirs[1]])));
    assert_eq!(
        (m["created"].clone(), m["papers"].clone()),
        (true.into(), 45.into())
    );
    let single = t.join("single");
    common::ok(common::papersim(&[
        "build",
        "--corpus",
        s(&forward),
        "--library",
        s(&single),
        // Shards embed papers, not sentences: compare like with like.
        "--no-sentences",
    ]));
    let (a, b) = (rows(&merged), rows(&single));
    assert_eq!(
        a.iter().map(|r| &r.0).collect::<Vec<_>>(),
        b.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for ((id, x), (_, y)) in a.iter().zip(&b) {
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-6, "paper {id}: vectors differ by {d}");
    }
    for (id, _) in a.iter().step_by(9) {
        assert_eq!(top10(&merged, id), top10(&single, id), "neighbours of {id}");
    }

    // Merged into an existing library: only the papers it lacks are added.
    let part = t.join("part");
    common::ok(common::papersim(&[
        "build",
        "--corpus",
        s(&forward),
        "--library",
        s(&part),
        "--limit",
        "30",
        "--no-sentences",
    ]));
    let m = common::json(&common::ok(merge(&part, &[&dirs[0], &dirs[1], &dirs[2]])));
    assert_eq!(
        (
            m["created"].clone(),
            m["new"].clone(),
            m["unchanged"].clone()
        ),
        (false.into(), 15.into(), 30.into()),
        "{m}"
    );
    let mut got: Vec<String> = rows(&part).into_iter().map(|r| r.0).collect();
    let mut want: Vec<String> = b.into_iter().map(|r| r.0).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A library with sentence vectors cannot take rows without them: the
    // merge is refused by name and nothing is committed.
    let with = t.join("with-sentences");
    common::ok(common::papersim(&[
        "build",
        "--corpus",
        s(&forward),
        "--library",
        s(&with),
        "--limit",
        "30",
    ]));
    let before = std::fs::read(with.join("manifest.json")).unwrap();
    let o = merge(&with, &[&dirs[0], &dirs[1], &dirs[2]]);
    assert!(!o.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        common::stderr(&o)
    );
    assert!(said.contains("sentence vectors"), "{said}");
    assert_eq!(std::fs::read(with.join("manifest.json")).unwrap(), before);
}

#[test]
fn a_killed_shard_resumes_from_its_checkpoint() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path(), "c.jsonl", 20, false);
    let out = tmp.path().join("s0");
    let flags = ["--checkpoint-every", "8"];
    let killed = shard(
        &c,
        "0/1",
        &out,
        &flags,
        &[("PAPERSIM_FAILPOINT", "after-checkpoint")],
    );
    assert!(!killed.status.success());
    assert!(out.join("embed-cache.bin").exists());
    assert!(
        !out.join("shard.json").exists(),
        "a killed shard is not finished"
    );
    // Merging it is refused by name.
    let lib = tmp.path().join("lib");
    let e = merge(&lib, &[&out]);
    assert!(!e.status.success());
    assert!(
        common::stderr(&e).contains("not a finished shard"),
        "{}",
        common::stderr(&e)
    );

    let r = common::json(&common::ok(shard(&c, "0/1", &out, &flags, &[])));
    assert_eq!(r["resumed"], 8, "{r}");
    assert_eq!(r["embed"]["docs"], 12, "only the rest was embedded");
    assert_eq!(r["papers"], 20);
    assert!(out.join("shard.json").exists());
    assert!(!out.join("embed-cache.bin").exists());
    common::ok(merge(&lib, &[&out]));
    assert_eq!(rows(&lib).len(), 20);
}

#[test]
fn merge_refuses_missing_duplicate_foreign_and_damaged_shards_and_commits_nothing() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let c = corpus(t, "c.jsonl", 12, false);
    let (s0, s1) = (t.join("s0"), t.join("s1"));
    common::ok(shard(&c, "0/2", &s0, &[], &[]));
    common::ok(shard(&c, "1/2", &s1, &[], &[]));
    // Shard 1 of a build over fewer papers: another corpus.
    let foreign = t.join("foreign1");
    common::ok(shard(&c, "1/2", &foreign, &["--limit", "6"], &[]));
    // Shard 0 of three: another N.
    let three = t.join("three0");
    common::ok(shard(&c, "0/3", &three, &[], &[]));
    let copy = t.join("s0-copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["shard.json", "papers.bin", "vectors.bin"] {
        std::fs::copy(s0.join(f), copy.join(f)).unwrap();
    }
    let damaged = t.join("damaged1");
    std::fs::create_dir(&damaged).unwrap();
    for f in ["shard.json", "papers.bin", "vectors.bin"] {
        std::fs::copy(s1.join(f), damaged.join(f)).unwrap();
    }
    let mut v = std::fs::read(damaged.join("vectors.bin")).unwrap();
    v[100] ^= 1;
    std::fs::write(damaged.join("vectors.bin"), v).unwrap();
    // An existing library: a refused merge must leave it as it was.
    let existing = t.join("existing");
    common::ok(merge(&existing, &[&s0, &s1]));
    let before = std::fs::read(existing.join("manifest.json")).unwrap();

    let cases: [(&[&Path], &[&str]); 6] = [
        (&[&s0], &["shard 1 of 2 missing", "s0"]),
        (&[&s0, &s1, &copy], &["both hold shard 0/2", "s0-copy"]),
        (
            &[&s0, &foreign],
            &["foreign shard", "foreign1", "another corpus"],
        ),
        (
            &[&s0, &s1, &three],
            &["foreign shard", "three0", "one of 3 shards"],
        ),
        (
            &[&s0, &t.join("nothing")],
            &["not a finished shard", "nothing"],
        ),
        (&[&s0, &damaged], &["damaged shard", "damaged1/vectors.bin"]),
    ];
    for (shards, want) in cases {
        for lib in [t.join("new"), existing.clone()] {
            let o = merge(&lib, shards);
            let err = common::stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{shards:?}: {err}");
            for w in want {
                assert!(err.contains(w), "{shards:?}: {w:?} not in {err}");
            }
            assert!(!t.join("new").join("manifest.json").exists(), "{err}");
            assert_eq!(
                std::fs::read(existing.join("manifest.json")).unwrap(),
                before
            );
        }
    }

    // A folder of another shard is not overwritten by a build.
    let o = shard(&c, "1/2", &s0, &[], &[]);
    assert!(
        common::stderr(&o).contains("holds shard 0/2, not 1/2"),
        "{}",
        common::stderr(&o)
    );
}
