//! A BERT encoder written for the CPU: the same maths as candle's `BertModel`
//! (and sentence-transformers), ~2.5x its throughput on the 2-core AVX2 dev
//! box: 20-21.7 docs/s against 8.0-8.1 on arXiv abstracts (~240 tokens),
//! 10.2-11.5 against 5.0-5.2 on one thread.
//!
//! Where candle's time went, and what this does instead:
//! - Matmuls (~half of candle's time, ~55 GFLOP/s a core through the `gemm`
//!   crate, which packs both operands on every call). Here activations are
//!   kept feature-major (`[feature][token]`, tokens padded to whole 16-token
//!   panels, see [`Cols`]), weights are packed once at load, and one
//!   register-tile kernel does every product (on AVX2+FMA 6 output features x
//!   16 tokens per tile, 75-85 GFLOP/s a Zen 3 core): no operand is repacked per call (K is
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
//! The kernels are in [`kernel`], one file per instruction set (AVX2,
//! AVX-VNNI, AVX-512, AVX-512 VNNI, NEON, and portable scalar code), picked
//! at load by CPU detection or `PAPERSIM_ISA`, each first checked against
//! the scalar ones.

use std::sync::Mutex;

use rayon::prelude::*;
use serde::Deserialize;

use super::backend::{Backend, TokenBatch};
use super::model::{read_json, weight_prefixes, ModelFiles};
use super::mpnet::RelativeBias;
use super::{EmbedError, Precision};

mod bf16;
mod int8;
mod kernel;
mod weights;
use bf16::{par_bmatmul, BLinear};
use int8::{par_qmatmul, quantize_cols, Layout, QBuf, QLinear};
use kernel::{layer_norm, softmax_cols, Act, Init, Isa, Panel, MR, NR};
use weights::{Table, Weights, WeightsFile};

/// Depth of one pass over K: a B panel of KC x 16 tokens (24 KiB) stays in
/// L1 while every weight tile of the block streams past it from L2. 384 (one
/// pass for hidden-size K) measured ~7% faster than 256, on par with 512:
/// fewer passes re-read and re-store C.
const KC: usize = 384;
/// Output features per block: MC x KC packed weights (288 KiB) stay in L2
/// while all token panels pass.
const MC: usize = 192;

/// The fields of a Hugging Face BERT (or MPNet) config.json this encoder needs.
#[derive(Debug, Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    /// Absent from MPNet's config: it has no token types.
    #[serde(default)]
    type_vocab_size: Option<usize>,
    layer_norm_eps: f64,
    /// MPNet's relative-position buckets.
    #[serde(default)]
    relative_attention_num_buckets: Option<usize>,
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
    arch: Arch,
}

/// Which encoder the weights are: the layers are the same maths, under
/// other tensor names, and MPNet adds a relative-position bias to every
/// attention score (see [`super::mpnet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    /// BERT, RoBERTa, XLM-R.
    Bert,
    Mpnet,
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
    /// bf16 pairs, for a CPU with a bf16 dot product.
    Bf16(BLinear),
    /// bf16 elsewhere: bf16-rounded weights, and inputs rounded before
    /// each product, on the f32 kernels.
    Bf16OnF32(Linear),
}

/// How a dense layer is packed: the encoder's precision, and the kernels
/// (int8 and bf16 operands are laid out for the dot products the CPU has).
#[derive(Clone, Copy)]
struct DenseSpec {
    precision: Precision,
    isa: Isa,
}

