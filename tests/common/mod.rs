//! Helpers shared by the integration tests: locating the real model and
//! ../shared, and skipping (or, under CI=true, failing) when they are absent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

pub mod http;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Returns `path` if it exists. Otherwise prints why the test is skipped and
/// returns None, except under CI=true, where a missing input is a failure.
pub fn require(path: PathBuf, what: &str, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let msg = format!("{what} not found at {} ({how})", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}; CI=true, so this is a failure");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// The real all-MiniLM-L6-v2, installed by scripts/fetch-model.sh.
pub fn model_dir() -> Option<PathBuf> {
    require(
        root().join("models/all-MiniLM-L6-v2/model.safetensors"),
        "model",
        "run scripts/fetch-model.sh",
    )
    .map(|p| p.parent().map(Path::to_path_buf).unwrap_or(p))
}

/// The hub id of the second model, all-mpnet-base-v2.
pub const MPNET: &str = "sentence-transformers/all-mpnet-base-v2";

/// all-mpnet-base-v2 in the Hugging Face cache, installed by
/// `scripts/fetch-model.sh --mpnet` (scripts/test.sh runs it), resolved
/// as `--model sentence-transformers/all-mpnet-base-v2` is.
pub fn mpnet_files() -> Option<papersim::embed::ModelFiles> {
    match papersim::embed::ModelSource::parse(MPNET).resolve() {
        Ok(f) => Some(f),
        Err(e) => {
            let msg = format!("{MPNET} is not installed ({e}); run scripts/fetch-model.sh --mpnet");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}; CI=true, so this is a failure");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

/// The reference texts with all-mpnet-base-v2's vectors, made by
/// sentence-transformers (scripts/make-mpnet-reference.sh): the texts from
/// ../shared, the vectors and token counts from tests/fixtures/reference.
pub fn mpnet_references() -> Option<Vec<Reference>> {
    use sha2::Digest;
    let texts = references()?;
    let fixture = root().join("tests/fixtures/reference/all-mpnet-base-v2");
    let meta = std::fs::read_to_string(fixture.with_extension("jsonl")).unwrap();
    let raw = std::fs::read(fixture.with_extension("f32")).unwrap();
    let dim = 768;
    assert_eq!(raw.len(), texts.len() * dim * 4, "one vector per text");
    let vectors: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(
        texts
            .into_iter()
            .zip(meta.lines())
            .zip(vectors.chunks_exact(dim))
            .map(|((t, line), v)| {
                let m: Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    m["id"],
                    t.id.as_str(),
                    "the fixture follows the texts' order"
                );
                let sha = format!("{:x}", sha2::Sha256::digest(t.text.as_bytes()));
                assert_eq!(
                    m["text_sha256"], sha,
                    "{}: the text changed since scripts/make-mpnet-reference.sh ran",
                    t.id
                );
                Reference {
                    id: t.id,
                    text: t.text,
                    n_tokens: m["n_tokens"].as_u64().unwrap() as usize,
                    embedding: v.to_vec(),
                }
            })
            .collect(),
    )
}

/// A file under ../shared (beside the clone).
pub fn shared(rel: &str) -> Option<PathBuf> {
    require(
        root().join("../shared").join(rel),
        "shared data",
        "../shared is beside the clone on dev machines and CI",
    )
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The bundled Hugging Face Daily Papers sample (61 papers).
pub fn hf_daily() -> PathBuf {
    root().join("data/hf-daily-papers.txt")
}

/// The bundled arXiv sample (JSON lines, gzipped).
pub fn arxiv_sample() -> PathBuf {
    root().join("data/arxiv-sample.jsonl.gz")
}

/// The real binary, to run from the project root. A cross-built binary
/// runs through `PAPERSIM_TEST_RUNNER` (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`, set by scripts/aarch64-test.sh).
pub fn command(args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_papersim");
    let runner = std::env::var("PAPERSIM_TEST_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    let mut cmd = match runner.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(runner).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args).current_dir(root());
    cmd
}

/// Runs the real binary from the project root.
pub fn papersim(args: &[&str]) -> Output {
    papersim_env(args, &[])
}

pub fn papersim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run papersim")
}

/// Starts the real binary with its output discarded (to kill it mid-run).
pub fn spawn_quiet(args: &[&str]) -> Child {
    command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start papersim")
}

/// Starts the real binary quietly, SIGKILLs it after `after` (if it has
/// not ended by then) and returns how it ended.
pub fn kill_after(args: &[&str], after: std::time::Duration) -> std::process::ExitStatus {
    let mut child = spawn_quiet(args);
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL
    child.wait().expect("wait for papersim")
}

/// `build --corpus CORPUS --library LIB`, then `extra`.
pub fn build_args<'a>(corpus: &'a Path, lib: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", "--corpus", s(corpus), "--library", s(lib)];
    args.extend_from_slice(extra);
    args
}

/// Runs `papersim build` of `corpus` into `lib` with `extra` flags; the
/// caller checks the outcome.
pub fn build(corpus: &Path, lib: &Path, extra: &[&str]) -> Output {
    papersim(&build_args(corpus, lib, extra))
}

/// [`build`] with environment variables set (failpoints).
pub fn build_env(corpus: &Path, lib: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    papersim_env(&build_args(corpus, lib, extra), env)
}

/// [`build`], asserting it succeeded.
pub fn build_ok(corpus: &Path, lib: &Path, extra: &[&str]) -> Output {
    ok(build(corpus, lib, extra))
}

/// [`build_ok`] with `--json`: the build's summary.
pub fn build_json(corpus: &Path, lib: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    json(&build_ok(corpus, lib, &args))
}

/// A library built once per test binary into `cell` (kept for the
/// process's life), or None when the model is missing.
pub fn library_once(
    cell: &'static OnceLock<PathBuf>,
    corpus: &Path,
    extra: &[&str],
) -> Option<&'static Path> {
    model_dir()?;
    Some(cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep().join("lib");
        build_ok(corpus, &dir, extra);
        dir
    }))
}

