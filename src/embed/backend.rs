//! Model execution, behind a small trait so batching and pooling never see
//! candle, and a second backend (CUDA, int8, a test double) slots in.

use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::bert::{BertEncoder, Config};

use super::model::{read_json, weight_prefixes, ModelFiles};
use super::{EmbedError, Precision};

/// One padded forward pass, flattened row-major: `batch * seq` entries each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids; padding slots hold the model's pad id.
    pub ids: Vec<u32>,
    /// Segment (token type) ids: all 0, since every text is a single segment.
    pub type_ids: Vec<u32>,
    /// Attention mask: 1 for a real token, 0 for padding.
    pub mask: Vec<u32>,
    /// Number of texts (rows).
    pub batch: usize,
    /// Padded length of every row: the longest text's token count.
    pub seq: usize,
}

impl TokenBatch {
    /// Pads `rows` (token ids of each text) to the longest with `pad_id`.
    pub fn pad(rows: &[&[u32]], pad_id: u32) -> Self {
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut b = TokenBatch {
            ids: Vec::with_capacity(rows.len() * seq),
            type_ids: vec![0; rows.len() * seq],
            mask: Vec::with_capacity(rows.len() * seq),
            batch: rows.len(),
            seq,
        };
        for r in rows {
            b.ids.extend_from_slice(r);
            b.ids.resize(b.ids.len() + seq - r.len(), pad_id);
            b.mask.extend(std::iter::repeat_n(1, r.len()));
            b.mask.extend(std::iter::repeat_n(0, seq - r.len()));
        }
        b
    }
}

/// Runs the transformer: token batch in, last hidden states out
/// (`[batch, seq, dim]`, row-major f32).
pub trait Backend: Send + Sync {
    /// Runs one padded batch; returns `batch.batch * batch.seq * self.dim()`
    /// floats, padding positions included (pooling masks them out).
    fn forward(&self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError>;
    /// Width of the hidden states, hence of the embeddings (384 for MiniLM-L6).
    fn dim(&self) -> usize;
    /// Human-readable device name for reports ("cpu", "cuda:0").
    fn device_name(&self) -> String;
}

/// Where the forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (`--device cpu`, the default).
    #[default]
    Cpu,
    /// The CUDA GPU with this 0-based ordinal (`cuda` or `cuda:N`); needs a
    /// build with the `cuda` feature.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = EmbedError;
    fn from_str(s: &str) -> Result<Self, EmbedError> {
        let bad = || EmbedError::BadDevice(format!("{s:?}: expected cpu, cuda or cuda:N"));
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    fn open(&self) -> Result<Device, EmbedError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(n) => Device::new_cuda(*n).map_err(|e| {
                // candle's error is the driver's code (CUDA_ERROR_NO_DEVICE,
                // CUDA_ERROR_INVALID_DEVICE, ...); say what to check.
                EmbedError::BadDevice(format!(
                    "cuda:{n} is not usable: {e}; `nvidia-smi -L` lists the GPUs this \
                     machine's driver sees, numbered from 0"
                ))
            }),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(n) => Err(EmbedError::BadDevice(format!(
                "cuda:{n} asked for, but this papersim was built without CUDA; \
                 rebuild with `cargo build --release --features cuda`"
            ))),
        }
    }
}

/// candle's forward pass for the model's `model_type`: MPNet's own
/// ([`super::candle_mpnet::CandleMpnet`]), else BERT's.
pub fn load_candle(
    files: &ModelFiles,
    spec: DeviceSpec,
    precision: Precision,
) -> Result<Box<dyn Backend>, EmbedError> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        model_type: Option<String>,
    }
    let t: TypeOnly = read_json(&files.config)?;
    Ok(match t.model_type.as_deref() {
        Some("mpnet") => Box::new(super::candle_mpnet::CandleMpnet::load(
            files, spec, precision,
        )?),
        _ => Box::new(CandleBert::load(files, spec, precision)?),
    })
}

/// candle's BERT (the encoder layers of candle-transformers' BertModel),
/// f32, or f16 on CUDA.
///
/// Embeddings and the attention mask are ours, not BertModel's: BertModel
/// masks with `(1 - mask) * f32::MIN` cast to the model's dtype, which in
/// f16 is `0 * -inf` = NaN on every real token, so every f16 vector came out
/// NaN. Here the mask uses the dtype's own lowest finite value, as
/// transformers does (`torch.finfo(dtype).min`); in f32 that is the same
/// f32::MIN, so f32 results are unchanged to the bit.
pub struct CandleBert {
    embeddings: Embeddings,
    encoder: BertEncoder,
    dtype: DType,
    device: Device,
    spec: DeviceSpec,
    dim: usize,
}

