//! Text → unit vectors with a sentence-transformers model (BERT family) on candle.
//!
//! The pipeline: tokenize (truncating at the model's `max_seq_length`), plan
//! length-sorted batches under a token budget ([`batch`]), run each through a
//! [`Backend`], pool under the attention mask ([`Pooling`]), L2-normalise, and
//! put the vectors back in input order.

mod backend;
pub mod batch;
mod candle_mpnet;
mod cpu_bert;
mod model;
pub mod modules;
mod mpnet;
mod pooling;
pub mod prompts;
mod spans;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

pub use backend::{Backend, CandleBert, DeviceSpec, TokenBatch};
pub use batch::BatchLimits;
#[doc(hidden)]
pub use cpu_bert::DenseBench;
pub use cpu_bert::{cpu_kernels, CpuBert, CpuKernels};
pub use model::{
    from_dir, model_name, resolve_in_cache, weights_sha256, ModelFiles, ModelSource,
    DEFAULT_HUB_ID, DEFAULT_MODEL_DIR, DEFAULT_WEIGHTS_SHA256, FETCH_HINT,
};
pub use pooling::{normalize, Pooling};
pub use prompts::{Prompt, Prompts, Role};
pub use spans::{
    pool_spans, relative_to, SentenceEmbedding, SentenceMethod, SentenceReach, SpanEmbedding,
    TextSentences, TEXT_SHARE,
};

/// Everything that can go wrong while finding, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model could not be found: the directory lacks a required file, or a
    /// hub id is neither in the local cache nor downloadable.
    #[error("model {model}: {reason}; {hint}", hint = model::fetch_hint(model))]
    ModelMissing {
        /// The model as the user named it (path or hub id).
        model: String,
        /// What is missing, and where it was looked for.
        reason: String,
    },
    /// A model file exists but cannot be used: unparsable JSON or tokenizer,
    /// unsupported pooling, or weights that do not load.
    #[error("{}: {reason}", path.display())]
    BadModelFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An unparsable `--device`, a GPU that cannot be opened, CUDA asked of a
    /// build without it, or a bad thread count.
    #[error("device {0}")]
    BadDevice(String),
    /// An unknown `--precision`, or one the chosen device or backend does not
    /// run (f16 on CPU, int8 on CUDA).
    #[error("precision {0}")]
    BadPrecision(String),
    /// The tokenizer refused a text or its truncation settings.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The backend failed during a forward pass: a candle error, or a batch
    /// the CPU encoder rejects (inconsistent shapes, longer than the position
    /// table, ids outside the vocabulary).
    #[error("forward pass failed: {0}")]
    Forward(String),
    /// A prompt name (`--prompt`, TEI's `prompt_name`) the model's
    /// `config_sentence_transformers.json` does not define.
    #[error("prompt {name:?} is not one of the model's prompts ({available})")]
    UnknownPrompt {
        /// The name asked for.
        name: String,
        /// The model's prompt names, comma-separated (or "the model has no prompts").
        available: String,
    },
}

/// Numeric precision of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Full single precision everywhere; the reference results.
    #[default]
    F32,
    /// Dense layers with int8 weights (per output row) and 8-bit
    /// activations (per token); attention, softmax and LayerNorm in f32.
    /// CPU only.
    Int8,
    /// Half precision throughout; CUDA only.
    F16,
    /// Dense layers with bfloat16 weights and activations, products summed
    /// in f32; attention, softmax, LayerNorm and GELU in f32. CPU: native on
    /// AVX-512 BF16 and AMX, emulated (same results, f32 speed) elsewhere;
    /// CUDA: candle's bf16 throughout.
    Bf16,
}

impl Precision {
    /// True for [`Precision::F32`]; lets serde leave the default out of manifests.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

impl FromStr for Precision {
    type Err = EmbedError;
    fn from_str(s: &str) -> Result<Self, EmbedError> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            "f16" | "fp16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(EmbedError::BadPrecision(format!(
                "{s:?}: expected f32, int8, bf16 or f16"
            ))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

