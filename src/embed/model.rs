//! Finding a sentence-transformers model on disk: a local directory, or a hub id
//! resolved through the Hugging Face cache (and downloaded with the `hub` feature).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::pooling::Pooling;
use super::EmbedError;

/// Where `scripts/fetch-model.sh` puts the default model, relative to the
/// project root (and to the working directory when papersim runs from there).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// What the default resolves to when that directory is absent.
pub const DEFAULT_HUB_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// sha256 of the default model's `model.safetensors`: a library embedded by
/// these weights records the model as [`DEFAULT_HUB_ID`], wherever its
/// files were read from.
pub const DEFAULT_WEIGHTS_SHA256: &str =
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// The name clients see for a model recorded as `id` with weights `sha256`
/// (OpenAI's `model`, TEI's `model_id`): the hub id for the default
/// weights or a hub id, `ORG/NAME` for a Hugging Face cache snapshot,
/// else the directory's own name; never a whole filesystem path.
pub fn model_name(id: &str, sha256: &str) -> String {
    if sha256 == DEFAULT_WEIGHTS_SHA256 {
        return DEFAULT_HUB_ID.to_string();
    }
    let path = Path::new(id);
    let hub_like = !id.starts_with(['.', '/', '~']) && id.matches('/').count() == 1;
    if hub_like && !path.is_dir() {
        return id.to_string();
    }
    for c in path.components().rev() {
        let c = c.as_os_str().to_string_lossy();
        if let Some(repo) = c.strip_prefix("models--") {
            return repo.replacen("--", "/", 1);
        }
    }
    path.file_name()
        .map_or_else(|| id.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The command that fetches the default model, named in every "model missing" error.
pub const FETCH_HINT: &str = "run scripts/fetch-model.sh (it installs models/all-MiniLM-L6-v2)";

/// The hub id of the second model `scripts/fetch-model.sh --mpnet` installs.
pub const MPNET_HUB_ID: &str = "sentence-transformers/all-mpnet-base-v2";

/// What to run when `model` is missing: the `--mpnet` install for
/// all-mpnet-base-v2, else [`FETCH_HINT`].
pub fn fetch_hint(model: &str) -> &'static str {
    if model == MPNET_HUB_ID {
        "run scripts/fetch-model.sh --mpnet (it installs sentence-transformers/all-mpnet-base-v2 \
         into the Hugging Face cache)"
    } else {
        FETCH_HINT
    }
}

const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The files of one resolved model and what its sentence-transformers config says.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// How the user named the model (a path or a hub id); recorded in the library manifest.
    pub id: String,
    /// The transformer's `config.json` (hidden size, layers, position table).
    pub config: PathBuf,
    /// The Hugging Face `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The weights, `model.safetensors`.
    pub weights: PathBuf,
    /// From `1_Pooling/config.json`; mean pooling when the file is absent.
    pub pooling: Pooling,
    /// The `Dense` layers `modules.json` lists after pooling, in order.
    pub dense: Vec<super::modules::Dense>,
    /// From sentence_bert_config.json; tokenizer.json's own truncation is not trusted
    /// (all-MiniLM-L6-v2's says 128 where sentence-transformers uses 256).
    pub max_seq_length: Option<usize>,
    /// `prompts` and `default_prompt_name` from `config_sentence_transformers.json`.
    pub prompts: super::prompts::Prompts,
}

/// A model reference as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local sentence-transformers directory.
    Dir(PathBuf),
    /// A Hugging Face hub id, `ORG/NAME`.
    Hub(String),
}

impl ModelSource {
    /// A string naming an existing directory, or containing a path separator other
    /// than the one `ORG/NAME` has, is a path; otherwise a hub id.
    pub fn parse(s: &str) -> Self {
        let p = Path::new(s);
        let looks_like_path = p.is_dir()
            || s.starts_with('.')
            || s.starts_with('/')
            || s.starts_with('~')
            || s.matches('/').count() != 1;
        if looks_like_path {
            ModelSource::Dir(p.to_path_buf())
        } else {
            ModelSource::Hub(s.to_string())
        }
    }

