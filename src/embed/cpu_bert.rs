//! A BERT encoder written for the CPU: the same maths as candle's `BertModel`
//! (and sentence-transformers), ~2.5x its throughput on the 2-core AVX2 dev
//! box: 20-21.7 docs/s against 8.0-8.1 on arXiv abstracts (~240 tokens),
//! 10.2-11.5 against 5.0-5.2 on one thread.
//!
//! Where candle's time went, and what this does instead:
//! - Matmuls (~half of candle's time, ~55 GFLOP/s a core through the `gemm`
//!   crate, which packs both operands on every call). Here activations are
//!   kept feature-major (`[feature][token]`, tokens padded to whole 16-token
//!   panels, see [`Cols`]), weights are packed once at load, and one AVX2+FMA 6x16
//!   register-tile kernel does every product (6 output features x 16 tokens
//!   per tile), 75-85 GFLOP/s a core: no operand is repacked per call (K is
//!   read in place, V is a small copy), and bias, residual, GELU and the
//!   softmax max and normaliser are taken from the tile while it is in
//!   registers. Q, K and V come from one fused [3*hidden, hidden] product.
//! - erf and exp through libm, one scalar call per element (~20%): replaced by
//!   vectorised rational/polynomial approximations (erf within 1e-7 absolute,
//!   exp within 2 ulp). With tokens along SIMD lanes, softmax and LayerNorm
//!   run down the columns: no horizontal reductions.
//! - Tensor bookkeeping, padding and fresh allocations (~20%: op dispatch, page
//!   zeroing): buffers are pooled and kept across layers, texts and calls,
//!   and only real tokens are computed: a text's tokens are gathered by its
//!   mask, attention runs over real keys only, and padded rows come back zero
//!   (every pooling mode masks them).
//! - Threads: a rayon pool of its own. Texts are tasks, so workers run whole
//!   texts single-threaded while there are enough of them; each product's row
//!   blocks and each attention head are tasks too, which an idle worker
//!   steals from the last texts of a batch (or from a batch of one).
//!
//! What remains (perf, the 300-abstract build on two threads): 82% in the
//! kernel's inner loop, 9% in tile epilogues (a third of it GELU, in f64 for
//! accuracy; the rest C's reloads), 4% softmax's exp, 0.5% LayerNorm.
//!
//! With [`Precision::Int8`] the four dense layers run on int8 weights and
//! 12-bit per-token activations through an integer kernel ([`int8`]);
//! attention, softmax and LayerNorm stay f32.
//!
//! Without AVX2+FMA (other x86 CPUs, other architectures) the same code runs
//! on portable scalar kernels: correct, not fast.

use std::sync::Mutex;

use rayon::prelude::*;
use serde::Deserialize;

use super::backend::{Backend, TokenBatch};
use super::model::{read_json, weight_prefixes, ModelFiles};
use super::{EmbedError, Precision};

mod int8;
mod weights;
use int8::{par_qmatmul, quantize_cols, QBuf, QLinear};
use weights::{Table, Weights, WeightsFile};

/// Rows (output features) and columns (tokens) per register tile: 6x16 = 12
/// ymm accumulators, plus 2 for B and 1 for the broadcast A value (AVX2 has 16).
const MR: usize = 6;
const NR: usize = 16;
/// Depth of one pass over K: a B panel of KC x 16 tokens (24 KiB) stays in
/// L1 while every weight tile of the block streams past it from L2. 384 (one
/// pass for hidden-size K) measured ~7% faster than 256, on par with 512:
/// fewer passes re-read and re-store C.
const KC: usize = 384;
/// Output features per block: MC x KC packed weights (288 KiB) stay in L2
/// while all token panels pass.
const MC: usize = 192;

/// Activation after the intermediate dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    None,
    /// 0.5·x·(1 + erf(x/√2)): BERT's `gelu`.
    GeluErf,
    /// 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))): `gelu_new`, `gelu_pytorch_tanh`.
    GeluTanh,
}

/// The fields of a Hugging Face BERT config.json this encoder needs.
#[derive(Debug, Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    pad_token_id: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    hidden: usize,
    head_dim: usize,
    inter: usize,
    vocab: usize,
    max_pos: usize,
    /// Position id of a text's first token: 0 for BERT, `pad_token_id + 1`
    /// for RoBERTa and XLM-R.
    pos_offset: usize,
    type_vocab: usize,
    eps: f32,
    act: Act,
}

/// Which kernels run. `Avx2Fma` is only built by [`Isa::detect`], after the
/// CPU said it has both features: the `unsafe` calls into
/// `#[target_feature(enable = "avx2,fma")]` functions rely on that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2Fma;
        }
        Isa::Scalar
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
        }
    }
}

/// The left operand of `C = A·B` (M x K): a weight matrix packed at load, or
/// a view of activations. Tile t (rows t*MR..) starts at `data[t * tile_stride]`
/// and holds element (row t*MR + r, k) at `[k * k_stride + r]`: MR values
/// contiguous per k, which the kernel broadcasts one by one.
#[derive(Clone, Copy)]
struct Lhs<'a> {
    data: &'a [f32],
    m: usize,
    k: usize,
    tile_stride: usize,
    k_stride: usize,
}

/// The right operand (K x N): element (k, n) at `data[k * ld + n]`, N a
/// multiple of NR. Always activations, feature-major.
#[derive(Clone, Copy)]
struct Rhs<'a> {
    data: &'a [f32],
    k: usize,
    n: usize,
    ld: usize,
}

impl<'a> Rhs<'a> {
    /// `k` feature rows of token columns `c`.
    fn tokens(data: &'a [f32], k: usize, c: Cols) -> Self {
        Rhs {
            data,
            k,
            n: c.n,
            ld: c.ld,
        }
    }
}

/// A dense layer: W (out x in) packed in MR-row tiles, bias padded to whole tiles.
struct Linear {
    m: usize,
    k: usize,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Packs the `m x k` matrix whose row r is `row(r)` (k values). Whole
    /// rows rather than an element accessor: packing is most of a model's
    /// load, and this way the copy runs with no per-element call, bounds
    /// check or choice of Q, K or V.
    fn pack<'a>(m: usize, k: usize, row: impl Fn(usize) -> &'a [f32], bias: Vec<f32>) -> Self {
        let tiles = m.div_ceil(MR);
        let mut w = vec![0f32; tiles * k * MR];
        let zeros = vec![0f32; k];
        for (t, tile) in w.chunks_exact_mut(k * MR).enumerate() {
            // Rows past m pad the last tile with zeros.
            let rows: [&[f32]; MR] = std::array::from_fn(|r| match t * MR + r {
                i if i < m => &row(i)[..k],
                _ => &zeros[..],
            });
            for (kk, vals) in tile.chunks_exact_mut(MR).enumerate() {
                for (v, src) in vals.iter_mut().zip(&rows) {
                    *v = src[kk];
                }
            }
        }
        let mut bias = bias;
        bias.resize(tiles * MR, 0.0);
        Linear { m, k, w, bias }
    }

    fn lhs(&self) -> Lhs<'_> {
        Lhs {
            data: &self.w,
            m: self.m,
            k: self.k,
            tile_stride: self.k * MR,
            k_stride: MR,
        }
    }
}

/// A dense layer at the precision the encoder was loaded with.
enum Dense {
    F32(Linear),
    Int8(QLinear),
}

