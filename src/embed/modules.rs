//! What a sentence-transformers directory's `modules.json` lists, and the
//! architectures papersim's forward passes run: anything else is refused by
//! name rather than embedded wrongly.

use std::path::Path;

use serde::Deserialize;

use super::model::{pooling_from_config, read_json};
use super::pooling::Pooling;
use super::EmbedError;

/// `model_type`s of `config.json` the forward passes run: BERT itself, the
/// RoBERTa family (same layers; positions start after `pad_token_id`), and
/// MPNet (RoBERTa's positions, no token types, a relative-position bias in
/// attention).
pub const SUPPORTED_MODEL_TYPES: [&str; 4] = ["bert", "roberta", "xlm-roberta", "mpnet"];

/// True for the model types whose position ids start at `pad_token_id + 1`.
pub fn offsets_positions(model_type: Option<&str>) -> bool {
    matches!(model_type, Some("roberta" | "xlm-roberta" | "mpnet"))
}

/// Refuses a `config.json` whose `model_type` is not one of
/// [`SUPPORTED_MODEL_TYPES`] (absent means BERT, as old configs are).
pub fn check_model_type(config: &Path) -> Result<(), EmbedError> {
    #[derive(Deserialize)]
    struct C {
        model_type: Option<String>,
    }
    let c: C = read_json(config)?;
    match c.model_type.as_deref() {
        None => Ok(()),
        Some(t) if SUPPORTED_MODEL_TYPES.contains(&t) => Ok(()),
        Some(t) => Err(EmbedError::BadModelFile {
            path: config.to_path_buf(),
            reason: format!(
                "model_type {t:?} is not supported: papersim runs these encoders: {}",
                SUPPORTED_MODEL_TYPES.join(", ")
            ),
        }),
    }
}

/// A `sentence_transformers.models.Dense` layer: `activation(W x + b)`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Width of its input.
    pub in_features: usize,
    /// Width of its output.
    pub out_features: usize,
    /// `out_features` rows of `in_features` weights.
    pub weight: Vec<f32>,
    /// `out_features` biases, when the layer has them.
    pub bias: Option<Vec<f32>>,
    /// Applied element-wise to the output.
    pub activation: Activation,
}

/// A Dense layer's `activation_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `torch.nn.modules.linear.Identity`.
    Identity,
    /// `torch.nn.modules.activation.Tanh`.
    Tanh,
}

impl Dense {
    /// Applies the layer to `rows` vectors of `in_features` floats.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.in_features.max(1);
        let mut out = vec![0f32; rows * self.out_features];
        for (xi, oi) in x
            .chunks(self.in_features)
            .zip(out.chunks_mut(self.out_features))
        {
            for (o, (w, v)) in oi
                .iter_mut()
                .zip(self.weight.chunks(self.in_features).zip(0..))
            {
                let mut acc: f32 = w.iter().zip(xi).map(|(a, b)| a * b).sum();
                if let Some(b) = &self.bias {
                    acc += b[v];
                }
                *o = match self.activation {
                    Activation::Identity => acc,
                    Activation::Tanh => acc.tanh(),
                };
            }
        }
        out
    }

    fn load(dir: &Path) -> Result<Self, EmbedError> {
        #[derive(Deserialize)]
        struct C {
            in_features: usize,
            out_features: usize,
            #[serde(default = "yes")]
            bias: bool,
            #[serde(default = "tanh")]
            activation_function: String,
        }
        fn yes() -> bool {
            true
        }
        fn tanh() -> String {
            "torch.nn.modules.activation.Tanh".into()
        }
        let cfg_path = dir.join("config.json");
        let c: C = read_json(&cfg_path)?;
        let activation = match c.activation_function.as_str() {
            "torch.nn.modules.activation.Tanh" => Activation::Tanh,
            "torch.nn.modules.linear.Identity" => Activation::Identity,
            other => {
                return Err(EmbedError::BadModelFile {
                    path: cfg_path,
                    reason: format!(
                        "activation_function {other:?} is not supported (Tanh and Identity are)"
                    ),
                })
            }
        };
        let path = dir.join("model.safetensors");
        let bad = |reason: String| EmbedError::BadModelFile {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|source| EmbedError::Io {
            path: path.clone(),
            source,
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, EmbedError> {
            let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(bad(format!(
                    "{name}: want f32 {shape:?}, found {:?} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let weight = tensor("linear.weight", &[c.out_features, c.in_features])?;
        let bias = if c.bias {
            Some(tensor("linear.bias", &[c.out_features])?)
        } else {
            None
        };
        Ok(Dense {
            in_features: c.in_features,
            out_features: c.out_features,
            weight,
            bias,
            activation,
        })
    }
}

/// What `modules.json` asks for after the transformer.
#[derive(Debug, Default)]
pub struct Modules {
    /// The Pooling module's mode, when listed.
    pub pooling: Option<Pooling>,
    /// Dense layers after pooling, in order.
    pub dense: Vec<Dense>,
}

/// Reads `dir/modules.json` (a directory without one is a bare transformer,
/// pooled as [`super::model::from_dir`] decides). Transformer, Pooling,
/// Dense and Normalize are applied; any other module is refused with its
/// type and the file. Vectors are always L2-normalised, Normalize listed or
/// not: papersim ranks by cosine, which normalising does not change.
pub fn read(dir: &Path) -> Result<Modules, EmbedError> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        path: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(Modules::default());
    }
    let entries: Vec<Entry> = read_json(&path)?;
    let bad = |reason: String| EmbedError::BadModelFile {
        path: path.clone(),
        reason,
    };
    let mut m = Modules::default();
    for (i, e) in entries.iter().enumerate() {
        let kind = e.kind.strip_prefix("sentence_transformers.models.");
        match kind {
            Some("Transformer") if i == 0 && e.path.is_empty() => {}
            Some("Transformer") => {
                return Err(bad(format!(
                    "a Transformer module must come first with path \"\" (found {:?} at {i})",
                    e.path
                )))
            }
            Some("Pooling") if m.pooling.is_none() && m.dense.is_empty() => {
                m.pooling = Some(pooling_from_config(&dir.join(&e.path).join("config.json"))?);
            }
            Some("Dense") if m.pooling.is_some() => m.dense.push(Dense::load(&dir.join(&e.path))?),
            Some("Normalize") => {}
            _ if i == 0 => {
                return Err(bad(format!(
                    "module type {:?} is not supported: the first module must be \
                     sentence_transformers.models.Transformer",
                    e.kind
                )))
            }
            Some("Pooling" | "Dense") => {
                return Err(bad(format!(
                    "module {:?} at position {i} is out of order (Transformer, Pooling, \
                     Dense..., Normalize)",
                    e.kind
                )))
            }
            _ => {
                return Err(bad(format!(
                    "module type {:?} is not supported (Transformer, Pooling, Dense and \
                     Normalize are)",
                    e.kind
                )))
            }
        }
    }
    for w in m.dense.windows(2) {
        if w[0].out_features != w[1].in_features {
            return Err(bad(format!(
                "Dense layers do not chain: {} outputs into {} inputs",
                w[0].out_features, w[1].in_features
            )));
        }
    }
    Ok(m)
}
