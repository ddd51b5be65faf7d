//! Model execution, behind a small trait so batching and pooling never see
//! candle, and a second backend (CUDA, int8, a test double) slots in.

use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use super::model::{read_json, ModelFiles};
use super::{EmbedError, Precision};

/// One padded forward pass, flattened row-major: `batch * seq` entries each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub batch: usize,
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
    fn forward(&self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError>;
    fn dim(&self) -> usize;
    /// Human-readable device name for reports ("cpu", "cuda:0").
    fn device_name(&self) -> String;
}

/// Where the forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
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
            DeviceSpec::Cuda(n) => Device::new_cuda(*n)
                .map_err(|e| EmbedError::BadDevice(format!("cuda:{n} is not usable: {e}"))),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(n) => Err(EmbedError::BadDevice(format!(
                "cuda:{n} asked for, but this papersim was built without CUDA; \
                 rebuild with `cargo build --release --features cuda`"
            ))),
        }
    }
}

/// candle's BERT (BertModel from candle-transformers), f32 (or f16 on CUDA).
pub struct CandleBert {
    model: BertModel,
    device: Device,
    spec: DeviceSpec,
    dim: usize,
}

impl CandleBert {
    pub fn load(
        files: &ModelFiles,
        spec: DeviceSpec,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        // f16 on CUDA only: on this CPU it was 2-2.5x slower than f32.
        // Unverified (no GPU here): candle's BERT adds f32::MIN to masked
        // scores, -inf in f16, so check padded batches for NaN on a GPU.
        // int8 is CpuBert's.
        let dtype = match (spec, precision) {
            (_, Precision::F32) => DType::F32,
            (DeviceSpec::Cuda(_), Precision::F16) => DType::F16,
            _ => {
                return Err(EmbedError::BadPrecision(format!(
                    "{precision} is not available on {spec} with candle's BERT"
                )))
            }
        };
        let config: Config = read_json(&files.config)?;
        let device = spec.open()?;
        let weights = read_file(&files.weights)?;
        let model_err = |e: candle_core::Error| EmbedError::BadModelFile {
            path: files.weights.clone(),
            reason: e.to_string(),
        };
        let vb =
            VarBuilder::from_buffered_safetensors(weights, dtype, &device).map_err(model_err)?;
        let model = BertModel::load(vb, &config).map_err(model_err)?;
        Ok(CandleBert {
            model,
            device,
            spec,
            dim: config.hidden_size,
        })
    }
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
            let mask = t(&b.mask)?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
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
