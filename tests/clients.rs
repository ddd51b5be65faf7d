//! `papersim serve` driven by the clients people already run, installed from
//! PyPI into a venv under `target/`: openai's `embeddings.create` (one input,
//! a batch, an over-long one, a bad request) and `models.list`, and
//! huggingface_hub's `InferenceClient(model=url)` `feature_extraction` and
//! `sentence_similarity` as against a text-embeddings-inference server, plus
//! TEI's `/info` and `/tokenize` shapes. The checks live in
//! `tests/clients/drive.py`. Against a server with an API key, the same
//! clients with the right key work and with a wrong or missing one raise
//! their library's authentication error (`tests/clients/auth.py`). Skipped with a printed reason where python3,
//! venv or pip is missing, except under CI=true, where that is a failure.
#![cfg(feature = "serve")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// Skips (prints why) or, under CI=true, fails.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI=true, so this is a failure");
    }
    eprintln!("SKIPPED: {why}");
}

/// target/client-venv with openai, huggingface_hub and numpy, made once;
/// None (after [`skip`]) when python3, venv or pip cannot provide it.
fn venv_python() -> Option<PathBuf> {
    let venv = common::root().join("target/client-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".papersim-clients-ready");
    if ready.is_file() {
        return Some(python);
    }
    let run = |cmd: &mut Command, what: &str| -> bool {
        match cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output() {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                skip(&format!(
                    "{what} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                false
            }
            Err(e) => {
                skip(&format!("{what}: {e}"));
                false
            }
        }
    };
    if !run(
        Command::new("python3").args(["-m", "venv", common::s(&venv)]),
        "python3 -m venv target/client-venv",
    ) {
        return None;
    }
    if !run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "openai",
            "huggingface_hub",
            "numpy",
        ]),
        "pip install openai huggingface_hub numpy",
    ) {
        return None;
    }
    std::fs::write(&ready, "").unwrap();
    Some(python)
}

static LIB: OnceLock<PathBuf> = OnceLock::new();

/// Runs `tests/clients/SCRIPT ARGS…`; its last line, a JSON summary.
fn drive(python: &Path, script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(common::root().join("tests/clients").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run tests/clients/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary")
}

/// `papersim serve` on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(lib: &Path, env: &[(&str, &str)]) -> Server {
        let (child, addr) = common::start_server_env(lib, &[], env);
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The 40-paper library and the clients' python, or None (skipped).
fn setup() -> Option<(&'static Path, PathBuf)> {
    let lib = common::library_once(&LIB, &common::arxiv_sample(), &["--limit", "40"])?;
    Some((lib, venv_python()?))
}

#[test]
fn openai_and_huggingface_hub_clients_work_unchanged() {
    let Some((lib, python)) = setup() else {
        return;
    };
    let server = Server::start(lib, &[]);
    let summary = drive(&python, "drive.py", &[&server.url]);
    eprintln!("clients: {summary}");
    assert_eq!(summary["hf_too_long"], 413);
    assert_eq!(summary["hf_bad_request"], 422);
}

#[test]
fn with_an_api_key_the_clients_need_it_and_get_their_authentication_errors() {
    let Some((lib, python)) = setup() else {
        return;
    };
    let key = "3f9c2a7be14d6058c1a9e7d2b4f60a83";
    let server = Server::start(lib, &[("PAPERSIM_API_KEY", key)]);
    let summary = drive(&python, "auth.py", &[&server.url, key]);
    eprintln!("clients with a key: {summary}");
    assert_eq!(summary["openai_wrong"], "AuthenticationError");
    assert_eq!(summary["openai_missing"], "AuthenticationError");
    assert_eq!(summary["hf_wrong"], "HfHubHTTPError 401");
    assert_eq!(summary["hf_missing"], "HfHubHTTPError 401");
}
