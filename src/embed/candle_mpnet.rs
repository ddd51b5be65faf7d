//! MPNet on candle, for CUDA (f32 or f16) and as the CPU reference under
//! `PAPERSIM_BACKEND=candle`: candle-transformers has no MPNet, so this is
//! transformers' `MPNetModel` (as sentence-transformers runs it) written in
//! candle's ops: RoBERTa's embeddings without token types, then BERT's
//! layers under MPNet's tensor names, with the relative-position bias of
//! [`super::mpnet`] added to every attention score.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use super::backend::{
    additive_mask, candle_dtype, open_weights, weights_error, Backend, DeviceSpec, TokenBatch,
};
use super::model::{read_json, ModelFiles};
use super::mpnet::RelativeBias;
use super::{EmbedError, Precision};

/// The fields of MPNet's config.json this forward pass needs.
#[derive(Debug, Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    layer_norm_eps: f64,
    #[serde(default = "thirty_two")]
    relative_attention_num_buckets: usize,
    #[serde(default = "one")]
    pad_token_id: u32,
}

fn thirty_two() -> usize {
    32
}

fn one() -> u32 {
    1
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln1: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ln2: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let lin = |i, o, name: &str| candle_nn::linear(i, o, vb.pp(name));
        let ln = |name: &str| candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp(name));
        Ok(Layer {
            q: lin(h, h, "attention.attn.q")?,
            k: lin(h, h, "attention.attn.k")?,
            v: lin(h, h, "attention.attn.v")?,
            o: lin(h, h, "attention.attn.o")?,
            ln1: ln("attention.LayerNorm")?,
            ffn_in: lin(h, c.intermediate_size, "intermediate.dense")?,
            ffn_out: lin(c.intermediate_size, h, "output.dense")?,
            ln2: ln("output.LayerNorm")?,
        })
    }

    /// `x`: (batch, seq, hidden); `bias`: (1, heads, seq, seq), the
    /// relative-position bias plus nothing else; `mask`: (batch, 1, 1, seq).
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        mask: &Tensor,
        heads: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let hd = h / heads;
        let split = |t: Tensor| t.reshape((b, s, heads, hd))?.transpose(1, 2)?.contiguous();
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        // transformers' order: scale, then the bias, then the mask.
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let scores = scores.broadcast_add(bias)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?;
        let ctx = ctx.reshape((b, s, h))?;
        let x = self.ln1.forward(&(self.o.forward(&ctx)? + x)?)?;
        let inter = self.ffn_in.forward(&x)?.gelu_erf()?;
        self.ln2.forward(&(self.ffn_out.forward(&inter)? + x)?)
    }
}

/// MPNet's encoder on candle.
pub struct CandleMpnet {
    words: Embedding,
    positions: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    rel: RelativeBias,
    heads: usize,
    pos_offset: u32,
    dtype: DType,
    device: Device,
    spec: DeviceSpec,
    dim: usize,
}

impl CandleMpnet {
    /// Loads MPNet at `precision` (f32, or f16/bf16 where candle runs them).
    pub fn load(
        files: &ModelFiles,
        spec: DeviceSpec,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        let dtype = candle_dtype(precision, spec, "MPNet")?;
        let c: Config = read_json(&files.config)?;
        if c.hidden_act != "gelu" {
            return Err(EmbedError::BadModelFile {
                path: files.config.clone(),
                reason: format!(
                    "hidden_act {:?} is not supported for MPNet (gelu is)",
                    c.hidden_act
                ),
            });
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(EmbedError::BadModelFile {
                path: files.config.clone(),
                reason: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    c.hidden_size, c.num_attention_heads
                ),
            });
        }
        let (device, vb) = open_weights(files, spec, dtype, Some("mpnet"))?;
        let model_err = weights_error(files);
        let load = || -> candle_core::Result<_> {
            let e = vb.pp("embeddings");
            let h = c.hidden_size;
            let words = candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?;
            let positions =
                candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?;
            let emb_norm = candle_nn::layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?;
            let enc = vb.pp("encoder");
            let layers = (0..c.num_hidden_layers)
                .map(|i| Layer::load(enc.pp(format!("layer.{i}")), &c))
                .collect::<candle_core::Result<Vec<_>>>()?;
            // The bias table is read in f32 whatever the dtype: buckets are
            // looked up on the host, once per batch.
            let table = enc
                .get(
                    (c.relative_attention_num_buckets, c.num_attention_heads),
                    "relative_attention_bias.weight",
                )?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            Ok((words, positions, emb_norm, layers, table))
        };
        let (words, positions, emb_norm, layers, table) = load().map_err(model_err)?;
        Ok(CandleMpnet {
            words,
            positions,
            emb_norm,
            layers,
            rel: RelativeBias::new(
                table,
                c.relative_attention_num_buckets,
                c.num_attention_heads,
            ),
            heads: c.num_attention_heads,
            pos_offset: c.pad_token_id + 1,
            dtype,
            device,
            spec,
            dim: c.hidden_size,
        })
    }
}

impl Backend for CandleMpnet {
    fn forward(&self, b: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        let shape = (b.batch, b.seq);
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = Tensor::from_slice(&b.ids, shape, &self.device)?;
            let mask = Tensor::from_slice(&b.mask, shape, &self.device)?;
            let mask = additive_mask(&mask, self.dtype)?;
            // Right-padded rows: a real token's position is its index, as
            // transformers' cumulative-sum positions give.
            let o = self.pos_offset;
            let pos = Tensor::arange(o, o + b.seq as u32, &self.device)?;
            let x = self.words.forward(&ids)?;
            let x = x.broadcast_add(&self.positions.forward(&pos)?)?;
            let mut x = self.emb_norm.forward(&x)?;
            // Computed once per batch (every row has the padded length, as
            // transformers computes it) and shared by all layers.
            let bias = Tensor::from_vec(
                self.rel.dense(b.seq),
                (1, self.heads, b.seq, b.seq),
                &self.device,
            )?
            .to_dtype(self.dtype)?;
            for l in &self.layers {
                x = l.forward(&x, &bias, &mask, self.heads)?;
            }
            x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
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