impl Dense {
    /// The `m x k` layer whose row r is `row(r)`.
    fn new<'a>(
        precision: Precision,
        m: usize,
        k: usize,
        row: impl Fn(usize) -> &'a [f32],
        bias: Vec<f32>,
    ) -> Self {
        match precision {
            // A K too deep for exact i32 sums (no BERT config has one) stays f32.
            Precision::Int8 if k <= int8::MAX_K => Dense::Int8(QLinear::pack(m, k, row, bias)),
            _ => Dense::F32(Linear::pack(m, k, row, bias)),
        }
    }

    fn bias(&self) -> &[f32] {
        match self {
            Dense::F32(l) => &l.bias,
            Dense::Int8(l) => &l.bias,
        }
    }

    /// `c = act(start + W·x)` over the `k` feature rows of `x`, split
    /// into row-block tasks; int8 quantizes `x` into `q` first.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        isa: Isa,
        x: &[f32],
        k: usize,
        cols: Cols,
        start: Start<'_>,
        act: Act,
        q: &mut QBuf,
        c: &mut [f32],
    ) {
        match self {
            Dense::F32(l) => par_matmul(
                isa,
                l.lhs(),
                Rhs::tokens(x, k, cols),
                start,
                act,
                c,
                cols.ld,
            ),
            Dense::Int8(l) => {
                let xq = quantize_cols(isa, x, k, cols, q);
                par_qmatmul(isa, l, xq, start, act, c, cols.ld)
            }
        }
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    ln1: (Vec<f32>, Vec<f32>),
    ffn_in: Dense,
    ffn_out: Dense,
    ln2: (Vec<f32>, Vec<f32>),
}

/// A growable f32 buffer whose slices start on a 64-byte boundary: with the
/// token stride a multiple of 16, every 16-token row chunk the kernel loads
/// is exactly one cache line.
#[derive(Default)]
struct Buf(Vec<f32>);

impl Buf {
    /// `n` floats (stale contents), 64-byte aligned.
    fn get(&mut self, n: usize) -> &mut [f32] {
        if self.0.len() < n + 16 {
            self.0.resize(n + 16, 0.0);
        }
        let off = self.0.as_ptr().align_offset(64).min(16);
        &mut self.0[off..off + n]
    }
}

/// One text's buffers, pooled and kept across layers, texts and calls:
/// allocating them per op is what made the kernel zero pages under candle.
/// Activations are feature-major, token columns as [`Cols`].
#[derive(Default)]
struct Scratch {
    x: Buf,
    qkv: Buf,
    ctx: Buf,
    inter: Buf,
    cols: Buf,
    rows: Vec<usize>,
    /// The quantized input of the current int8 product.
    q: QBuf,
}

/// One attention head's buffers (heads run in parallel), pooled likewise.
#[derive(Default)]
struct HeadScratch {
    scores: Buf,
    vt: Buf,
    cols: Buf,
}

/// Takes a buffer set from `pool` (or a new one), runs `f`, puts it back.
fn with_pooled<T: Default, R>(pool: &Mutex<Vec<T>>, f: impl FnOnce(&mut T) -> R) -> R {
    let mut t = pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    let r = f(&mut t);
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(t);
    r
}

/// The token columns of the activation buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cols {
    /// Columns computed: the text's tokens rounded up to whole 16-token
    /// panels (the extra columns are finite padding, never read back).
    n: usize,
    /// Row stride: `n`, or `n + 16` when `n / 16` is even. A B panel is KC
    /// rows of one cache line, `ld * 4` bytes apart; with `ld / 16` odd they
    /// spread over all 64 L1 sets and the panel stays in L1 (at 256 tokens,
    /// the common case, they would share 4 sets and stream from L2).
    ld: usize,
}

impl Cols {
    fn for_tokens(tokens: usize) -> Self {
        let n = tokens.div_ceil(NR) * NR;
        let ld = if (n / NR).is_multiple_of(2) {
            n + NR
        } else {
            n
        };
        Cols { n, ld }
    }
}

/// BERT encoder on the CPU, f32, exact GELU: a drop-in [`Backend`] for
/// [`super::CandleBert`] on CPU. Returns zeros at padded positions.
pub struct CpuBert {
    dims: Dims,
    word: Table,
    pos: Vec<f32>,
    typ: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    isa: Isa,
    threads: usize,
    pool: rayon::ThreadPool,
    scratch: Mutex<Vec<Scratch>>,
    head_scratch: Mutex<Vec<HeadScratch>>,
}

impl CpuBert {
    /// Loads config and weights, the dense layers' at `precision` (f32 or
    /// int8). `threads`: the size of its thread pool; `None` means one per
    /// available core. `PAPERSIM_THREADS`, when set, overrides both.
    pub fn load(
        files: &ModelFiles,
        threads: Option<usize>,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        if precision == Precision::F16 {
            return Err(EmbedError::BadPrecision(
                "f16 runs on CUDA only (--device cuda); on the CPU use f32 or int8".into(),
            ));
        }
        let cfg: Config = read_json(&files.config)?;
        let bad_cfg = |reason: String| EmbedError::BadModelFile {
            path: files.config.clone(),
            reason,
        };
        let act = match cfg.hidden_act.as_str() {
            "gelu" => Act::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_approximate" => Act::GeluTanh,
            other => {
                return Err(bad_cfg(format!(
                    "hidden_act {other:?} is not supported by the CPU encoder \
                     (gelu, gelu_new, gelu_pytorch_tanh are)"
                )))
            }
        };
        if let Some(p) = cfg.position_embedding_type.as_deref() {
            if p != "absolute" {
                return Err(bad_cfg(format!(
                    "position_embedding_type {p:?} is not supported (only \"absolute\")"
                )));
            }
        }
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || h == 0 || !h.is_multiple_of(cfg.num_attention_heads) {
            return Err(bad_cfg(format!(
                "hidden_size {h} is not a multiple of num_attention_heads {}",
                cfg.num_attention_heads
            )));
        }
        let dims = Dims {
            hidden: h,
            head_dim: h / cfg.num_attention_heads,
            inter: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            max_pos: cfg.max_position_embeddings,
            pos_offset: if super::modules::offsets_positions(cfg.model_type.as_deref()) {
                cfg.pad_token_id.unwrap_or(1) + 1
            } else {
                0
            },
            type_vocab: cfg.type_vocab_size,
            eps: cfg.layer_norm_eps as f32,
            act,
        };

        let threads =
            crate::threads::threads(threads).map_err(|e| EmbedError::BadDevice(e.to_string()))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cpu-bert-{i}"))
            .build()
            .map_err(|e| EmbedError::BadDevice(format!("cpu: {threads} threads: {e}")))?;

        let file = WeightsFile::open(&files.weights)?;
        let w = file.tensors(&weight_prefixes(cfg.model_type.as_deref()))?;

        let word = w.table("embeddings.word_embeddings.weight", &[dims.vocab, h])?;
        let pos = w.get("embeddings.position_embeddings.weight", &[dims.max_pos, h])?;
        let typ = w.get(
            "embeddings.token_type_embeddings.weight",
            &[dims.type_vocab, h],
        )?;
        let emb_ln = w.layer_norm("embeddings.LayerNorm", h)?;
        // Packing is most of the load (page faults on the file and on the
        // packed copy, and int8's quantization): one layer per task. Results
        // are gathered in order so that a bad file reports its first error.
        let layers: Vec<Result<Layer, EmbedError>> = pool.install(|| {
            (0..cfg.num_hidden_layers)
                .into_par_iter()
                .with_max_len(1)
                .map(|i| load_layer(&w, i, dims, precision))
                .collect()
        });
        let layers = layers.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(CpuBert {
            dims,
            word,
            pos: pos.into_owned(),
            typ: typ.into_owned(),
            emb_ln,
            layers,
            isa: Isa::detect(),
            threads,
            pool,
            scratch: Mutex::new(Vec::new()),
            head_scratch: Mutex::new(Vec::new()),
        })
    }