impl Dense {
    /// The `m x k` layer whose row r is `row(r)`.
    fn new<'a>(
        spec: DenseSpec,
        m: usize,
        k: usize,
        row: impl Fn(usize) -> &'a [f32],
        bias: Vec<f32>,
    ) -> Self {
        match spec.precision {
            // A K too deep for exact i32 sums (no BERT config has one) stays f32.
            Precision::Int8 if k <= int8::MAX_K => {
                let layout = Layout::for_isa(spec.isa);
                Dense::Int8(QLinear::pack(m, k, row, bias, layout))
            }
            Precision::Bf16 if spec.isa.has_bf16_dot() => {
                Dense::Bf16(BLinear::pack(spec.isa, m, k, row, bias))
            }
            Precision::Bf16 => {
                let mut l = Linear::pack(m, k, row, bias);
                l.w.iter_mut().for_each(|w| *w = bf16::round(*w));
                Dense::Bf16OnF32(l)
            }
            _ => Dense::F32(Linear::pack(m, k, row, bias)),
        }
    }

    fn bias(&self) -> &[f32] {
        match self {
            Dense::F32(l) | Dense::Bf16OnF32(l) => &l.bias,
            Dense::Int8(l) => &l.bias,
            Dense::Bf16(l) => &l.bias,
        }
    }

    /// Output features.
    fn m(&self) -> usize {
        match self {
            Dense::F32(l) | Dense::Bf16OnF32(l) => l.m,
            Dense::Int8(l) => l.m,
            Dense::Bf16(l) => l.m,
        }
    }

    /// `c = act(start + W·x)` over the `k` feature rows of `x`, split
    /// into row-block tasks; int8 and bf16 convert `x` into `buf` first.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        isa: Isa,
        x: &[f32],
        k: usize,
        cols: Cols,
        start: Start<'_>,
        act: Act,
        buf: &mut DenseBuf,
        c: &mut [f32],
    ) {
        let f32_product = |l: &Linear, x: &[f32], c: &mut [f32]| {
            let rhs = Rhs::tokens(x, k, cols);
            par_matmul(isa, l.lhs(), rhs, start, act, c, cols.ld)
        };
        match self {
            Dense::F32(l) => f32_product(l, x, c),
            Dense::Int8(l) => {
                let xq = quantize_cols(isa, l, x, k, cols, &mut buf.q);
                // The outlier features' share first, in f32: the int8
                // product then adds to it.
                let start = match xq.outliers {
                    [] => start,
                    outliers => {
                        let (w, xo) = l.outlier_operands(outliers, x, cols, &mut buf.outliers);
                        par_matmul(isa, w, xo, start, Act::None, c, cols.ld);
                        Start::Load
                    }
                };
                par_qmatmul(isa, l, xq, start, act, c, cols.ld)
            }
            Dense::Bf16(l) => par_bmatmul(isa, l, x, k, cols, start, act, &mut buf.pairs, c),
            Dense::Bf16OnF32(l) => {
                f32_product(l, bf16::round_cols(x, k, cols, &mut buf.rounded), c)
            }
        }
    }
}

/// The converted input of the current int8 or bf16 product, pooled with
/// the text's scratch.
#[derive(Default)]
struct DenseBuf {
    q: QBuf,
    outliers: (Buf, Buf),
    pairs: Vec<i32>,
    rounded: Buf,
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
    /// MPNet: each head's relative-position bias for this text, by offset
    /// (see [`RelativeBias::by_offset`]), `2n - 1` values a head; made once
    /// per text, read by every layer.
    rel: Buf,
    /// The converted input of the current int8 or bf16 product.
    dense: DenseBuf,
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
    /// The text's tokens: the first columns.
    tokens: usize,
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
        Cols { tokens, n, ld }
    }
}

/// The CPU kernels this machine runs, for `info` and the tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuKernels {
    /// The path the encoder uses now: the best this CPU has, or the one
    /// `PAPERSIM_ISA` names, after the self-check.
    pub selected: &'static str,
    /// Every path this CPU has, best first.
    pub available: Vec<&'static str>,
    /// A line for each path that failed its self-check.
    pub refused: Vec<String>,
}

/// Which kernels the CPU encoder runs here; an error when `PAPERSIM_ISA`
/// names a path this CPU lacks or no path at all.
pub fn cpu_kernels() -> Result<CpuKernels, EmbedError> {
    let (isa, refused) = Isa::select().map_err(EmbedError::BadDevice)?;
    Ok(CpuKernels {
        selected: isa.name(),
        available: Isa::available().iter().map(|i| i.name()).collect(),
        refused,
    })
}