    /// The default model, wherever it is installed: `models/all-MiniLM-L6-v2`
    /// in the working directory, else the Hugging Face cache's copy, else the
    /// `models/all-MiniLM-L6-v2` of the checkout papersim was built from or
    /// installed out of (see `default_dirs`), else the hub id (downloaded
    /// with the `hub` feature, or an error naming [`FETCH_HINT`]).
    pub fn default_source() -> Self {
        let local = Path::new(DEFAULT_MODEL_DIR);
        if local.is_dir() {
            return ModelSource::Dir(local.to_path_buf());
        }
        if resolve_in_cache(&hf_hub::Cache::from_env(), DEFAULT_HUB_ID).is_ok() {
            return ModelSource::Hub(DEFAULT_HUB_ID.to_string());
        }
        match default_dirs()
            .into_iter()
            .find(|d| d.join("config.json").is_file())
        {
            Some(d) => ModelSource::Dir(d),
            None => ModelSource::Hub(DEFAULT_HUB_ID.to_string()),
        }
    }

    /// Finds the model's files: reads the directory, or looks the hub id up in
    /// the Hugging Face cache (downloading first with the `hub` feature). A
    /// directory's id is its absolute path, so that a library records where
    /// its model is whatever folder it was built from.
    pub fn resolve(&self) -> Result<ModelFiles, EmbedError> {
        match self {
            ModelSource::Dir(dir) => {
                let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                from_dir(dir, &abs.display().to_string())
            }
            ModelSource::Hub(id) => resolve_hub(id),
        }
    }
}

/// Where the default model may sit outside the working directory: the
/// `models/all-MiniLM-L6-v2` beside the executable's folders
/// (`target/release/papersim` → the checkout's `models/`), then the one in the
/// checkout papersim was compiled from (`cargo install --path .` keeps it).
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let exe = fs::canonicalize(&exe).unwrap_or(exe);
        dirs.extend(exe.ancestors().skip(1).map(|a| a.join(DEFAULT_MODEL_DIR)));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_DIR));
    dirs
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Dir(d) => write!(f, "{}", d.display()),
            ModelSource::Hub(id) => f.write_str(id),
        }
    }
}

