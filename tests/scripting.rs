//! The binary as scripts use it: `--json` results and errors, exit codes,
//! `PAPERSIM_LIBRARY`, completions, the man page, and BibTeX output that a
//! real parser reads back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real binary from the project root, without any
/// `PAPERSIM_LIBRARY` of the caller's environment unless `env` sets one.
fn run(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_papersim"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("PAPERSIM_LIBRARY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run papersim")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Asserts `o` is a `--json` error of `kind` (exit status 2, the object on
/// standard output, the message for people on standard error) and returns
/// its `error` object.
fn json_error(o: &Output, kind: &str) -> serde_json::Value {
    assert_eq!(code(o), 2, "{}{}", stdout(o), stderr(o));
    let v = json(o);
    let e = v["error"].clone();
    assert_eq!(e["kind"], kind, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    for key in ["file", "line"] {
        assert!(e.get(key).is_some(), "{key} missing: {v}");
    }
    assert!(stderr(o).contains("error:"), "{}", stderr(o));
    e
}

/// The real model, or None (a printed skip) when it is not installed;
/// under CI=true a missing model is a failure.
fn model_dir() -> Option<PathBuf> {
    let dir = root().join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "model missing at {} and CI=true",
        dir.display()
    );
    eprintln!(
        "SKIPPED: model not found at {} (run scripts/fetch-model.sh)",
        dir.display()
    );
    None
}

/// Papers whose titles and authors hold LaTeX, braces, math and non-ASCII
/// names, one of them with an old-style arXiv id.
const CORPUS: &str = r#"{"id": "2101.00001", "title": "Attention for {GPU}s with $\\alpha$-entmax & 100% sparsity", "abstract": "We make sparse attention fast on graphics processors with alpha-entmax.", "authors": ["Bal\\'azs K\\'egl", "Zoë Ñúñez-Łukasz"], "categories": ["cs.LG"], "update_date": "2021-01-04"}
{"id": "math.CO/0406001", "title": "Counting perfect matchings in planar graphs", "abstract": "We count perfect matchings of planar graphs with Pfaffian orientations.", "authors": ["Jörg Müller"], "categories": ["math.CO"], "update_date": "2004-06-01"}
{"id": "2101.00002", "title": "Sparse attention on graphics processors", "abstract": "Sparse attention kernels for transformers run fast on graphics processors.", "authors": ["Ada Lovelace", "李 小龍"], "categories": ["cs.LG"], "update_date": "2021-01-05"}
{"id": "2101.00003", "title": "Sparse attention on graphics processors", "abstract": "Another paper about sparse attention kernels for transformers on processors.", "authors": ["Ada Lovelace"], "categories": ["cs.CL"], "update_date": "2021-02-01"}
"#;

/// A library built once from [`CORPUS`] for every test that needs one.
fn library() -> Option<&'static Path> {
    static LIB: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    LIB.get_or_init(|| {
        let model = model_dir()?;
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("papers.jsonl");
        std::fs::write(&corpus, CORPUS).unwrap();
        let lib = dir.path().join("lib");
        let o = run(
            &[
                "build",
                "--corpus",
                corpus.to_str().unwrap(),
                "--library",
                lib.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
                "--json",
            ],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(json(&o)["papers"], 4, "{}", stdout(&o));
        Some((dir, lib))
    })
    .as_ref()
    .map(|(_, lib)| lib.as_path())
}

#[test]
fn missing_library_is_a_json_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["info", "--library", m, "--json"],
        vec!["similar", "--library", m, "2101.00001", "--json"],
        vec!["remove", "--library", m, "2101.00001", "--json"],
        vec!["compact", "--library", m, "--json"],
        vec!["verify", "--library", m, "--json"],
    ] {
        let o = run(&args, &[]);
        let e = json_error(&o, "store.not_a_library");
        assert_eq!(e["file"], m, "{args:?}");
        assert!(e["line"].is_null());
    }
    // Without --json: the same exit status, nothing on standard output.
    let o = run(&["info", "--library", m], &[]);
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn command_line_errors_are_usage_errors() {
    let o = run(&["search", "--json", "--no-such-flag", "q"], &[]);
    let e = json_error(&o, "usage");
    assert!(
        e["message"].as_str().unwrap().contains("--no-such-flag"),
        "{e}"
    );
    // No --library and no PAPERSIM_LIBRARY.
    let o = run(&["info", "--json"], &[]);
    json_error(&o, "usage");
    // Help is not an error.
    let o = run(&["info", "--help"], &[]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("PAPERSIM_LIBRARY"), "{}", stdout(&o));
}