/// BERT encoder on the CPU, f32, exact GELU: a drop-in [`Backend`] for
/// [`super::CandleBert`] on CPU. Returns zeros at padded positions.
pub struct CpuBert {
    dims: Dims,
    word: Table,
    pos: Vec<f32>,
    /// Token-type rows; one row of zeros for MPNet, which has none.
    typ: Vec<f32>,
    /// MPNet's relative-position table; None for BERT.
    rel_bias: Option<RelativeBias>,
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
                "f16 runs on CUDA only (--device cuda); on the CPU use f32, bf16 or int8".into(),
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
        let arch = match cfg.model_type.as_deref() {
            Some("mpnet") => Arch::Mpnet,
            None | Some("bert" | "roberta" | "xlm-roberta") => Arch::Bert,
            Some(other) => {
                return Err(bad_cfg(format!(
                    "model_type {other:?} is not supported by the CPU encoder \
                     (bert, roberta, xlm-roberta and mpnet are)"
                )))
            }
        };
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
            type_vocab: match arch {
                Arch::Mpnet => 1,
                Arch::Bert => cfg
                    .type_vocab_size
                    .ok_or_else(|| bad_cfg("type_vocab_size is missing".into()))?,
            },
            eps: cfg.layer_norm_eps as f32,
            act,
            arch,
        };

        let (isa, refused) = Isa::select().map_err(EmbedError::BadDevice)?;
        #[cfg(test)]
        let isa = tests::FORCED.with(|f| f.get()).unwrap_or(isa);
        for why in refused {
            eprintln!("warning: cpu encoder: {why}");
        }
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
        let (typ, rel_bias) = match arch {
            Arch::Bert => {
                let typ = w.get(
                    "embeddings.token_type_embeddings.weight",
                    &[dims.type_vocab, h],
                )?;
                (typ.into_owned(), None)
            }
            Arch::Mpnet => {
                let buckets = cfg.relative_attention_num_buckets.unwrap_or(32);
                let heads = cfg.num_attention_heads;
                let table = w.get("encoder.relative_attention_bias.weight", &[buckets, heads])?;
                let rb = RelativeBias::new(table.into_owned(), buckets, heads);
                (vec![0.0; h], Some(rb))
            }
        };
        let emb_ln = w.layer_norm("embeddings.LayerNorm", h)?;
        // Packing is most of the load (page faults on the file and on the
        // packed copy, and int8's quantization): one layer per task. Results
        // are gathered in order so that a bad file reports its first error.
        let layers: Vec<Result<Layer, EmbedError>> = pool.install(|| {
            (0..cfg.num_hidden_layers)
                .into_par_iter()
                .with_max_len(1)
                .map(|i| load_layer(&w, i, dims, precision, isa))
                .collect()
        });
        let layers = layers.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(CpuBert {
            dims,
            word,
            pos: pos.into_owned(),
            typ,
            rel_bias,
            emb_ln,
            layers,
            isa,
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
        // MPNet's bias, divided by the score scale: softmax multiplies
        // scores by it, and the bias is added after that scaling.
        let rel = match &self.rel_bias {
            Some(rb) => {
                let per_head = 2 * n - 1;
                let rel = s.rel.get(rb.heads() * per_head);
                let inv_scale = (d.head_dim as f32).sqrt();
                for (head, r) in rel.chunks_exact_mut(per_head).enumerate() {
                    rb.by_offset(head, n, inv_scale, r);
                }
                &*rel
            }
            None => &[],
        };

        // Every product and the attention heads are split into rayon tasks:
        // while other texts keep every worker busy they run in place, and at
        // the end of a batch an idle worker steals them from the last text.
        let hd = d.head_dim;
        for l in &self.layers {
            let qkv = s.qkv.get(3 * h * c.ld);
            let qkv_start = Start::Bias(l.qkv.bias());
            l.qkv
                .apply(isa, x, h, c, qkv_start, Act::None, &mut s.dense, qkv);
            let qkv = &*qkv;
            let ctx = s.ctx.get(h * c.ld);
            ctx.par_chunks_mut(hd * c.ld)
                .enumerate()
                .for_each(|(head, out)| {
                    let rel = rel.get(head * (2 * n - 1)..(head + 1) * (2 * n - 1));
                    with_pooled(&self.head_scratch, |hs| {
                        self.attention(hs, qkv, head, rel, n, c, out);
                    })
                });
            // x += Wo·ctx + b: the residual is where the accumulators start.
            let ao = Start::LoadBias(l.attn_out.bias());
            l.attn_out
                .apply(isa, ctx, h, c, ao, Act::None, &mut s.dense, x);
            layer_norm(isa, x, h, c, &l.ln1, d.eps, cols);
            let inter = s.inter.get(d.inter * c.ld);
            let fi = Start::Bias(l.ffn_in.bias());
            l.ffn_in.apply(isa, x, h, c, fi, d.act, &mut s.dense, inter);
            let fo = Start::LoadBias(l.ffn_out.bias());
            l.ffn_out
                .apply(isa, inter, d.inter, c, fo, Act::None, &mut s.dense, x);
            layer_norm(isa, x, h, c, &l.ln2, d.eps, cols);
        }
        for (i, &t) in s.rows.iter().enumerate() {
            for (k, o) in out[t * h..(t + 1) * h].iter_mut().enumerate() {
                *o = x[k * c.ld + i];
            }
        }
    }

    /// One head of self-attention over the `n` real tokens: softmax(Q·Kᵀ
    /// · scale + bias)·V into `out` (the head's hd rows of ctx). `rel`:
    /// MPNet's relative-position bias of this head divided by the scale,
    /// by offset (None for BERT).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        hs: &mut HeadScratch,
        qkv: &[f32],
        head: usize,
        rel: Option<&[f32]>,
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
        // With a bias the maxima are taken after it is added.
        let epilogue_max = if rel.is_none() { Some(&mut *max) } else { None };
        matmul(
            isa,
            keys,
            queries,
            zero,
            Act::None,
            None,
            epilogue_max,
            st,
            c.ld,
        );
        if let Some(rel) = rel {
            add_relative_bias(st, rel, n, c, max);
        }
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

/// The tensor names of one layer's parts, under `encoder.layer.{i}.`.
struct LayerNames {
    q: &'static str,
    k: &'static str,
    v: &'static str,
    attn_out: &'static str,
    ln1: &'static str,
}

impl Arch {
    fn layer_names(self) -> LayerNames {
        match self {
            Arch::Bert => LayerNames {
                q: "attention.self.query",
                k: "attention.self.key",
                v: "attention.self.value",
                attn_out: "attention.output.dense",
                ln1: "attention.output.LayerNorm",
            },
            Arch::Mpnet => LayerNames {
                q: "attention.attn.q",
                k: "attention.attn.k",
                v: "attention.attn.v",
                attn_out: "attention.attn.o",
                ln1: "attention.LayerNorm",
            },
        }
    }
}

/// Layer `i`'s weights, packed as `spec` says.
fn load_layer(
    w: &Weights<'_>,
    i: usize,
    dims: Dims,
    precision: Precision,
    isa: Isa,
) -> Result<Layer, EmbedError> {
    let h = dims.hidden;
    let l = format!("encoder.layer.{i}");
    let n = dims.arch.layer_names();
    let spec = DenseSpec { precision, isa };
    let q = w.get(&format!("{l}.{}.weight", n.q), &[h, h])?;
    let k = w.get(&format!("{l}.{}.weight", n.k), &[h, h])?;
    let v = w.get(&format!("{l}.{}.weight", n.v), &[h, h])?;
    let qb = w.get(&format!("{l}.{}.bias", n.q), &[h])?;
    let kb = w.get(&format!("{l}.{}.bias", n.k), &[h])?;
    let vb = w.get(&format!("{l}.{}.bias", n.v), &[h])?;
    // Q, K and V as one [3h, h] product: one pass over the activations.
    let qkv = Dense::new(
        spec,
        3 * h,
        h,
        |r| &[&*q, &*k, &*v][r / h][(r % h) * h..][..h],
        [&*qb, &*kb, &*vb].concat(),
    );
    // MPNet's first FFN output stays f32 under int8: its input (layer 0's
    // GELU output) quantizes worst of all the dense layers. Measured on
    // the reference texts' short edge cases (a CJK title, numbers,
    // punctuation): min cosine 0.9969 with every layer int8, 0.9974 with
    // this one in f32 (0.9996 with all twelve FFN outputs in f32); it is
    // one of the 48 dense layers.
    let ffn_out_spec = match (dims.arch, i, precision) {
        (Arch::Mpnet, 0, Precision::Int8) => DenseSpec {
            precision: Precision::F32,
            isa,
        },
        _ => spec,
    };
    Ok(Layer {
        qkv,
        attn_out: w.linear(&format!("{l}.{}", n.attn_out), h, h, spec)?,
        ln1: w.layer_norm(&format!("{l}.{}", n.ln1), h)?,
        ffn_in: w.linear(&format!("{l}.intermediate.dense"), h, dims.inter, spec)?,
        ffn_out: w.linear(&format!("{l}.output.dense"), dims.inter, h, ffn_out_spec)?,
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
    buf: DenseBuf,
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
        let isa = Isa::select().map_err(EmbedError::BadDevice)?.0;
        let spec = DenseSpec { precision, isa };
        let dense = Dense::new(spec, m, k, |r| &w[r * k..][..k], vec![0.0; m]);
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
            isa,
            x,
            c: Buf::default(),
            buf: DenseBuf::default(),
            pool,
        })
    }

    pub fn run(&mut self) {
        let m = self.dense.m();
        let (k, cols) = (self.k, self.cols);
        let x = self.x.get(k * cols.ld);
        let c = self.c.get(m * cols.ld);
        let start = Start::Bias(self.dense.bias());
        self.pool.install(|| {
            self.dense
                .apply(self.isa, x, k, cols, start, self.act, &mut self.buf, c)
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
    /// C's current values.
    Load,
}

impl<'a> Start<'a> {
    /// How the pass over K from `k0` starts, for rows from `row`: as
    /// `self` says for the first pass, from C's partial sums after it.
    fn init(self, k0: usize, row: usize) -> Init<'a> {
        match (k0, self) {
            (0, Start::Zero) => Init::Zero,
            (0, Start::Bias(b)) => Init::Bias(&b[row..]),
            (0, Start::LoadBias(b)) => Init::LoadBias(&b[row..]),
            _ => Init::Load,
        }
    }
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
            let init = start.init(k0, t0 * MR);
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
                kernel::panel(isa, &panel, &mut c[t0 * MR * ldc + p * NR..], ldc, max);
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
            Start::Load => Start::Load,
        };
        matmul(isa, block, b, start, act, None, None, c, ldc);
    });
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