/// What a library records about the model that embedded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's hub id (always `sentence-transformers/all-MiniLM-L6-v2`
    /// for the default weights), else its directory's absolute path
    /// (libraries built before this recorded the path as given).
    pub id: String,
    /// Hex SHA-256 of `model.safetensors`; queries must be embedded by the
    /// model with this digest.
    pub weights_sha256: String,
    /// Embedding width (e.g. 384).
    pub dim: usize,
    /// How token vectors were pooled into one vector per text.
    pub pooling: Pooling,
    /// Texts were truncated to this many tokens, special tokens included.
    pub max_seq_length: usize,
    /// Absent in libraries built before int8 existed, which are f32; and
    /// never written when f32, because the manifest's checksum is taken over
    /// its re-serialisation: an f32 library's manifest stays byte-for-byte
    /// what older papersims wrote and check.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// The prompt prepended to every document (paper text) of the library,
    /// so that `add` embeds new papers the same way. Absent: no prompt,
    /// which is also what every library built before prompts existed used;
    /// never written then, for the same checksum reason as `precision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_prompt: Option<Prompt>,
}

impl ModelInfo {
    /// What an embedding checkpoint (`embed-cache.bin`) is keyed by: the
    /// weights' sha256 (as before prompts), or with a document prompt the
    /// sha256 of both, so that vectors embedded under one prompt are never
    /// resumed by a run with another.
    pub fn checkpoint_key(&self) -> String {
        use sha2::{Digest, Sha256};
        match &self.document_prompt {
            None => self.weights_sha256.clone(),
            Some(p) => Sha256::new()
                .chain_update(self.weights_sha256.as_bytes())
                .chain_update(b"\0")
                .chain_update(p.text.as_bytes())
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }
}

/// One token of a tokenized text (text-embeddings-inference's `/tokenize`
/// shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSpan {
    /// Its id in the vocabulary.
    pub id: u32,
    /// The text it covers, or the token itself for a special token.
    pub text: String,
    /// Whether the tokenizer added it (`[CLS]`, `[SEP]`).
    pub special: bool,
    /// Byte offset of its first byte in the text (none when special).
    pub start: Option<usize>,
    /// Byte offset just past it (none when special).
    pub stop: Option<usize>,
}

/// Throughput figures of one `embed` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EmbedStats {
    /// Texts embedded.
    pub docs: usize,
    /// Real tokens, special tokens included, after truncation.
    pub tokens: usize,
    /// Token slots computed, padding included.
    pub padded_tokens: usize,
    /// Forward passes run.
    pub batches: usize,
    /// Wall-clock time, tokenization included, in seconds.
    pub seconds: f64,
}

impl EmbedStats {
    /// Texts per second of wall-clock time.
    pub fn docs_per_s(&self) -> f64 {
        self.docs as f64 / self.seconds.max(1e-9)
    }
    /// Real (unpadded) tokens per second of wall-clock time.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }
    /// Token slots computed per real token: 1.0 means no padding waste; also
    /// 1.0 when nothing was embedded.
    pub fn padding_ratio(&self) -> f64 {
        if self.tokens == 0 {
            1.0
        } else {
            self.padded_tokens as f64 / self.tokens as f64
        }
    }
    /// Accumulates another call's figures into these (counts and seconds summed).
    pub fn add(&mut self, o: &EmbedStats) {
        self.docs += o.docs;
        self.tokens += o.tokens;
        self.padded_tokens += o.padded_tokens;
        self.batches += o.batches;
        self.seconds += o.seconds;
    }
}