    /// Threads in its pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs one text: `row` of the batch, into `out` (`seq * hidden`, zeroed).
    fn encode_row(&self, s: &mut Scratch, b: &TokenBatch, row: usize, out: &mut [f32]) {
        let d = self.dims;
        let (h, isa) = (d.hidden, self.isa);
        let span = row * b.seq..(row + 1) * b.seq;
        // Real tokens only, keeping their positions: attention never sees a
        // padded key, and no time goes into padded queries.
        s.rows.clear();
        s.rows
            .extend((0..b.seq).filter(|&t| b.mask[span.start + t] != 0));
        let n = s.rows.len();
        if n == 0 {
            return;
        }
        // Activations are [feature][token], rows `c.ld` apart.
        let c = Cols::for_tokens(n);
        let x = s.x.get(h * c.ld);
        x.fill(0.0);
        let word = self.word.as_slice();
        for (i, &t) in s.rows.iter().enumerate() {
            let id = b.ids[span.start + t] as usize;
            let ty = b.type_ids[span.start + t] as usize;
            let (w, y, p) = (
                &word[id * h..][..h],
                &self.typ[ty * h..][..h],
                &self.pos[(t + d.pos_offset) * h..][..h],
            );
            for k in 0..h {
                x[k * c.ld + i] = w[k] + y[k] + p[k];
            }
        }
        let cols = s.cols.get(2 * c.n);
        layer_norm(isa, x, h, c, &self.emb_ln, d.eps, cols);

        // Every product and the attention heads are split into rayon tasks:
        // while other texts keep every worker busy they run in place, and at
        // the end of a batch an idle worker steals them from the last text.
        let hd = d.head_dim;
        for l in &self.layers {
            let qkv = s.qkv.get(3 * h * c.ld);
            let qkv_start = Start::Bias(l.qkv.bias());
            l.qkv
                .apply(isa, x, h, c, qkv_start, Act::None, &mut s.q, qkv);
            let qkv = &*qkv;
            let ctx = s.ctx.get(h * c.ld);
            ctx.par_chunks_mut(hd * c.ld)
                .enumerate()
                .for_each(|(head, out)| {
                    with_pooled(&self.head_scratch, |hs| {
                        self.attention(hs, qkv, head, n, c, out);
                    })
                });
            // x += Wo·ctx + b: the residual is where the accumulators start.
            let ao = Start::LoadBias(l.attn_out.bias());
            l.attn_out.apply(isa, ctx, h, c, ao, Act::None, &mut s.q, x);
            layer_norm(isa, x, h, c, &l.ln1, d.eps, cols);
            let inter = s.inter.get(d.inter * c.ld);
            let fi = Start::Bias(l.ffn_in.bias());
            l.ffn_in.apply(isa, x, h, c, fi, d.act, &mut s.q, inter);
            let fo = Start::LoadBias(l.ffn_out.bias());
            l.ffn_out
                .apply(isa, inter, d.inter, c, fo, Act::None, &mut s.q, x);
            layer_norm(isa, x, h, c, &l.ln2, d.eps, cols);
        }
        for (i, &t) in s.rows.iter().enumerate() {
            for (k, o) in out[t * h..(t + 1) * h].iter_mut().enumerate() {
                *o = x[k * c.ld + i];
            }
        }
    }

    /// One head of self-attention over the `n` real tokens: softmax(Q·Kᵀ
    /// · scale)·V into `out` (the head's hd rows of ctx).
    fn attention(
        &self,
        hs: &mut HeadScratch,
        qkv: &[f32],
        head: usize,
        n: usize,
        c: Cols,
        out: &mut [f32],
    ) {
        let (h, hd, isa) = (self.dims.hidden, self.dims.head_dim, self.isa);
        let scale = 1.0 / (hd as f32).sqrt();
        let (q0, k0, v0) = (head * hd, h + head * hd, 2 * h + head * hd);
        // Sᵀ (keys x queries) = K·Qᵀ. K is read in place as the left
        // operand: in [feature][token] order its MR consecutive keys per
        // feature are already contiguous.
        let keys = Lhs {
            data: &qkv[k0 * c.ld..],
            m: n,
            k: hd,
            tile_stride: MR,
            k_stride: c.ld,
        };
        // Each query's max score comes out of the product's epilogue.
        let st = hs.scores.get(n * c.ld);
        let queries = Rhs::tokens(&qkv[q0 * c.ld..], hd, c);
        let (inv_sum, max) = hs.cols.get(2 * c.n).split_at_mut(c.n);
        max.fill(f32::NEG_INFINITY);
        let zero = Start::Zero;
        matmul(
            isa,
            keys,
            queries,
            zero,
            Act::None,
            None,
            Some(max),
            st,
            c.ld,
        );
        // exp(scores - max) per query column; 1/sum scales P·V's tiles.
        softmax_cols(isa, st, n, c, scale, inv_sum, max);
        let vt = pack_rows(&mut hs.vt, &qkv[v0 * c.ld..], hd, n, c.ld);
        let values = Lhs {
            data: vt,
            m: hd,
            k: n,
            tile_stride: n * MR,
            k_stride: MR,
        };
        let probs = Rhs::tokens(st, n, c);
        matmul(
            isa,
            values,
            probs,
            Start::Zero,
            Act::None,
            Some(inv_sum),
            None,
            out,
            c.ld,
        );
    }

    fn check(&self, b: &TokenBatch) -> Result<(), EmbedError> {
        let cells = b.batch * b.seq;
        if b.ids.len() != cells || b.type_ids.len() != cells || b.mask.len() != cells {
            return Err(EmbedError::Forward(format!(
                "token batch of {}x{} has {} ids, {} type ids, {} mask entries",
                b.batch,
                b.seq,
                b.ids.len(),
                b.type_ids.len(),
                b.mask.len()
            )));
        }
        let d = &self.dims;
        let max_len = d.max_pos.saturating_sub(d.pos_offset);
        if b.seq > max_len
            && b.mask
                .iter()
                .enumerate()
                .any(|(i, &m)| m != 0 && i % b.seq >= max_len)
        {
            return Err(EmbedError::Forward(format!(
                "sequence of {} tokens exceeds max_position_embeddings {} (less {} for \
                 the position offset)",
                b.seq, d.max_pos, d.pos_offset
            )));
        }
        for ((&id, &ty), &m) in b.ids.iter().zip(&b.type_ids).zip(&b.mask) {
            if m != 0 && (id as usize >= d.vocab || ty as usize >= d.type_vocab) {
                return Err(EmbedError::Forward(format!(
                    "token id {id} / type id {ty} outside the vocabulary ({} / {})",
                    d.vocab, d.type_vocab
                )));
            }
        }
        Ok(())
    }
}

/// Layer `i`'s weights, packed at `precision`.
fn load_layer(
    w: &Weights<'_>,
    i: usize,
    dims: Dims,
    precision: Precision,
) -> Result<Layer, EmbedError> {
    let (h, p) = (dims.hidden, precision);
    let l = format!("encoder.layer.{i}");
    let q = w.get(&format!("{l}.attention.self.query.weight"), &[h, h])?;
    let k = w.get(&format!("{l}.attention.self.key.weight"), &[h, h])?;
    let v = w.get(&format!("{l}.attention.self.value.weight"), &[h, h])?;
    let qb = w.get(&format!("{l}.attention.self.query.bias"), &[h])?;
    let kb = w.get(&format!("{l}.attention.self.key.bias"), &[h])?;
    let vb = w.get(&format!("{l}.attention.self.value.bias"), &[h])?;
    // Q, K and V as one [3h, h] product: one pass over the activations.
    let qkv = Dense::new(
        p,
        3 * h,
        h,
        |r| &[&*q, &*k, &*v][r / h][(r % h) * h..][..h],
        [&*qb, &*kb, &*vb].concat(),
    );
    Ok(Layer {
        qkv,
        attn_out: w.linear(&format!("{l}.attention.output.dense"), h, h, p)?,
        ln1: w.layer_norm(&format!("{l}.attention.output.LayerNorm"), h)?,
        ffn_in: w.linear(&format!("{l}.intermediate.dense"), h, dims.inter, p)?,
        ffn_out: w.linear(&format!("{l}.output.dense"), dims.inter, h, p)?,
        ln2: w.layer_norm(&format!("{l}.output.LayerNorm"), h)?,
    })
}

