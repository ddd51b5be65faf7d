//! Helpers shared by the integration tests: locating the real model and
//! ../shared, and skipping (or, under CI=true, failing) when they are absent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// Runs the real binary from the project root.
pub fn papersim(args: &[&str]) -> std::process::Output {
    papersim_env(args, &[])
}

pub fn papersim_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_papersim"));
    cmd.args(args).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run papersim")
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the command succeeded, showing its stderr when not.
pub fn ok(o: std::process::Output) -> std::process::Output {
    assert!(
        o.status.success(),
        "papersim failed ({:?}):\n{}",
        o.status,
        stderr(&o)
    );
    o
}

pub fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
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