/// Reads a sentence-transformers directory: the three required files, plus
/// `1_Pooling/config.json` and `sentence_bert_config.json` when present.
pub fn from_dir(dir: &Path, id: &str) -> Result<ModelFiles, EmbedError> {
    if !dir.is_dir() {
        return Err(EmbedError::ModelMissing {
            model: id.to_string(),
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    for f in REQUIRED {
        if !dir.join(f).is_file() {
            return Err(EmbedError::ModelMissing {
                model: id.to_string(),
                reason: format!("{} has no {f}", dir.display()),
            });
        }
    }
    super::modules::check_model_type(&dir.join("config.json"))?;
    let modules = super::modules::read(dir)?;
    let pooling_path = dir.join("1_Pooling/config.json");
    let pooling = if let Some(p) = modules.pooling {
        p
    } else if pooling_path.is_file() {
        pooling_from_config(&pooling_path)?
    } else {
        // sentence-transformers' own default for a bare transformer.
        Pooling::Mean
    };
    let sbert = dir.join("sentence_bert_config.json");
    let max_seq_length = if sbert.is_file() {
        #[derive(Deserialize)]
        struct SbertConfig {
            max_seq_length: Option<usize>,
        }
        let c: SbertConfig = read_json(&sbert)?;
        c.max_seq_length
    } else {
        None
    };
    Ok(ModelFiles {
        id: id.to_string(),
        config: dir.join("config.json"),
        tokenizer: dir.join("tokenizer.json"),
        weights: dir.join("model.safetensors"),
        pooling,
        dense: modules.dense,
        max_seq_length,
        prompts: super::prompts::Prompts::read(dir)?,
    })
}

/// Resolves `ORG/NAME` from the local Hugging Face cache (`$HF_HOME/hub`, the
/// layout hf-hub and huggingface_hub share), downloading first with the `hub`
/// feature when the cache lacks it.
fn resolve_hub(id: &str) -> Result<ModelFiles, EmbedError> {
    let cache = hf_hub::Cache::from_env();
    match resolve_in_cache(&cache, id) {
        // HF_HUB_OFFLINE=1 means what it means to huggingface_hub: the cache
        // or nothing (the error names the cache path looked in).
        Err(e @ EmbedError::ModelMissing { .. }) if cfg!(feature = "hub") && !hub_offline() => {
            download(id).map_err(|d| {
                // The download's own reason, without its second copy of the hint.
                let d = match d {
                    EmbedError::ModelMissing { reason, .. } => reason,
                    other => other.to_string(),
                };
                match e {
                    EmbedError::ModelMissing { model, reason } => EmbedError::ModelMissing {
                        model,
                        reason: format!("{reason}; and downloading it failed: {d}"),
                    },
                    other => other,
                }
            })
        }
        found => found,
    }
}

/// `HF_HUB_OFFLINE` set to anything but empty, `0` or `false` (huggingface_hub's reading).
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The cache half of `resolve_hub` (the Hub lookup), separate so tests can point it at a
/// cache directory they build.
pub fn resolve_in_cache(cache: &hf_hub::Cache, id: &str) -> Result<ModelFiles, EmbedError> {
    let repo = cache.model(id.to_string());
    let snapshot = repo
        .get("config.json")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| EmbedError::ModelMissing {
            model: id.to_string(),
            reason: format!(
                "not a local directory, and not in the Hugging Face cache at {}{}",
                cache.path().display(),
                if !cfg!(feature = "hub") {
                    " (this build cannot download: rebuild with --features hub)"
                } else if hub_offline() {
                    " (HF_HUB_OFFLINE is set: no download)"
                } else {
                    ""
                }
            ),
        })?;
    from_dir(&snapshot, id)
}

#[cfg(feature = "hub")]
fn download(id: &str) -> Result<ModelFiles, EmbedError> {
    // from_env: HF_HOME and HF_ENDPOINT, as the cache lookup reads them, so a
    // download lands where lookup finds it.
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .build()
        .map_err(|e| EmbedError::ModelMissing {
            model: id.to_string(),
            reason: format!("cannot reach the hub: {e}"),
        })?;
    let repo = api.model(id.to_string());
    let fetch_failed = |f: &str, e: hf_hub::api::sync::ApiError| EmbedError::ModelMissing {
        model: id.to_string(),
        reason: format!("download of {f} failed: {e}"),
    };
    let mut config = None;
    for f in REQUIRED {
        let p = repo.get(f).map_err(|e| fetch_failed(f, e))?;
        if f == "config.json" {
            config = Some(p);
        }
    }
    // Optional files sentence-transformers reads: absent ones are fine.
    let optional = [
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ];
    let mut modules = None;
    for f in optional {
        if let Ok(p) = repo.get(f) {
            if f == "modules.json" {
                modules = Some(p);
            }
        }
    }
    // The folders modules.json names (Pooling, Dense): each one's config and,
    // for Dense, weights.
    if let Some(m) = modules {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            path: String,
        }
        let entries: Vec<Entry> = read_json(&m)?;
        for e in entries.iter().filter(|e| !e.path.is_empty()) {
            let cfg = format!("{}/config.json", e.path);
            repo.get(&cfg).map_err(|err| fetch_failed(&cfg, err))?;
            // Pooling folders have no weights; a Dense layer's missing
            // weights are reported by name when the model is read.
            let _ = repo.get(&format!("{}/model.safetensors", e.path));
        }
    }
    let dir = config
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| EmbedError::ModelMissing {
            model: id.to_string(),
            reason: "download gave no config.json".into(),
        })?;
    from_dir(&dir, id)
}