/// A loaded model ready to embed: tokenizer, backend and batching limits.
/// Produces L2-normalised vectors of [`ModelInfo::dim`] floats.
pub struct Embedder {
    tokenizer: Tokenizer,
    backend: Box<dyn Backend>,
    info: ModelInfo,
    pad_id: u32,
    limits: BatchLimits,
    /// The model's Dense layers after pooling (most models have none).
    dense: Vec<modules::Dense>,
    /// The model's prompts, from `config_sentence_transformers.json`.
    prompts: Prompts,
    /// The prompts queries and role-less texts get (the document one is
    /// `info.document_prompt`, which a library records).
    query_prompt: Option<Prompt>,
    plain_prompt: Option<Prompt>,
}

/// What [`Embedder::run_batches`] calls with each forward pass: its texts'
/// indexes, their encodings, the padded batch and its last hidden states.
type EachBatch<'a> =
    dyn FnMut(&[usize], &[&Encoding], &TokenBatch, &[f32]) -> Result<(), EmbedError> + 'a;

/// Texts tokenized at a time: bounds memory on big corpora (a tokenizers
/// `Encoding` carries offsets and token strings) while leaving enough texts
/// for length sorting to keep padding low.
const TOKENIZE_CHUNK: usize = 2048;

impl Embedder {
    /// Loads the tokenizer and weights of `files` onto `device` at
    /// `precision`. On CPU the forward pass is [`CpuBert`] (f32 or int8);
    /// `PAPERSIM_BACKEND=candle` picks candle's BertModel instead (the f32
    /// reference, for comparisons). On CUDA it is candle's, f32 or f16.
    pub fn load(
        files: &ModelFiles,
        device: DeviceSpec,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        let candle = std::env::var("PAPERSIM_BACKEND").is_ok_and(|v| v == "candle");
        let backend = || -> Result<Box<dyn Backend>, EmbedError> {
            Ok(match (device, precision) {
                (DeviceSpec::Cpu, Precision::F16) => {
                    return Err(EmbedError::BadPrecision(
                        "f16 runs on CUDA only (--device cuda); on the CPU use f32, bf16 or int8"
                            .into(),
                    ))
                }
                (DeviceSpec::Cpu, Precision::Int8 | Precision::Bf16) if candle => {
                    return Err(EmbedError::BadPrecision(format!(
                        "{precision} runs on papersim's CPU encoder, not PAPERSIM_BACKEND=candle"
                    )))
                }
                (DeviceSpec::Cpu, _) if !candle => Box::new(CpuBert::load(files, None, precision)?),
                (DeviceSpec::Cuda(n), Precision::Int8) => {
                    return Err(EmbedError::BadPrecision(format!(
                        "int8 runs on the CPU only; on cuda:{n} use f32 or f16"
                    )))
                }
                _ => backend::load_candle(files, device, precision)?,
            })
        };
        // Parsing tokenizer.json takes about as long as loading the weights
        // (~30 ms of JSON for MiniLM's, inside the tokenizers crate): on a
        // thread of its own the two overlap, which a cold `search` feels.
        let (backend, tokenizer) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| read_tokenizer(files));
            let backend = backend();
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (backend, tokenizer)
        });
        let mut e = Self::assemble(files, backend?, tokenizer?, BatchLimits::for_device(device))?;
        e.info.precision = precision;
        Ok(e)
    }

    /// Builds an embedder around any backend (tests use a deterministic double).
    pub fn with_backend(files: &ModelFiles, backend: Box<dyn Backend>) -> Result<Self, EmbedError> {
        Self::assemble(
            files,
            backend,
            read_tokenizer(files)?,
            BatchLimits::default(),
        )
    }

    fn assemble(
        files: &ModelFiles,
        backend: Box<dyn Backend>,
        mut tokenizer: Tokenizer,
        limits: BatchLimits,
    ) -> Result<Self, EmbedError> {
        #[derive(Deserialize)]
        struct PosConfig {
            max_position_embeddings: Option<usize>,
            pad_token_id: Option<u32>,
            model_type: Option<String>,
        }
        let cfg: PosConfig = model::read_json(&files.config)?;
        // RoBERTa's positions start after the padding id: its table has
        // pad_token_id + 1 rows more than the longest text.
        let offset = if modules::offsets_positions(cfg.model_type.as_deref()) {
            cfg.pad_token_id.unwrap_or(1) as usize + 1
        } else {
            0
        };
        let max_pos = cfg
            .max_position_embeddings
            .unwrap_or(512)
            .saturating_sub(offset);
        // sentence_bert_config.json wins; tokenizer.json's own truncation (128
        // for all-MiniLM-L6-v2) is not what sentence-transformers uses.
        let max_seq_length = files.max_seq_length.unwrap_or(max_pos).min(max_pos);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // We pad per batch ourselves; tokenizer.json pads every text to 128.
        tokenizer.with_padding(None);
        if let Some(d) = files.dense.first() {
            if d.in_features != backend.dim() {
                return Err(EmbedError::BadModelFile {
                    path: files.config.clone(),
                    reason: format!(
                        "the first Dense layer takes {} inputs; the transformer gives {}",
                        d.in_features,
                        backend.dim()
                    ),
                });
            }
        }
        let sha = weights_sha256(&files.weights)?;
        // The default weights are recorded by their hub id wherever they were
        // read from, so a library finds them again from any folder or machine.
        let id = if sha == DEFAULT_WEIGHTS_SHA256 {
            DEFAULT_HUB_ID.to_string()
        } else {
            files.id.clone()
        };
        let info = ModelInfo {
            id,
            weights_sha256: sha,
            dim: files.dense.last().map_or(backend.dim(), |d| d.out_features),
            pooling: files.pooling,
            max_seq_length,
            precision: Precision::F32,
            document_prompt: files.prompts.for_role(Role::Document),
        };
        Ok(Embedder {
            tokenizer,
            backend,
            info,
            pad_id: cfg.pad_token_id.unwrap_or(0),
            limits,
            dense: files.dense.clone(),
            query_prompt: files.prompts.for_role(Role::Query),
            plain_prompt: files.prompts.for_role(Role::Plain),
            prompts: files.prompts.clone(),
        })
    }

    /// What a library records about this model (id, digest, dim, pooling, ...).
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's prompts (`config_sentence_transformers.json`).
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// The prompt texts of `role` get: the model's default for the role
    /// (see [`prompts`]) unless [`set_prompt`](Self::set_prompt) changed it.
    pub fn prompt(&self, role: Role) -> Option<&Prompt> {
        match role {
            Role::Query => self.query_prompt.as_ref(),
            Role::Document => self.info.document_prompt.as_ref(),
            Role::Plain => self.plain_prompt.as_ref(),
        }
    }

    /// Makes texts of `role` get `prompt` (None: no prompt). The document
    /// prompt is part of [`info`](Self::info), which a library records.
    pub fn set_prompt(&mut self, role: Role, prompt: Option<Prompt>) {
        // An empty prompt is no prompt, as in sentence-transformers.
        let prompt = prompt.filter(|p| !p.text.is_empty());
        match role {
            Role::Query => self.query_prompt = prompt,
            Role::Document => self.info.document_prompt = prompt,
            Role::Plain => self.plain_prompt = prompt,
        }
    }

    /// Gives every role the model's prompt called `name` (`--prompt NAME`);
    /// an unknown name is an error listing the model's prompt names.
    pub fn override_prompt(&mut self, name: &str) -> Result<(), EmbedError> {
        let p = self.prompts.named(name)?;
        for role in [Role::Query, Role::Document, Role::Plain] {
            self.set_prompt(role, Some(p.clone()));
        }
        Ok(())
    }

    /// `texts` as the model sees them in `role`: with its prompt in front.
    pub fn prompted(&self, role: Role, texts: &[&str]) -> Vec<String> {
        match self.prompt(role) {
            Some(p) => texts.iter().map(|t| p.apply(t)).collect(),
            None => texts.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// [`embed`](Self::embed) of `texts` with `role`'s prompt in front.
    pub fn embed_as(
        &self,
        role: Role,
        texts: &[&str],
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<f32>, EmbedStats), EmbedError> {
        if self.prompt(role).is_none() {
            return self.embed(texts, progress);
        }
        let owned = self.prompted(role, texts);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.embed(&refs, progress)
    }

    /// The backend's device, for reports ("cpu", "cuda:0").
    pub fn device_name(&self) -> String {
        self.backend.device_name()
    }

    /// The current batching limits (the device's default until changed).
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// Replaces the batching limits used by later [`embed`](Self::embed) calls.
    pub fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// Token ids of each text, special tokens included, truncated.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Each text's tokens as the model sees them (truncated to its window),
    /// with byte offsets into the text; `special` tokens (`[CLS]`, `[SEP]`)
    /// have no span. `add_special` false leaves them out.
    pub fn token_spans(
        &self,
        texts: &[&str],
        add_special: bool,
    ) -> Result<Vec<Vec<TokenSpan>>, EmbedError> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), add_special)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc
            .iter()
            .zip(texts)
            .map(|(e, text)| {
                e.get_ids()
                    .iter()
                    .zip(e.get_tokens())
                    .zip(e.get_offsets())
                    .zip(e.get_special_tokens_mask())
                    .map(|(((&id, token), &(start, stop)), &special)| {
                        let special = special == 1;
                        let span = text.get(start..stop).filter(|_| !special);
                        TokenSpan {
                            id,
                            text: span.map_or_else(|| token.clone(), str::to_string),
                            special,
                            start: span.map(|_| start),
                            stop: span.map(|_| stop),
                        }
                    })
                    .collect()
            })
            .collect())
    }

    /// Per text: the tokens it is embedded with (special tokens included,
    /// after truncation) and whether truncation cut it. The server uses it to
    /// enforce per-input limits and report usage before queueing any work.
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<(usize, bool)>, EmbedError> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc
            .iter()
            .map(|e| (e.len(), !e.get_overflowing().is_empty()))
            .collect())
    }

    /// Embeds `texts` as given (no prompt: see [`embed_as`](Self::embed_as)),
    /// returning `texts.len() * dim` floats in input order.
    /// Each row is unit length, or, if the model produced a zero or
    /// non-finite vector, left as is: callers check with [`is_unit`].
    /// `progress` is called with the number of texts each finished batch held.
    pub fn embed(
        &self,
        texts: &[&str],
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<f32>, EmbedStats), EmbedError> {
        let dim = self.info.dim;
        let mut out = vec![0f32; texts.len() * dim];
        let stats = self.run_batches(texts, progress, &mut |rows, _, tb, hidden| {
            let pooled = self.pool_texts(tb, hidden);
            for (k, &row) in rows.iter().enumerate() {
                out[row * dim..(row + 1) * dim].copy_from_slice(&pooled[k * dim..(k + 1) * dim]);
            }
            Ok(())
        })?;
        Ok((out, stats))
    }

    /// Tokenizes `texts` (a chunk at a time), runs them through the backend
    /// in length-sorted batches under the token budget, and hands each batch
    /// to `each`: its texts' indexes into `texts`, their encodings, the
    /// padded batch and its last hidden states (`[batch, seq, backend dim]`).
    fn run_batches(
        &self,
        texts: &[&str],
        progress: &dyn Fn(usize),
        each: &mut EachBatch,
    ) -> Result<EmbedStats, EmbedError> {
        let mut stats = EmbedStats::default();
        let start = Instant::now();
        for (c, chunk) in texts.chunks(TOKENIZE_CHUNK).enumerate() {
            let enc = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            let lengths: Vec<usize> = enc.iter().map(Encoding::len).collect();
            for b in batch::plan(&lengths, self.limits) {
                let rows: Vec<&[u32]> = b.iter().map(|&i| enc[i].get_ids()).collect();
                let tb = TokenBatch::pad(&rows, self.pad_id);
                let hidden = self.backend.forward(&tb)?;
                let indexes: Vec<usize> = b.iter().map(|&i| c * TOKENIZE_CHUNK + i).collect();
                let encodings: Vec<&Encoding> = b.iter().map(|&i| &enc[i]).collect();
                each(&indexes, &encodings, &tb, &hidden)?;
                stats.tokens += rows.iter().map(|r| r.len()).sum::<usize>();
                stats.padded_tokens += tb.batch * tb.seq;
                stats.batches += 1;
                progress(b.len());
            }
        }
        stats.docs = texts.len();
        stats.seconds = start.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// One embedding per text of a batch: pooled under the mask, then
    /// [`finish`](Self::finish)ed.
    fn pool_texts(&self, tb: &TokenBatch, hidden: &[f32]) -> Vec<f32> {
        let raw = self
            .info
            .pooling
            .pool_raw(hidden, &tb.mask, tb.seq, self.backend.dim());
        self.finish(raw)
    }

    /// Pooled rows of the backend's width → embeddings: the model's Dense
    /// layers, if any, then L2 normalisation of each row (a zero or
    /// non-finite row is left as is).
    fn finish(&self, mut x: Vec<f32>) -> Vec<f32> {
        for d in &self.dense {
            x = d.apply(&x);
        }
        x.chunks_mut(self.info.dim.max(1)).for_each(|v| {
            normalize(v);
        });
        x
    }
}