#[test]
fn papersim_library_is_the_default_library() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("from-env");
    let o = run(&["info", "--json"], &[("PAPERSIM_LIBRARY", &from_env)]);
    let e = json_error(&o, "store.not_a_library");
    assert_eq!(e["file"], from_env.to_str().unwrap());
    // --library wins over the environment.
    let flag = dir.path().join("from-flag");
    let o = run(
        &["info", "--json", "--library", flag.to_str().unwrap()],
        &[("PAPERSIM_LIBRARY", &from_env)],
    );
    assert_eq!(
        json_error(&o, "store.not_a_library")["file"],
        flag.to_str().unwrap()
    );
    let Some(lib) = library() else { return };
    let o = run(&["info", "--json"], &[("PAPERSIM_LIBRARY", lib)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(json(&o).get("error").is_none());
}

#[test]
fn bad_corpus_line_is_a_json_error_with_file_and_line() {
    let Some(model) = model_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bad.jsonl");
    let good = CORPUS.lines().next().unwrap();
    std::fs::write(&corpus, format!("{good}\n{{\"id\": \"x\", \"title\": \n")).unwrap();
    let lib = dir.path().join("lib");
    let o = run(
        &[
            "build",
            "--strict",
            "--json",
            "--corpus",
            corpus.to_str().unwrap(),
            "--library",
            lib.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
        &[],
    );
    let e = json_error(&o, "corpus.bad_record");
    assert_eq!(e["file"], corpus.to_str().unwrap());
    assert_eq!(e["line"], 2);
}

#[test]
fn exit_codes_and_unknown_paper() {
    let Some(lib) = library() else { return };
    let l = lib.to_str().unwrap();
    let o = run(&["similar", "--library", l, "2101.00002", "--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!json(&o)["results"].as_array().unwrap().is_empty());
    // Found nothing: 1, and still a JSON result.
    let o = run(
        &[
            "similar",
            "--library",
            l,
            "2101.00002",
            "--since",
            "2999",
            "--json",
        ],
        &[],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(json(&o)["results"], serde_json::json!([]));
    // An impossible date is a usage error naming it, not an empty result.
    for bad in ["2026-13", "2026-02-30"] {
        let o = run(
            &["similar", "--library", l, "2101.00002", "--since", bad],
            &[],
        );
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains(bad), "{}", stderr(&o));
    }
    let o = run(&["similar", "--library", l, "no-such-paper", "--json"], &[]);
    let e = json_error(&o, "query.unknown_paper");
    assert!(e["file"].is_null() && e["line"].is_null(), "{e}");
    let o = run(&["remove", "--library", l, "no-such-paper", "--json"], &[]);
    json_error(&o, "pipeline.unknown_ids");
}

#[test]
fn bibtex_output_round_trips_through_biblatex() {
    let Some(lib) = library() else { return };
    let o = run(
        &[
            "search",
            "--library",
            lib.to_str().unwrap(),
            "sparse attention and perfect matchings",
            "-k",
            "10",
            "--format",
            "bibtex",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let bib = biblatex::Bibliography::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(bib.len(), 4, "{text}");
    let keys: std::collections::HashSet<&str> = bib.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys.len(), 4, "{text}");
    for k in &keys {
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{k}"
        );
    }
    use biblatex::ChunksExt;
    let field = |e: &biblatex::Entry, f: &str| e.get(f).map(|c| c.format_verbatim());
    let by_eprint = |id: &str| {
        bib.iter()
            .find(|e| field(e, "eprint").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no eprint {id}:\n{text}"))
    };
    let gpu = by_eprint("2101.00001");
    assert_eq!(
        field(gpu, "title").as_deref(),
        Some("Attention for GPUs with $\\alpha$-entmax & 100% sparsity"),
        "{text}"
    );
    let names: Vec<String> = gpu
        .author()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p.given_name, p.name))
        .collect();
    assert_eq!(names, ["Balázs Kégl", "Zoë Ñúñez-Łukasz"], "{text}");
    assert_eq!(field(gpu, "year").as_deref(), Some("2021"));
    let old = by_eprint("math/0406001");
    assert_eq!(
        field(old, "primaryclass").as_deref(),
        Some("math.CO"),
        "{text}"
    );
    assert_eq!(field(old, "year").as_deref(), Some("2004"));
    assert_eq!(old.author().unwrap()[0].name, "Müller");
    // The two papers with the same author, year and title get distinct keys.
    assert!(
        keys.contains("lovelace2021sparse") && keys.contains("lovelace2021sparsea"),
        "{keys:?}"
    );
}

#[test]
fn every_command_takes_json() {
    let o = run(&["--help"], &[]);
    let help = stdout(&o);
    let mut commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| !matches!(*c, "help" | "completions" | "man" | "bench"))
        .collect();
    assert!(
        commands.contains(&"embed") && (commands.contains(&"serve") || !cfg!(feature = "serve")),
        "{help}"
    );
    commands.extend(["bench embed", "bench index"]);
    for c in commands {
        let mut args: Vec<&str> = c.split(' ').collect();
        args.push("--help");
        let o = run(&args, &[]);
        assert!(
            stdout(&o).contains("--json"),
            "{c} has no --json:\n{}",
            stdout(&o)
        );
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell], &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains("papersim"), "{shell}");
        assert!(
            script.contains("similar") && script.contains("library"),
            "{shell}"
        );
    }
    let o = run(&["completions", "tcsh"], &[]);
    assert_eq!(code(&o), 2);
    let o = run(&["man"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(".TH papersim 1"), "{}", stdout(&o));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["man", "--out-dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(dir.path().join("papersim.1").exists());
    assert!(dir.path().join("papersim-search.1").exists());
}

#[cfg(feature = "serve")]
#[test]
fn serve_json_announces_where_it_listens() {
    use std::io::{BufRead, BufReader};
    let (Some(lib), Some(model)) = (library(), model_dir()) else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_papersim"))
        .args(["serve", "--addr", "127.0.0.1:0", "--json", "--model"])
        .arg(&model)
        .env("PAPERSIM_LIBRARY", lib)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start papersim serve");
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("read the startup line");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["event"], "listening", "{line}");
    assert!(line.starts_with(r#"{"event":"listening""#), "{line}");
    let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0, "{line}");
    assert_eq!(v["library"], lib.to_str().unwrap());
}