#[cfg(not(feature = "hub"))]
fn download(id: &str) -> Result<ModelFiles, EmbedError> {
    Err(EmbedError::ModelMissing {
        model: id.to_string(),
        reason: "built without the `hub` feature".into(),
    })
}

/// Reads `1_Pooling/config.json`. Exactly one of the modes we implement
/// must be on; combined modes (sentence-transformers concatenates them)
/// are refused rather than silently half-implemented.
pub fn pooling_from_config(path: &Path) -> Result<Pooling, EmbedError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        pooling_mode_cls_token: bool,
        #[serde(default)]
        pooling_mode_mean_tokens: bool,
        #[serde(default)]
        pooling_mode_max_tokens: bool,
        #[serde(default)]
        pooling_mode_mean_sqrt_len_tokens: bool,
        #[serde(default)]
        pooling_mode_lasttoken: bool,
        #[serde(default)]
        pooling_mode_weightedmean_tokens: bool,
        #[serde(default = "yes")]
        include_prompt: bool,
    }
    fn yes() -> bool {
        true
    }
    let c: Config = read_json(path)?;
    if !c.include_prompt {
        // Pooling without the prompt's tokens (INSTRUCTOR models) needs the
        // prompt's length through the batcher and the server's queue; until
        // then such a model is refused rather than embedded wrongly.
        return Err(EmbedError::BadModelFile {
            path: path.to_path_buf(),
            reason: "include_prompt: false (pooling that leaves out the prompt's tokens, \
                     as INSTRUCTOR models use) is not supported"
                .into(),
        });
    }
    let modes = [
        (c.pooling_mode_mean_tokens, Pooling::Mean),
        (c.pooling_mode_cls_token, Pooling::Cls),
        (c.pooling_mode_max_tokens, Pooling::Max),
        (c.pooling_mode_lasttoken, Pooling::LastToken),
    ];
    let on: Vec<Pooling> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
    let unsupported = c.pooling_mode_mean_sqrt_len_tokens || c.pooling_mode_weightedmean_tokens;
    match (on.as_slice(), unsupported) {
        ([one], false) => Ok(*one),
        _ => Err(EmbedError::BadModelFile {
            path: path.to_path_buf(),
            reason: "exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token, \
                     pooling_mode_max_tokens, pooling_mode_lasttoken must be true \
                     (combined, mean_sqrt_len or weightedmean pooling is not supported)"
                .into(),
        }),
    }
}