impl Backend for CpuBert {
    fn forward(&self, b: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        self.check(b)?;
        let h = self.dims.hidden;
        let mut out = vec![0f32; b.batch * b.seq * h];
        if out.is_empty() {
            return Ok(out);
        }
        // Longest text first: the last tasks are the shortest texts, and
        // the workers finish close together.
        let mut jobs: Vec<(usize, usize, &mut [f32])> = out
            .chunks_mut(b.seq * h)
            .enumerate()
            .map(|(r, o)| {
                let len = b.mask[r * b.seq..(r + 1) * b.seq]
                    .iter()
                    .filter(|&&m| m != 0)
                    .count();
                (len, r, o)
            })
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.0));
        // One text per task: workers take whole texts while there are some
        // (two single-threaded workers beat one forward split in two), and
        // split the last ones (see `encode_row`).
        self.pool.install(|| {
            jobs.into_par_iter()
                .with_max_len(1)
                .for_each(|(_, row, o)| {
                    with_pooled(&self.scratch, |s| self.encode_row(s, b, row, o));
                })
        });
        Ok(out)
    }

    fn dim(&self) -> usize {
        self.dims.hidden
    }

    fn device_name(&self) -> String {
        format!("cpu ({}, {} threads)", self.isa.name(), self.threads)
    }
}

/// One dense-layer product, `W (m x k) · X (k x tokens)` plus bias and
/// activation, on one thread, for `benches/embed.rs` (`dense` group): the
/// kernels are private, and this is how they are tuned.
#[doc(hidden)]
pub struct DenseBench {
    dense: Dense,
    k: usize,
    cols: Cols,
    act: Act,
    isa: Isa,
    x: Buf,
    c: Buf,
    q: QBuf,
    pool: rayon::ThreadPool,
}

impl DenseBench {
    /// Pseudo-random W and X; `gelu` applies BERT's GELU in the epilogue.
    pub fn new(
        m: usize,
        k: usize,
        tokens: usize,
        gelu: bool,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        let val = |i: usize| ((i.wrapping_mul(2_654_435_761) >> 7) % 2001) as f32 / 1000.0 - 1.0;
        let w: Vec<f32> = (0..m * k).map(|i| val(i) * 0.1).collect();
        let dense = Dense::new(precision, m, k, |r| &w[r * k..][..k], vec![0.0; m]);
        let cols = Cols::for_tokens(tokens);
        let mut x = Buf::default();
        x.get(k * cols.ld)
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = val(i + 7));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| EmbedError::BadDevice(format!("cpu: 1 thread: {e}")))?;
        Ok(DenseBench {
            dense,
            k,
            cols,
            act: if gelu { Act::GeluErf } else { Act::None },
            isa: Isa::detect(),
            x,
            c: Buf::default(),
            q: QBuf::default(),
            pool,
        })
    }

    pub fn run(&mut self) {
        let m = match &self.dense {
            Dense::F32(l) => l.m,
            Dense::Int8(l) => l.m,
        };
        let (k, cols) = (self.k, self.cols);
        let x = self.x.get(k * cols.ld);
        let c = self.c.get(m * cols.ld);
        let start = Start::Bias(self.dense.bias());
        self.pool.install(|| {
            self.dense
                .apply(self.isa, x, k, cols, start, self.act, &mut self.q, c)
        });
    }
}

// ---------------------------------------------------------------------------
// Matmul