/// Word + token type + position embeddings, then LayerNorm (BERT's
/// absolute positions, as BertModel computes them).
struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
    /// Position id of the first token: `pad_token_id + 1` for RoBERTa and
    /// XLM-R, 0 for BERT.
    pos_offset: u32,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let table = |n: usize, name: &str| candle_nn::embedding(n, c.hidden_size, vb.pp(name));
        Ok(Embeddings {
            words: table(c.vocab_size, "word_embeddings")?,
            positions: table(c.max_position_embeddings, "position_embeddings")?,
            token_types: table(c.type_vocab_size, "token_type_embeddings")?,
            norm: candle_nn::layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
            pos_offset: if super::modules::offsets_positions(c.model_type.as_deref()) {
                c.pad_token_id as u32 + 1
            } else {
                0
            },
        })
    }

    fn forward(&self, ids: &Tensor, types: &Tensor) -> candle_core::Result<Tensor> {
        let seq = ids.dim(1)?;
        let o = self.pos_offset;
        let positions = Tensor::arange(o, o + seq as u32, ids.device())?;
        let x = (self.words.forward(ids)? + self.token_types.forward(types)?)?;
        let x = x.broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&x)
    }
}

/// The additive attention mask, `(batch, 1, 1, seq)`: 0 on real tokens, the
/// dtype's lowest finite value on padding.
pub(super) fn additive_mask(mask: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    let lowest = match dtype {
        DType::F16 => half::f16::MIN.to_f64(),
        DType::BF16 => half::bf16::MIN.to_f64(),
        _ => f32::MIN as f64,
    };
    let mask = mask.unsqueeze(1)?.unsqueeze(1)?.to_dtype(DType::F32)?;
    // 1 - mask is 0 or 1, so the product is exactly 0 or `lowest`.
    ((1.0 - mask)? * lowest)?.to_dtype(dtype)
}

impl CandleBert {
    /// Loads the model at `precision`: f32 anywhere, f16 on any device
    /// (Embedder allows it on CUDA only: on this CPU it was 2-2.5x slower
    /// than f32; the tests run it on the CPU to check its arithmetic).
    /// int8 is CpuBert's.
    pub fn load(
        files: &ModelFiles,
        spec: DeviceSpec,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        let dtype = candle_dtype(precision, spec, "BERT")?;
        let config: Config = read_json(&files.config)?;
        let (device, vb) = open_weights(files, spec, dtype, config.model_type.as_deref())?;
        let model_err = weights_error(files);
        let embeddings = Embeddings::load(vb.pp("embeddings"), &config).map_err(model_err)?;
        let encoder = BertEncoder::load(vb.pp("encoder"), &config).map_err(model_err)?;
        Ok(CandleBert {
            embeddings,
            encoder,
            dtype,
            device,
            spec,
            dim: config.hidden_size,
        })
    }
}

/// candle's dtype for `precision` (int8 is CpuBert's alone).
pub(super) fn candle_dtype(
    precision: Precision,
    spec: DeviceSpec,
    model: &str,
) -> Result<DType, EmbedError> {
    match precision {
        Precision::F32 => Ok(DType::F32),
        Precision::F16 => Ok(DType::F16),
        Precision::Bf16 => Ok(DType::BF16),
        Precision::Int8 => Err(EmbedError::BadPrecision(format!(
            "{precision} is not available on {spec} with candle's {model}"
        ))),
    }
}

/// A candle error while reading the model's weights, as the file's error.
pub(super) fn weights_error(
    files: &ModelFiles,
) -> impl Fn(candle_core::Error) -> EmbedError + Copy + '_ {
    |e| EmbedError::BadModelFile {
        path: files.weights.clone(),
        reason: e.to_string(),
    }
}

/// Opens the device and the weights at `dtype`, under the prefix the file
/// uses for `model_type` (bare names, `bert.`, `<model_type>.`).
pub(super) fn open_weights(
    files: &ModelFiles,
    spec: DeviceSpec,
    dtype: DType,
    model_type: Option<&str>,
) -> Result<(Device, VarBuilder<'static>), EmbedError> {
    let device = spec.open()?;
    let weights = read_file(&files.weights)?;
    let vb = VarBuilder::from_buffered_safetensors(weights, dtype, &device)
        .map_err(weights_error(files))?;
    let prefix = weight_prefixes(model_type)
        .into_iter()
        .find(|p| vb.contains_tensor(&format!("{p}embeddings.word_embeddings.weight")));
    let vb = match prefix.as_deref().and_then(|p| p.strip_suffix('.')) {
        Some(p) => vb.pp(p),
        None => vb,
    };
    Ok((device, vb))
}

fn read_file(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Backend for CandleBert {
    fn forward(&self, b: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        let shape = (b.batch, b.seq);
        let t = |v: &[u32]| Tensor::from_slice(v, shape, &self.device);
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = t(&b.ids)?;
            let types = t(&b.type_ids)?;
            let mask = additive_mask(&t(&b.mask)?, self.dtype)?;
            let x = self.embeddings.forward(&ids, &types)?;
            let hidden = self.encoder.forward(&x, &mask)?;
            hidden.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        run().map_err(|e| EmbedError::Forward(e.to_string()))
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn device_name(&self) -> String {
        self.spec.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_right_pads_and_masks() {
        let b = TokenBatch::pad(&[&[101, 7, 102], &[101, 102]], 0);
        assert_eq!(b.ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(b.mask, vec![1, 1, 1, 1, 1, 0]);
        assert_eq!(b.type_ids, vec![0; 6]);
        assert_eq!((b.batch, b.seq), (2, 3));
    }

    #[test]
    fn device_specs_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