/// Where BERT checkpoints keep their tensors, in the order BertModel tries
/// them: bare names, `bert.` (saved from BertForX), or `<model_type>.`.
pub(crate) fn weight_prefixes(model_type: Option<&str>) -> Vec<String> {
    let mut prefixes = vec![String::new(), "bert.".to_string()];
    prefixes.extend(model_type.map(|t| format!("{t}.")));
    prefixes
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbedError> {
    let text = fs::read_to_string(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| EmbedError::BadModelFile {
        path: path.to_path_buf(),
        reason: format!("line {}: {e}", e.line()),
    })
}

/// sha256 of the weights, hex. A library records it so that queries are
/// embedded by the very model that built it.
///
/// Hashing 90 MB costs ~0.2 s, which a `search` should not pay every time, so
/// the digest is cached beside the file, keyed by size and mtime; an
/// unwritable model directory just means hashing each time.
pub fn weights_sha256(path: &Path) -> Result<String, EmbedError> {
    let io = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{} {}", meta.len(), mtime);
    let sidecar = path.with_file_name(format!(
        ".{}.sha256",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("weights")
    ));
    if let Ok(cached) = fs::read_to_string(&sidecar) {
        if let Some((k, sha)) = cached.trim().rsplit_once(' ') {
            if k == key && sha.len() == 64 {
                return Ok(sha.to_string());
            }
        }
    }
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let _ = fs::write(&sidecar, format!("{key} {sha}\n"));
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_distinguishes_paths_from_hub_ids() {
        assert_eq!(
            ModelSource::parse("sentence-transformers/all-MiniLM-L6-v2"),
            ModelSource::Hub("sentence-transformers/all-MiniLM-L6-v2".into())
        );
        assert_eq!(
            ModelSource::parse("./my/model"),
            ModelSource::Dir("./my/model".into())
        );
        assert_eq!(
            ModelSource::parse("/abs/model"),
            ModelSource::Dir("/abs/model".into())
        );
        assert_eq!(
            ModelSource::parse("a/b/c"),
            ModelSource::Dir("a/b/c".into())
        );
    }

    fn write_model(dir: &Path) {
        fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        fs::write(dir.join("config.json"), "{}").unwrap();
        fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        fs::write(dir.join("model.safetensors"), "weights").unwrap();
        fs::write(
            dir.join("1_Pooling/config.json"),
            r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        )
        .unwrap();
        fs::write(
            dir.join("sentence_bert_config.json"),
            r#"{"max_seq_length": 200, "do_lower_case": false}"#,
        )
        .unwrap();
    }

    #[test]
    fn hub_ids_resolve_from_the_hf_cache_layout() {
        // The layout huggingface_hub writes: models--ORG--NAME/refs/main holds a
        // commit hash, snapshots/<hash>/ holds the files.
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--acme--tiny-bert");
        let snap = repo.join("snapshots/0123abcd");
        write_model(&snap);
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::write(repo.join("refs/main"), "0123abcd").unwrap();

        let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
        let files = resolve_in_cache(&cache, "acme/tiny-bert").unwrap();
        assert_eq!(files.weights, snap.join("model.safetensors"));
        assert_eq!(files.pooling, Pooling::Cls);
        assert_eq!(files.max_seq_length, Some(200));
        assert_eq!(files.id, "acme/tiny-bert");

        let err = resolve_in_cache(&cache, "acme/absent").unwrap_err();
        assert!(
            err.to_string().contains("Hugging Face cache"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path());
        fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
        let err = from_dir(tmp.path(), "x").unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
        assert!(err.contains("fetch-model.sh"), "{err}");
        assert!(!err.contains("--mpnet"), "{err}");
    }

    #[test]
    fn a_missing_mpnet_names_its_own_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = resolve_in_cache(&hf_hub::Cache::new(empty.path().into()), MPNET_HUB_ID)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fetch-model.sh --mpnet"), "{err}");
    }

    #[test]
    fn weights_digest_is_cached_and_invalidated_by_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path().join("model.safetensors");
        fs::write(&w, b"abc").unwrap();
        let sha = weights_sha256(&w).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(tmp.path().join(".model.safetensors.sha256").is_file());
        assert_eq!(weights_sha256(&w).unwrap(), sha);
        fs::write(&w, b"abcd").unwrap();
        assert_ne!(weights_sha256(&w).unwrap(), sha);
    }

    #[test]
    fn pooling_config_is_read_and_combinations_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("config.json");
        std::fs::write(&p, r#"{"pooling_mode_mean_tokens": true}"#).unwrap();
        assert_eq!(pooling_from_config(&p).unwrap(), Pooling::Mean);
        std::fs::write(
            &p,
            r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#,
        )
        .unwrap();
        let err = pooling_from_config(&p).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
        std::fs::write(
            &p,
            r#"{"pooling_mode_mean_tokens": true, "include_prompt": false}"#,
        )
        .unwrap();
        let err = pooling_from_config(&p).unwrap_err().to_string();
        assert!(err.contains("config.json: include_prompt: false"), "{err}");
        std::fs::write(&p, r#"{"pooling_mode_mean_tokens": tru"#).unwrap();
        let err = pooling_from_config(&p).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