/// Where the accumulators of a product start.
#[derive(Clone, Copy)]
enum Start<'a> {
    Zero,
    /// Per-row bias (padded to whole tiles).
    Bias(&'a [f32]),
    /// C's current values plus the bias: the residual connection.
    LoadBias(&'a [f32]),
}

/// How a panel's accumulators start: as [`Start`] for the first K block
/// (the bias from the panel's first row), `Load` (C's partial sums) after it.
#[derive(Clone, Copy)]
enum Init<'a> {
    Zero,
    Bias(&'a [f32]),
    Load,
    LoadBias(&'a [f32]),
}

/// A column of MR x NR tiles of C (`rows` rows, one NR-wide panel of N) over
/// one K block: the kernel's whole loop, so that the checks and dispatch
/// happen once per panel rather than once per tile.
struct Panel<'a> {
    /// A from the panel's first row: element (t * MR + r, k) at
    /// `a[t * tile_stride + k * a_ks + r]`.
    a: &'a [f32],
    tile_stride: usize,
    a_ks: usize,
    /// B: element (k, j) at `b[k * ldb + j]`.
    b: &'a [f32],
    ldb: usize,
    kc: usize,
    rows: usize,
    init: Init<'a>,
    /// Applied when storing: per-column scale, then the activation.
    col_scale: Option<&'a [f32]>,
    act: Act,
}

/// `C[m x n] = act(col_scale * (start + A·B))`, C row-major with stride `ldc`.
/// `col_max`, when given, is raised to the maximum of each column of C.
#[allow(clippy::too_many_arguments)]
fn matmul(
    isa: Isa,
    a: Lhs<'_>,
    b: Rhs<'_>,
    start: Start<'_>,
    act: Act,
    col_scale: Option<&[f32]>,
    mut col_max: Option<&mut [f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, k, n) = (a.m, a.k, b.n);
    assert!(a.k == b.k && k > 0 && n % NR == 0 && ldc >= n);
    if m == 0 || n == 0 {
        return;
    }
    let tiles = m.div_ceil(MR);
    assert!(a.data.len() >= (tiles - 1) * a.tile_stride + (k - 1) * a.k_stride + MR);
    assert!(b.data.len() >= (k - 1) * b.ld + n && c.len() >= (m - 1) * ldc + n);
    if let Some(s) = col_scale {
        assert!(s.len() >= n);
    }
    if let Some(s) = &col_max {
        assert!(s.len() >= n);
    }
    for t0 in (0..tiles).step_by(MC / MR) {
        let t1 = tiles.min(t0 + MC / MR);
        let rows = t0 * MR..m.min(t1 * MR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let last = k0 + kc == k;
            let init = match (k0, start) {
                (0, Start::Zero) => Init::Zero,
                (0, Start::Bias(b)) => Init::Bias(&b[t0 * MR..t1 * MR]),
                (0, Start::LoadBias(b)) => Init::LoadBias(&b[t0 * MR..t1 * MR]),
                _ => Init::Load,
            };
            for p in 0..n / NR {
                let panel = Panel {
                    a: &a.data[t0 * a.tile_stride + k0 * a.k_stride..],
                    tile_stride: a.tile_stride,
                    a_ks: a.k_stride,
                    b: &b.data[k0 * b.ld + p * NR..],
                    ldb: b.ld,
                    kc,
                    rows: rows.len(),
                    init,
                    col_scale: col_scale.filter(|_| last).map(|s| &s[p * NR..][..NR]),
                    act: if last { act } else { Act::None },
                };
                let max = col_max
                    .as_deref_mut()
                    .filter(|_| last)
                    .map(|m| &mut m[p * NR..][..NR]);
                run_panel(isa, &panel, &mut c[t0 * MR * ldc + p * NR..], ldc, max);
            }
        }
    }
}

/// [`matmul`] with C's rows cut into blocks of MC, as rayon tasks. `c`
/// holds exactly `a.m` rows.
fn par_matmul(
    isa: Isa,
    a: Lhs<'_>,
    b: Rhs<'_>,
    start: Start<'_>,
    act: Act,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(c.len() == a.m * ldc);
    c.par_chunks_mut(MC * ldc).enumerate().for_each(|(i, c)| {
        let r0 = i * MC;
        let block = Lhs {
            data: &a.data[r0 / MR * a.tile_stride..],
            m: MC.min(a.m - r0),
            ..a
        };
        let start = match start {
            Start::Zero => Start::Zero,
            Start::Bias(b) => Start::Bias(&b[r0..]),
            Start::LoadBias(b) => Start::LoadBias(&b[r0..]),
        };
        matmul(isa, block, b, start, act, None, None, c, ldc);
    });
}

/// One panel into C from `c[0]` (stride `ldc`), raising `col_max` (NR
/// values) to the maximum of each column stored.
fn run_panel(isa: Isa, p: &Panel<'_>, c: &mut [f32], ldc: usize, col_max: Option<&mut [f32]>) {
    let tiles = p.rows.div_ceil(MR);
    assert!(p.rows > 0 && p.kc > 0 && c.len() >= (p.rows - 1) * ldc + NR);
    assert!(p.a.len() >= (tiles - 1) * p.tile_stride + (p.kc - 1) * p.a_ks + MR);
    assert!(p.b.len() >= (p.kc - 1) * p.ldb + NR);
    if let Init::Bias(bias) | Init::LoadBias(bias) = p.init {
        assert!(bias.len() >= tiles * MR);
    }
    if let Some(s) = p.col_scale {
        assert!(s.len() >= NR);
    }
    if let Some(s) = &col_max {
        assert!(s.len() >= NR);
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2Fma exists only when the CPU has AVX2 and FMA;
        // the asserts above bound every access the kernel makes.
        Isa::Avx2Fma => unsafe { avx2::panel(p, c, ldc, col_max) },
        Isa::Scalar => {
            let mut col_max = col_max;
            for t in 0..tiles {
                let rows = MR.min(p.rows - t * MR);
                let mut acc = [[0f32; NR]; MR];
                for kk in 0..p.kc {
                    let bk = &p.b[kk * p.ldb..][..NR];
                    let ak = &p.a[t * p.tile_stride + kk * p.a_ks..][..MR];
                    for (row, &av) in acc.iter_mut().zip(ak) {
                        for (x, &bv) in row.iter_mut().zip(bk) {
                            *x += av * bv;
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate().take(rows) {
                    let c_row = &mut c[(t * MR + r) * ldc..][..NR];
                    let bias = match p.init {
                        Init::Bias(b) | Init::LoadBias(b) => b[t * MR + r],
                        Init::Zero | Init::Load => 0.0,
                    };
                    let load = matches!(p.init, Init::Load | Init::LoadBias(_));
                    for (j, (o, &x)) in c_row.iter_mut().zip(row).enumerate() {
                        let x = x + if load { *o + bias } else { bias };
                        let x = p.col_scale.map_or(x, |s| x * s[j]);
                        *o = act_scalar(p.act, x);
                        if let Some(m) = col_max.as_deref_mut() {
                            m[j] = m[j].max(*o);
                        }
                    }
                }
            }
        }
    }
}

/// Packs `m` rows of `src` (row stride `ld`, `k` values each) into MR-row
/// tiles for [`Lhs`] (`tile_stride = k * MR`, `k_stride = MR`): per head,
/// V's rows, a copy of hd x n values against an n x n x hd product.
fn pack_rows<'a>(dst: &'a mut Buf, src: &[f32], m: usize, k: usize, ld: usize) -> &'a [f32] {
    let tiles = m.div_ceil(MR);
    let out = dst.get(tiles * k * MR);
    for (t, tile) in out.chunks_exact_mut(k * MR).enumerate() {
        for r in 0..MR {
            let row = t * MR + r;
            if row < m {
                for (kk, &v) in src[row * ld..][..k].iter().enumerate() {
                    tile[kk * MR + r] = v;
                }
            } else {
                for kk in 0..k {
                    tile[kk * MR + r] = 0.0;
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Element-wise maths. The scalar versions are the reference for the vector
// ones (same constants, same order) and the fallback.

/// log2(e), and ln(2) split in a part exact in f32 and the rest (Cephes).
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes expf polynomial for e^r on |r| <= ln2/2, highest degree first.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// erf(x) = x·P(x²)/Q(x²) on [-4, 4] (Eigen's / XLA's f32 erf), highest
/// first. The rational itself is within 7e-8 of erf, but evaluated in f32
/// its rounding reaches 4.5e-7 near |x| = 4, so it runs in f64 (two 4-lane
/// halves: still ~1% of the time of the matmul that feeds it).
const ERF_P: [f64; 7] = [
    -2.726_142_258_013_06e-10,
    2.770_681_424_959_02e-8,
    -2.101_024_020_825_08e-6,
    -5.692_506_394_623_46e-5,
    -7.349_906_303_268_55e-4,
    -2.954_599_808_540_25e-3,
    -1.609_603_332_624_15e-2,
];
const ERF_Q: [f64; 5] = [
    -1.456_607_184_649_96e-5,
    -2.133_740_552_789_05e-4,
    -1.682_826_974_382_03e-3,
    -7.373_329_167_204_68e-3,
    -1.426_473_905_141_89e-2,
];
/// ERF_P and ERF_Q in f32, for [`avx2::gelu_erf_f32`].
const ERF_P_F32: [f32; 7] = f64s_to_f32(ERF_P);
const ERF_Q_F32: [f32; 5] = f64s_to_f32(ERF_Q);

const fn f64s_to_f32<const N: usize>(v: [f64; N]) -> [f32; N] {
    let mut out = [0f32; N];
    let mut i = 0;
    while i < N {
        out[i] = v[i] as f32;
        i += 1;
    }
    out
}

/// √(2/π), for the tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

fn exp_scalar(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let fx = (x * LOG2E).round_ties_even();
    let r = x - fx * LN2_HI - fx * LN2_LO;
    let mut y = EXP_P[0];
    for &c in &EXP_P[1..] {
        y = y * r + c;
    }
    let y = y * r * r + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) as u32) << 23)
}

#[cfg(test)]
fn erf_scalar(x: f32) -> f32 {
    erf_f64(x as f64) as f32
}

fn erf_f64(x: f64) -> f64 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ERF_P[0];
    for &c in &ERF_P[1..] {
        p = p * x2 + c;
    }
    let mut q = ERF_Q[0];
    for &c in &ERF_Q[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

fn act_scalar(act: Act, x: f32) -> f32 {
    match act {
        Act::None => x,
        Act::GeluErf => {
            let x = x as f64;
            (0.5 * x * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
        }
        Act::GeluTanh => {
            let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            // tanh(u) = 1 - 2 / (e^(2u) + 1)
            let t = 1.0 - 2.0 / (exp_scalar(2.0 * u) + 1.0);
            0.5 * x * (1.0 + t)
        }
    }
}

/// Column-wise softmax numerators of Sᵀ (`rows` keys x `c.n` query
/// columns, rows `c.ld` apart), given each column's `max`: `s = exp((s -
/// max) * scale)`, and `inv_sum` = 1 / column sum (both hold `c.n` values).
fn softmax_cols(
    isa: Isa,
    s: &mut [f32],
    rows: usize,
    c: Cols,
    scale: f32,
    inv_sum: &mut [f32],
    max: &[f32],
) {
    let (n, ld) = (c.n, c.ld);
    assert!(rows > 0 && n % 8 == 0 && n <= ld && s.len() >= rows * ld);
    let (inv_sum, max) = (&mut inv_sum[..n], &max[..n]);
    let s = &mut s[..rows * ld];
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2Fma exists only when the CPU has AVX2 and FMA; s
        // is cut to `rows * ld`, `inv_sum` and `max` to n <= ld, a multiple of 8.
        Isa::Avx2Fma => unsafe { avx2::softmax_cols(s, c, scale, inv_sum, max) },
        Isa::Scalar => {
            inv_sum.fill(0.0);
            for row in s.chunks_exact_mut(ld) {
                for ((v, &m), sum) in row.iter_mut().zip(max).zip(inv_sum.iter_mut()) {
                    *v = exp_scalar((*v - m) * scale);
                    *sum += *v;
                }
            }
            inv_sum.iter_mut().for_each(|v| *v = 1.0 / *v);
        }
    }
}

/// LayerNorm of each token column of `x` (`h` feature rows, `c.n` columns,
/// rows `c.ld` apart), in place. `cols` is scratch for `2 * c.n` values.
fn layer_norm(
    isa: Isa,
    x: &mut [f32],
    h: usize,
    c: Cols,
    (g, b): &(Vec<f32>, Vec<f32>),
    eps: f32,
    cols: &mut [f32],
) {
    let (n, ld) = (c.n, c.ld);
    assert!(h > 0 && n % 8 == 0 && n <= ld && x.len() >= h * ld);
    assert!(g.len() == h && b.len() == h);
    let x = &mut x[..h * ld];
    let (mean, rstd) = cols[..2 * n].split_at_mut(n);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2Fma exists only when the CPU has AVX2 and FMA; x
        // is h * ld, mean and rstd n <= ld (a multiple of 8), g and b h values.
        Isa::Avx2Fma => unsafe { avx2::layer_norm(x, c, g, b, eps, mean, rstd) },
        Isa::Scalar => {
            mean.fill(0.0);
            for row in x.chunks_exact(ld) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            mean.iter_mut().for_each(|m| *m /= h as f32);
            rstd.fill(0.0);
            for row in x.chunks_exact(ld) {
                for ((r, &m), &v) in rstd.iter_mut().zip(&*mean).zip(row) {
                    *r += (v - m) * (v - m);
                }
            }
            rstd.iter_mut()
                .for_each(|r| *r = 1.0 / (*r / h as f32 + eps).sqrt());
            for ((row, &gk), &bk) in x.chunks_exact_mut(ld).zip(g).zip(b) {
                for ((v, &m), &r) in row.iter_mut().zip(&*mean).zip(&*rstd) {
                    *v = (*v - m) * r * gk + bk;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA versions. Every function requires a CPU with both features.
    use std::arch::x86_64::*;

    use super::{Act, Cols, Init, Panel, ERF_P, ERF_Q, EXP_P, LN2_HI, LN2_LO, LOG2E, MR};

    /// One 6x16 tile of A·B from zero: per k, two loads of B (one cache line
    /// of 16 tokens), six broadcasts of A, twelve FMAs; ~90% of peak FMA
    /// throughput with B in L1. Kept out of line so its accumulators live in
    /// registers: inlined next to the epilogue's row loop, LLVM kept them in
    /// memory and stored all twelve on every k, halving throughput.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot(
        mut ap: *const f32,
        a_ks: usize,
        mut bp: *const f32,
        ldb: usize,
        kc: usize,
    ) -> [[__m256; 2]; MR] {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (r, a) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                a[0] = _mm256_fmadd_ps(av, b0, a[0]);
                a[1] = _mm256_fmadd_ps(av, b1, a[1]);
            }
            ap = ap.add(a_ks);
            bp = bp.add(ldb);
        }
        acc
    }

    /// A panel's tiles one after another: the product from [`dot`], then
    /// the start value (bias, C), column scale and activation on the
    /// registers, one store per value.
    ///
    /// # Safety
    /// AVX2 and FMA must be available, and the slices as `super::run_panel` asserts.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel(
        p: &Panel<'_>,
        c: &mut [f32],
        ldc: usize,
        col_max: Option<&mut [f32]>,
    ) {
        let cp = c.as_mut_ptr();
        let mut max = col_max.as_deref().map(|m| {
            [
                _mm256_loadu_ps(m.as_ptr()),
                _mm256_loadu_ps(m.as_ptr().add(8)),
            ]
        });
        let load = matches!(p.init, Init::Load | Init::LoadBias(_));
        let scale = p.col_scale.map(|s| {
            [
                _mm256_loadu_ps(s.as_ptr()),
                _mm256_loadu_ps(s.as_ptr().add(8)),
            ]
        });
        for t in 0..p.rows.div_ceil(MR) {
            let rows = MR.min(p.rows - t * MR);
            let ap = p.a.as_ptr().add(t * p.tile_stride);
            let ct = cp.add(t * MR * ldc);
            let acc = dot(ap, p.a_ks, p.b.as_ptr(), p.ldb, p.kc);
            for (r, a) in acc.iter().enumerate() {
                // Rows past the edge of M: computed, never read or stored.
                if r >= rows {
                    break;
                }
                let mut v = *a;
                if let Init::Bias(b) | Init::LoadBias(b) = p.init {
                    let bv = _mm256_set1_ps(b[t * MR + r]);
                    v = [_mm256_add_ps(v[0], bv), _mm256_add_ps(v[1], bv)];
                }
                if load {
                    v[0] = _mm256_add_ps(v[0], _mm256_loadu_ps(ct.add(r * ldc)));
                    v[1] = _mm256_add_ps(v[1], _mm256_loadu_ps(ct.add(r * ldc + 8)));
                }
                if let Some(s) = scale {
                    v = [_mm256_mul_ps(v[0], s[0]), _mm256_mul_ps(v[1], s[1])];
                }
                for (h, v) in v.into_iter().enumerate() {
                    let v = match p.act {
                        Act::None => v,
                        Act::GeluErf => gelu_erf(v),
                        Act::GeluTanh => gelu_tanh(v),
                    };
                    _mm256_storeu_ps(ct.add(r * ldc + h * 8), v);
                    if let Some(m) = &mut max {
                        m[h] = _mm256_max_ps(m[h], v);
                    }
                }
            }
        }
        if let (Some(m), Some(out)) = (max, col_max) {
            _mm256_storeu_ps(out.as_mut_ptr(), m[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), m[1]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn poly(x: __m256, coeffs: &[f32]) -> __m256 {
        let mut y = _mm256_set1_ps(coeffs[0]);
        for &c in &coeffs[1..] {
            y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(c));
        }
        y
    }

    /// e^x, Cephes' expf: x = n·ln2 + r, e^r by a degree-6 polynomial, 2^n
    /// by building the exponent bits. Within 2 ulp on [-87, 88].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(LN2_LO), r);
        let y = poly(r, &EXP_P);
        let y = _mm256_fmadd_ps(
            y,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(fx),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(e))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn poly_pd(x: __m256d, coeffs: &[f64]) -> __m256d {
        let mut y = _mm256_set1_pd(coeffs[0]);
        for &c in &coeffs[1..] {
            y = _mm256_fmadd_pd(y, x, _mm256_set1_pd(c));
        }
        y
    }

    /// erf on 4 doubles (see ERF_P for why f64).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn erf_pd(x: __m256d) -> __m256d {
        let x = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(-4.0)), _mm256_set1_pd(4.0));
        let x2 = _mm256_mul_pd(x, x);
        let p = _mm256_mul_pd(x, poly_pd(x2, &ERF_P));
        _mm256_div_pd(p, poly_pd(x2, &ERF_Q))
    }

    /// 0.5·x·(1 + erf(x/√2)) on 4 doubles.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gelu_erf_pd(x: __m256d) -> __m256d {
        let e = erf_pd(_mm256_mul_pd(
            x,
            _mm256_set1_pd(std::f64::consts::FRAC_1_SQRT_2),
        ));
        let half_x = _mm256_mul_pd(x, _mm256_set1_pd(0.5));
        _mm256_fmadd_pd(half_x, e, half_x)
    }

    /// Runs `$f` on the two f64 halves of `$x`.
    macro_rules! via_f64 {
        ($x:expr, $f:ident) => {{
            let x = $x;
            let lo = $f(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
            let hi = $f(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
            _mm256_insertf128_ps::<1>(
                _mm256_castps128_ps256(_mm256_cvtpd_ps(lo)),
                _mm256_cvtpd_ps(hi),
            )
        }};
    }

    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn erf(x: __m256) -> __m256 {
        via_f64!(x, erf_pd)
    }

    /// GELU with erf evaluated in f32: the same rational as [`erf_pd`],
    /// within ~5e-7 instead of 1e-7, at a third of the cost. For int8,
    /// whose own error is ~1e-3, the f64 version is wasted work.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_erf_f32(x: __m256) -> __m256 {
        let u = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let u = _mm256_min_ps(_mm256_max_ps(u, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
        let u2 = _mm256_mul_ps(u, u);
        let p = _mm256_mul_ps(u, poly(u2, &super::ERF_P_F32));
        let e = _mm256_div_ps(p, poly(u2, &super::ERF_Q_F32));
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        _mm256_fmadd_ps(half_x, e, half_x)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_erf(x: __m256) -> __m256 {
        via_f64!(x, gelu_erf_pd)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_tanh(x: __m256) -> __m256 {
        let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        let u = _mm256_mul_ps(
            _mm256_set1_ps(super::SQRT_2_OVER_PI),
            _mm256_fmadd_ps(_mm256_set1_ps(0.044715), x3, x),
        );
        let one = _mm256_set1_ps(1.0);
        let e = exp(_mm256_add_ps(u, u));
        let t = _mm256_sub_ps(
            one,
            _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
        );
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        _mm256_fmadd_ps(half_x, t, half_x)
    }

    /// # Safety
    /// AVX2 and FMA must be available; `s.len()` a multiple of `c.ld`, `c.n`
    /// of 8 and at most `c.ld`, and `inv_sum`, `max` hold `c.n` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_cols(
        s: &mut [f32],
        c: Cols,
        scale: f32,
        inv_sum: &mut [f32],
        max: &[f32],
    ) {
        let (sp, mp, ip) = (s.as_mut_ptr(), max.as_ptr(), inv_sum.as_mut_ptr());
        let (n, ld) = (c.n, c.ld);
        let rows = s.len() / ld;
        for i in (0..n).step_by(8) {
            _mm256_storeu_ps(ip.add(i), _mm256_setzero_ps());
        }
        let vs = _mm256_set1_ps(scale);
        for j in 0..rows {
            for i in (0..n).step_by(8) {
                let p = sp.add(j * ld + i);
                let d = _mm256_sub_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(mp.add(i)));
                let e = exp(_mm256_mul_ps(d, vs));
                _mm256_storeu_ps(p, e);
                _mm256_storeu_ps(ip.add(i), _mm256_add_ps(_mm256_loadu_ps(ip.add(i)), e));
            }
        }
        let one = _mm256_set1_ps(1.0);
        for i in (0..n).step_by(8) {
            _mm256_storeu_ps(ip.add(i), _mm256_div_ps(one, _mm256_loadu_ps(ip.add(i))));
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available; `x.len()` is `g.len() * c.ld`, `c.n`
    /// a multiple of 8 and at most `c.ld`, `b` as long as `g`, `mean` and
    /// `rstd` hold `c.n` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn layer_norm(
        x: &mut [f32],
        c: Cols,
        g: &[f32],
        b: &[f32],
        eps: f32,
        mean: &mut [f32],
        rstd: &mut [f32],
    ) {
        let (h, n, ld) = (g.len(), c.n, c.ld);
        let (xp, mp, rp) = (x.as_mut_ptr(), mean.as_mut_ptr(), rstd.as_mut_ptr());
        for i in (0..n).step_by(8) {
            _mm256_storeu_ps(mp.add(i), _mm256_setzero_ps());
            _mm256_storeu_ps(rp.add(i), _mm256_setzero_ps());
        }
        for k in 0..h {
            for i in (0..n).step_by(8) {
                let v = _mm256_loadu_ps(xp.add(k * ld + i));
                _mm256_storeu_ps(mp.add(i), _mm256_add_ps(_mm256_loadu_ps(mp.add(i)), v));
            }
        }
        let inv_h = _mm256_set1_ps(1.0 / h as f32);
        for i in (0..n).step_by(8) {
            _mm256_storeu_ps(mp.add(i), _mm256_mul_ps(_mm256_loadu_ps(mp.add(i)), inv_h));
        }
        for k in 0..h {
            for i in (0..n).step_by(8) {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(xp.add(k * ld + i)),
                    _mm256_loadu_ps(mp.add(i)),
                );
                _mm256_storeu_ps(rp.add(i), _mm256_fmadd_ps(d, d, _mm256_loadu_ps(rp.add(i))));
            }
        }
        let (ve, one) = (_mm256_set1_ps(eps), _mm256_set1_ps(1.0));
        for i in (0..n).step_by(8) {
            let var = _mm256_fmadd_ps(_mm256_loadu_ps(rp.add(i)), inv_h, ve);
            _mm256_storeu_ps(rp.add(i), _mm256_div_ps(one, _mm256_sqrt_ps(var)));
        }
        for k in 0..h {
            let (gk, bk) = (_mm256_set1_ps(g[k]), _mm256_set1_ps(b[k]));
            for i in (0..n).step_by(8) {
                let p = xp.add(k * ld + i);
                let d = _mm256_sub_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(mp.add(i)));
                let d = _mm256_mul_ps(d, _mm256_loadu_ps(rp.add(i)));
                _mm256_storeu_ps(p, _mm256_fmadd_ps(d, gk, bk));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: deterministic test data without a rand dependency.
    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        if Isa::detect() != Isa::Scalar {
            v.push(Isa::detect());
        }
        v
    }

    fn erf_ref(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }

    /// Applies function `which` (0 erf, 1 exp, 2 GELU, 3 tanh GELU) to `xs`,
    /// 8 at a time on AVX2.
    fn map(isa: Isa, xs: &[f32], which: u8) -> Vec<f32> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => xs
                .chunks(8)
                .flat_map(|c| {
                    use std::arch::x86_64::*;
                    let mut buf = [0f32; 8];
                    buf[..c.len()].copy_from_slice(c);
                    // SAFETY: Avx2Fma was detected; buf holds 8 floats.
                    unsafe {
                        let v = _mm256_loadu_ps(buf.as_ptr());
                        let r = match which {
                            0 => avx2::erf(v),
                            1 => avx2::exp(v),
                            2 => avx2::gelu_erf(v),
                            _ => avx2::gelu_tanh(v),
                        };
                        _mm256_storeu_ps(buf.as_mut_ptr(), r);
                    }
                    buf[..c.len()].to_vec()
                })
                .collect(),
            Isa::Scalar => xs
                .iter()
                .map(|&x| match which {
                    0 => erf_scalar(x),
                    1 => exp_scalar(x),
                    2 => act_scalar(Act::GeluErf, x),
                    _ => act_scalar(Act::GeluTanh, x),
                })
                .collect(),
        }
    }

    #[test]
    fn erf_is_within_2e7_of_f64_erf() {
        let xs: Vec<f32> = (-800_000..=800_000).map(|i| i as f32 * 1e-5).collect();
        for isa in isas() {
            let got = map(isa, &xs, 0);
            let (mut worst, mut at) = (0f64, 0f32);
            for (&x, &e) in xs.iter().zip(&got) {
                let d = (e as f64 - erf_ref(x as f64)).abs();
                if d > worst {
                    (worst, at) = (d, x);
                }
            }
            println!("erf {}: max abs error {worst:.3e} at x = {at}", isa.name());
            assert!(worst <= 2e-7, "{worst} at {at}");
        }
    }

    #[test]
    fn gelu_matches_f64_formulas() {
        let xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-5).collect();
        for isa in isas() {
            let erf = map(isa, &xs, 2);
            let tanh = map(isa, &xs, 3);
            let (mut we, mut wt) = (0f64, 0f64);
            for ((&x, &e), &t) in xs.iter().zip(&erf).zip(&tanh) {
                let x = x as f64;
                // Absolute error, relative once |x| > 1.
                let want = 0.5 * x * (1.0 + erf_ref(x / 2f64.sqrt()));
                we = we.max((e as f64 - want).abs() / x.abs().max(1.0));
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
                let want_t = 0.5 * x * (1.0 + u.tanh());
                wt = wt.max((t as f64 - want_t).abs() / x.abs().max(1.0));
            }
            println!("gelu {}: erf {we:.3e}, tanh {wt:.3e}", isa.name());
            assert!(we <= 2e-7 && wt <= 2e-7, "{we} {wt}");
        }
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        let xs: Vec<f32> = (-870_000..=880_000).map(|i| i as f32 * 1e-4).collect();
        for isa in isas() {
            let got = map(isa, &xs, 1);
            let worst = xs
                .iter()
                .zip(&got)
                .map(|(&x, &e)| {
                    let want = (x as f64).exp();
                    (e as f64 - want).abs() / want
                })
                .fold(0f64, f64::max);
            println!("exp {}: max relative error {worst:.3e}", isa.name());
            assert!(worst < 3e-7, "{worst}");
        }
    }

    /// C = act(scale * (c0 + bias + W·B)) in f64, W m x k, B k x n.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        k: usize,
        n: usize,
        w: impl Fn(usize, usize) -> f32,
        bm: &[f32],
        c0: &[f32],
        bias: &[f32],
        scale: &[f32],
        act: Act,
    ) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = c0[i * n + j] as f64 + bias[i] as f64;
                for kk in 0..k {
                    s += w(i, kk) as f64 * bm[kk * n + j] as f64;
                }
                c[i * n + j] = act_scalar(act, (s * scale[j] as f64) as f32) as f64;
            }
        }
        c
    }

    #[test]
    fn matmul_matches_naive_at_edges_and_k_blocks() {
        for (m, k, n) in [
            (1, 1, 16),
            (7, 33, 32),
            (13, 256, 16),
            (250, 600, 48),
            (6, 1536, 16),
        ] {
            let mut r = rng((m * 1000 + k * 10 + n) as u64);
            let w: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let bm: Vec<f32> = (0..k * n).map(|_| r()).collect();
            let bias: Vec<f32> = (0..m).map(|_| r()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| r()).collect();
            let scale: Vec<f32> = (0..n).map(|_| r() + 2.0).collect();
            let lin = Linear::pack(m, k, |i| &w[i * k..][..k], bias.clone());
            // The same W read in place, transposed ([k][m], stride m + 5),
            // the way attention reads K.
            let ld_t = m + 5;
            let mut wt = vec![0f32; k * ld_t + MR];
            for i in 0..m {
                for kk in 0..k {
                    wt[kk * ld_t + i] = w[i * k + kk];
                }
            }
            let strided = Lhs {
                data: &wt,
                m,
                k,
                tile_stride: MR,
                k_stride: ld_t,
            };
            let zeros = vec![0f32; m * n];
            let no_bias = vec![0f32; m.div_ceil(MR) * MR];
            let ones = vec![1f32; n];
            let rhs = Rhs {
                data: &bm,
                k,
                n,
                ld: n,
            };
            let cases: [(Lhs<'_>, Start<'_>, Act, Option<&[f32]>); 4] = [
                (lin.lhs(), Start::Bias(&lin.bias), Act::None, None),
                (lin.lhs(), Start::LoadBias(&lin.bias), Act::GeluErf, None),
                (strided, Start::Zero, Act::None, Some(&scale)),
                (
                    strided,
                    Start::LoadBias(&lin.bias),
                    Act::GeluTanh,
                    Some(&scale),
                ),
            ];
            for (a, start, act, cs) in cases {
                let load = matches!(start, Start::LoadBias(_));
                let bias_v = if matches!(start, Start::Zero) {
                    &no_bias
                } else {
                    &bias
                };
                let c_init = if load { &c0 } else { &zeros };
                let want = naive(
                    m,
                    k,
                    n,
                    |i, kk| w[i * k + kk],
                    &bm,
                    c_init,
                    bias_v,
                    cs.unwrap_or(&ones),
                    act,
                );
                for isa in isas() {
                    // ldc > n, with a sentinel past each row's n values.
                    let ldc = n + 3;
                    let mut c = vec![7f32; (m - 1) * ldc + n + 3];
                    for i in 0..m {
                        c[i * ldc..i * ldc + n].copy_from_slice(&c0[i * n..(i + 1) * n]);
                    }
                    let mut max = vec![-1e30f32; n];
                    matmul(isa, a, rhs, start, act, cs, Some(&mut max), &mut c, ldc);
                    for i in 0..m {
                        for j in 0..n {
                            let d = (c[i * ldc + j] as f64 - want[i * n + j]).abs();
                            let tol = 1e-5 * (k as f64).sqrt() * (1.0 + want[i * n + j].abs());
                            assert!(d < tol, "{isa:?} {m}x{k}x{n} ({i},{j}) {d}");
                        }
                        assert!(c[i * ldc + n..i * ldc + ldc].iter().all(|&v| v == 7.0));
                    }
                    for (j, &mx) in max.iter().enumerate() {
                        let col = (0..m).map(|i| c[i * ldc + j]).fold(f32::MIN, f32::max);
                        assert_eq!(mx, col, "{isa:?} {m}x{k}x{n} column {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn column_softmax_and_layer_norm_match_naive() {
        let mut r = rng(5);
        for isa in isas() {
            // Rows `ld` apart, the first `n` columns in use (the rest untouched).
            for (rows, n, ld) in [(1, 8, 8), (7, 16, 32), (29, 32, 40), (240, 240, 240)] {
                let c = Cols { n, ld };
                let s0: Vec<f32> = (0..rows * ld).map(|_| r() * 30.0).collect();
                let mut s = s0.clone();
                let max: Vec<f32> = (0..n)
                    .map(|i| (0..rows).map(|j| s0[j * ld + i]).fold(f32::MIN, f32::max))
                    .collect();
                let mut inv = vec![0f32; n];
                softmax_cols(isa, &mut s, rows, c, 0.25, &mut inv, &max);
                for i in 0..n {
                    let col: Vec<f64> = (0..rows).map(|j| s0[j * ld + i] as f64).collect();
                    let mx = col.iter().copied().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = col.iter().map(|&x| ((x - mx) * 0.25).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for j in 0..rows {
                        let got = s[j * ld + i] as f64 * inv[i] as f64;
                        assert!((got - e[j] / sum).abs() < 1e-6, "{isa:?} {rows}x{ld}");
                    }
                }
                for j in 0..rows {
                    assert_eq!(s[j * ld + n..(j + 1) * ld], s0[j * ld + n..(j + 1) * ld]);
                }

                let h = rows;
                let x0: Vec<f32> = (0..h * ld).map(|_| r() * 3.0 + 1.0).collect();
                let g: Vec<f32> = (0..h).map(|_| r() + 1.0).collect();
                let b: Vec<f32> = (0..h).map(|_| r()).collect();
                let mut x = x0.clone();
                let mut cols = vec![0f32; 2 * n];
                layer_norm(isa, &mut x, h, c, &(g.clone(), b.clone()), 1e-12, &mut cols);
                for i in 0..n {
                    let col: Vec<f64> = (0..h).map(|k| x0[k * ld + i] as f64).collect();
                    let mean = col.iter().sum::<f64>() / h as f64;
                    let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
                    for k in 0..h {
                        let want = if h == 1 {
                            b[k] as f64
                        } else {
                            (col[k] - mean) / (var + 1e-12).sqrt() * g[k] as f64 + b[k] as f64
                        };
                        let got = x[k * ld + i] as f64;
                        assert!((got - want).abs() < 1e-4, "{isa:?} {h}x{ld} {got} {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn token_columns_are_whole_panels_with_odd_stride() {
        assert_eq!(Cols::for_tokens(1), Cols { n: 16, ld: 16 });
        assert_eq!(Cols::for_tokens(240), Cols { n: 240, ld: 240 });
        assert_eq!(Cols::for_tokens(256), Cols { n: 256, ld: 272 });
        for t in 1..600 {
            let c = Cols::for_tokens(t);
            assert!(c.n >= t && c.n < t + NR && c.n.is_multiple_of(NR));
            assert!(c.ld >= c.n && (c.ld / NR) % 2 == 1);
        }
    }
}