/// The whole HF Daily Papers sample, built once per test binary.
pub fn hf_daily_library() -> Option<&'static Path> {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    library_once(&LIB, &hf_daily(), &[])
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the command succeeded, showing its stderr when not.
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "papersim failed ({:?}):\n{}",
        o.status,
        stderr(&o)
    );
    o
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// `papersim info --library LIB --json`, asserting it succeeded.
pub fn info(lib: &Path) -> Value {
    json(&ok(papersim(&["info", "--library", s(lib), "--json"])))
}

/// The ids of a query's `--json` results, in order.
pub fn result_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {v}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

pub struct Reference {
    pub id: String,
    pub text: String,
    pub n_tokens: usize,
    pub embedding: Vec<f32>,
}

/// The reference texts with sentence-transformers' all-MiniLM-L6-v2 vectors
/// (../shared/reference/minilm-l6-v2.jsonl).
pub fn references() -> Option<Vec<Reference>> {
    let path = shared("reference/minilm-l6-v2.jsonl")?;
    let text = std::fs::read_to_string(&path).unwrap();
    Some(
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                Reference {
                    id: v["id"].as_str().unwrap().to_string(),
                    text: v["text"].as_str().unwrap().to_string(),
                    n_tokens: v["n_tokens"].as_u64().unwrap() as usize,
                    embedding: v["embedding"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect(),
                }
            })
            .collect(),
    )
}

/// Copies a folder tree (a library, to damage or update a copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Starts `papersim serve` on a free loopback port over `lib` (with `extra`
/// flags) and returns the child and the address it printed. Its stdout keeps
/// being drained so the server never blocks on a full pipe.
pub fn start_server(lib: &Path, extra: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    start_server_env(lib, extra, &[])
}

/// [`start_server`] with environment variables set (`PAPERSIM_API_KEY`).
pub fn start_server_env(
    lib: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::Read;
    let mut child = command(&["serve", "--library", s(lib)])
        .args(["--addr", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start papersim serve");
    let mut out = child.stdout.take().expect("piped stdout");
    // Read the "serving ... on http://ADDR" line byte by byte (no buffering
    // past it: the pipe stays open for the server's life).
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, addr)
}
