//! A query session: a library and the model that embeds its queries,
//! opened once and checked against each other. The CLI and `serve` both
//! start here, so a query is embedded exactly as the library was.

use std::path::Path;

use crate::embed::{
    resolve_in_cache, DeviceSpec, Embedder, ModelFiles, ModelSource, Precision, Role,
    DEFAULT_MODEL_DIR, DEFAULT_WEIGHTS_SHA256,
};
use crate::store::{self, Library, Manifest};

use super::QueryError;

/// The model a session should use, as the user named it.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    /// None: the model the library records, found from any folder (see
    /// `load_embedder`).
    pub source: Option<ModelSource>,
    /// Where the model runs.
    pub device: DeviceSpec,
    /// None: the library's. Anything else must equal it: int8 vectors are
    /// queried with int8 ones.
    pub precision: Option<Precision>,
    /// None: queries get the model's query prompt, documents (`add`) the
    /// one the library records. A name: that prompt for queries; for `add`
    /// it must be the recorded one.
    pub prompt: Option<String>,
}

/// What a session must have ready before the first query.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Load the model (dense or hybrid ranking, explanations).
    pub model: bool,
    /// Open the keyword index now rather than at the first keyword query.
    pub keyword: bool,
}

/// An open library and, when needed, its model.
pub struct Session {
    library: Library,
    embedder: Option<Embedder>,
}

impl Session {
    /// Opens the library at `dir` and, when `needs.model`, its model. On a
    /// cold start loading the model and checking the library's files are
    /// most of the time, so they run side by side: the model needs only the
    /// manifest, and the opened library is checked to still carry that
    /// manifest's model afterwards.
    pub fn open(dir: &Path, model: &ModelChoice, needs: Needs) -> Result<Self, QueryError> {
        let manifest = store::read_manifest(dir)?;
        let (library, embedder) = std::thread::scope(|s| {
            let embedder = s.spawn(|| {
                needs
                    .model
                    .then(|| load_embedder(&manifest, model))
                    .transpose()
            });
            let library = Library::open(dir).and_then(|lib| {
                if needs.keyword {
                    lib.keyword()?;
                }
                Ok(lib)
            });
            let embedder = embedder
                .join()
                .unwrap_or(Err(QueryError::Panicked("loading the model")));
            (library, embedder)
        });
        let (library, embedder) = (library?, embedder?);
        if library.manifest().model != manifest.model {
            return Err(QueryError::LibraryChanged {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Session { library, embedder })
    }

    /// The model of the library at `dir` alone (for `add`, which reopens the
    /// library itself under its writer lock).
    pub fn open_embedder(dir: &Path, model: &ModelChoice) -> Result<Embedder, QueryError> {
        let manifest = store::read_manifest(dir)?;
        let embedder = load_embedder(&manifest, model)?;
        // Papers added later are embedded as the library's were: a --prompt
        // naming another document prompt would mix two kinds of vectors.
        if let Some(name) = &model.prompt {
            let recorded = manifest.model.document_prompt.as_ref();
            if recorded.map(|p| p.name.as_str()) != Some(name.as_str()) {
                return Err(QueryError::PromptMismatch {
                    asked: name.clone(),
                    recorded: recorded
                        .map_or_else(|| "none".to_string(), |p| format!("{:?}", p.name)),
                });
            }
        }
        Ok(embedder)
    }

    /// The open library.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// The model, when the session was opened with `needs.model`.
    pub fn embedder(&self) -> Option<&Embedder> {
        self.embedder.as_ref()
    }

    /// The library and model, for callers that keep them apart (`serve`
    /// swaps libraries as new generations are committed).
    pub fn into_parts(self) -> (Library, Option<Embedder>) {
        (self.library, self.embedder)
    }
}

/// Loads the model recorded in `manifest` (or `choice.source`), at the
/// library's precision, and checks its weights are the ones the library
/// was embedded with.
pub fn load_embedder(manifest: &Manifest, choice: &ModelChoice) -> Result<Embedder, QueryError> {
    let built = manifest.model.precision;
    if let Some(asked) = choice.precision.filter(|&p| p != built) {
        return Err(QueryError::PrecisionMismatch { asked, built });
    }
    let (source, files) = match &choice.source {
        Some(m) => (m.clone(), m.resolve()?),
        None => locate(&manifest.model)?,
    };
    let mut embedder = Embedder::load(&files, choice.device, built)?;
    if let Some(name) = &choice.prompt {
        embedder.override_prompt(name)?;
    }
    // Documents get the prompt the library was built with, whatever the
    // model's configuration says now (absent: none, as before prompts).
    embedder.set_prompt(Role::Document, manifest.model.document_prompt.clone());
    let got = &embedder.info().weights_sha256;
    if *got != manifest.model.weights_sha256 {
        return Err(QueryError::ModelMismatch {
            model: source.to_string(),
            got: got.clone(),
            want_id: manifest.model.id.clone(),
            want: manifest.model.weights_sha256.clone(),
        });
    }
    Ok(embedder)
}

/// Finds the model a library records, from any working directory: the
/// recorded directory when it exists; the hub id in the Hugging Face cache;
/// for the default weights (by sha256, whatever the id says, so libraries
/// that recorded `models/all-MiniLM-L6-v2` keep opening) the default
/// model's usual places ([`ModelSource::default_source`]); last, the
/// recorded id resolved as given (a download with the `hub` feature), whose
/// error is the one reported. The caller checks the weights' sha256.
fn locate(model: &crate::embed::ModelInfo) -> Result<(ModelSource, ModelFiles), QueryError> {
    let id = model.id.as_str();
    let dir = Path::new(id);
    if dir.is_dir() {
        let source = ModelSource::Dir(dir.to_path_buf());
        return Ok((source.clone(), source.resolve()?));
    }
    let hub_like = !id.starts_with(['.', '/', '~']) && id.matches('/').count() == 1;
    if hub_like {
        if let Ok(files) = resolve_in_cache(&hf_hub::Cache::from_env(), id) {
            return Ok((ModelSource::Hub(id.to_string()), files));
        }
    }
    let last = if model.weights_sha256 == DEFAULT_WEIGHTS_SHA256 || id == DEFAULT_MODEL_DIR {
        ModelSource::default_source()
    } else if hub_like {
        ModelSource::Hub(id.to_string())
    } else {
        ModelSource::Dir(dir.to_path_buf())
    };
    let files = last.resolve()?;
    Ok((last, files))
}