fn read_tokenizer(files: &ModelFiles) -> Result<Tokenizer, EmbedError> {
    Tokenizer::from_file(&files.tokenizer).map_err(|e| EmbedError::BadModelFile {
        path: files.tokenizer.clone(),
        reason: e.to_string(),
    })
}

/// True when `v` is finite and of unit length (within f32 rounding): the only
/// vectors that may enter a library.
pub fn is_unit(v: &[f32]) -> bool {
    let n: f32 = v.iter().map(|x| x * x).sum();
    n.is_finite() && (n - 1.0).abs() < 1e-3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_is_recorded_only_when_not_f32() {
        // A manifest written before precisions existed opens as f32 ...
        let old =
            r#"{"id":"m","weights_sha256":"ab","dim":384,"pooling":"mean","max_seq_length":256}"#;
        let info: ModelInfo = serde_json::from_str(old).unwrap();
        assert_eq!(info.precision, Precision::F32);
        // ... without a document prompt, as it was embedded ...
        assert_eq!(info.document_prompt, None);
        // ... and re-serialises byte for byte (the manifest checksum is
        // taken over its re-serialisation).
        assert_eq!(serde_json::to_string(&info).unwrap(), old);
        let prompted = ModelInfo {
            document_prompt: Some(Prompt {
                name: "passage".into(),
                text: "passage: ".into(),
            }),
            ..info.clone()
        };
        let text = serde_json::to_string(&prompted).unwrap();
        assert!(
            text.contains(r#""document_prompt":{"name":"passage","text":"passage: "}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ModelInfo>(&text).unwrap(), prompted);
        // Checkpoints: keyed by the weights alone without a prompt (old
        // checkpoints resume), by weights and prompt with one.
        assert_eq!(info.checkpoint_key(), "ab");
        let key = prompted.checkpoint_key();
        assert_eq!(key.len(), 64);
        assert_ne!(key, info.checkpoint_key());
        let int8 = ModelInfo {
            precision: Precision::Int8,
            ..info
        };
        let text = serde_json::to_string(&int8).unwrap();
        assert!(text.contains(r#""precision":"int8""#), "{text}");
        assert_eq!(serde_json::from_str::<ModelInfo>(&text).unwrap(), int8);
    }

    #[test]
    fn precisions_parse() {
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!("int8".parse::<Precision>().unwrap(), Precision::Int8);
        assert_eq!("f16".parse::<Precision>().unwrap(), Precision::F16);
        let err = "int4".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("f32, int8, bf16 or f16"), "{err}");
    }
}