/// Adds MPNet's bias to Sᵀ (`n` key rows, query columns `c.ld` apart):
/// key k's row gets `rel[n - 1 - k..][..n]` (see
/// [`RelativeBias::by_offset`]); `max` becomes each column's maximum,
/// padding columns (left as they are) included, as the product's epilogue
/// would have made it. One pass, n² adds against the product's n²·hd.
fn add_relative_bias(st: &mut [f32], rel: &[f32], n: usize, c: Cols, max: &mut [f32]) {
    for (k, row) in st.chunks_exact_mut(c.ld).take(n).enumerate() {
        let bias = &rel[n - 1 - k..][..n];
        for (s, b) in row[..n].iter_mut().zip(bias) {
            *s += b;
        }
        for (m, s) in max[..c.n].iter_mut().zip(&row[..c.n]) {
            *m = m.max(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use kernel::rng;

    thread_local! {
        /// The path `CpuBert::load` takes on this thread, whatever the
        /// CPU has (the emulated AMX path included).
        pub(super) static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
    }

    /// The whole encoder on the AMX path (on the emulated tiles where the
    /// CPU has none): int8 hidden states equal the `vpdpbusd` path's bit
    /// for bit (the same integer sums and epilogue), bf16 ones agree with
    /// the `vdpbf16ps` path's within f32 summation order. Covers what the
    /// product tests cannot: the layers' packing, the padded K of the
    /// activations, several row blocks and a batch with padding.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_amx_encoder_matches_the_avx512_paths() {
        use crate::embed::{DeviceSpec, Embedder, ModelSource, TokenBatch};
        if !Isa::Avx512Bf16.supported() {
            eprintln!("SKIPPED: the AMX path needs AVX-512 BF16 for its epilogue");
            return;
        }
        let files = match ModelSource::default_source().resolve() {
            Ok(f) => f,
            Err(e) => {
                assert!(std::env::var("CI").is_err(), "no model in CI: {e}");
                eprintln!("SKIPPED: no model ({e}); run scripts/fetch-model.sh");
                return;
            }
        };
        let texts = [
            "Attention is all you need.",
            "We study the sample complexity of learning halfspaces under Massart noise \
             and give the first polynomial-time algorithm with optimal misclassification \
             error, improving on results for random classification noise.",
        ];
        let ids = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32)
            .and_then(|e| e.tokenize(&texts))
            .expect("tokenize");
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let tb = TokenBatch::pad(&rows, 0);
        let run = |isa: Isa, precision: Precision| {
            FORCED.with(|f| f.set(Some(isa)));
            let model = CpuBert::load(&files, Some(2), precision).expect("load");
            FORCED.with(|f| f.set(None));
            assert_eq!(model.isa, isa);
            model.forward(&tb).expect("forward")
        };
        let int8 = run(Isa::Amx, Precision::Int8);
        assert_eq!(int8, run(Isa::Avx512Bf16, Precision::Int8));
        let (tiles, vector) = (
            run(Isa::Amx, Precision::Bf16),
            run(Isa::Avx512Bf16, Precision::Bf16),
        );
        // Rounding each layer's input to bf16 turns the last-bit
        // differences of another summation order into bf16 steps (2⁻⁸):
        // compared per token vector, by cosine.
        let dim = model_dim(&files);
        let worst = tiles
            .chunks_exact(dim)
            .zip(vector.chunks_exact(dim))
            .zip(&tb.mask)
            .filter(|(_, &m)| m != 0)
            .map(|((a, b), _)| {
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                dot / (norm(a) * norm(b))
            })
            .fold(1f32, f32::min);
        println!("bf16 token vectors, tiles against vdpbf16ps: min cosine {worst:.6}");
        assert!(worst > 0.9999, "{worst}");
    }

    fn model_dim(files: &crate::embed::ModelFiles) -> usize {
        let cfg: Config = read_json(&files.config).expect("config");
        cfg.hidden_size
    }

    fn isas() -> Vec<Isa> {
        Isa::available()
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
                c[i * n + j] = kernel::scalar::act(act, (s * scale[j] as f64) as f32) as f64;
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
    fn token_columns_are_whole_panels_with_odd_stride() {
        let cols = |tokens, n, ld| Cols { tokens, n, ld };
        assert_eq!(Cols::for_tokens(1), cols(1, 16, 16));
        assert_eq!(Cols::for_tokens(240), cols(240, 240, 240));
        assert_eq!(Cols::for_tokens(256), cols(256, 256, 272));
        for t in 1..600 {
            let c = Cols::for_tokens(t);
            assert!(c.n >= t && c.n < t + NR && c.n.is_multiple_of(NR));
            assert!(c.ld >= c.n && (c.ld / NR) % 2 == 1);
        }
    }
}
