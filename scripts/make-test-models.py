#!/usr/bin/env python3
"""Builds the tiny random-weight sentence-transformers models under
tests/fixtures/models/ that tests/models.rs checks papersim against.

    python3 -m venv target/st-venv
    target/st-venv/bin/pip install sentence-transformers   # torch comes with it
    target/st-venv/bin/python scripts/make-test-models.py            # models + both references
    target/st-venv/bin/python scripts/make-test-models.py --st       # only st-reference.json
    python3 scripts/make-test-models.py --numpy-only  # numpy, safetensors, tokenizers suffice

Each model directory is laid out as sentence-transformers saves one
(config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
modules.json, 1_Pooling/config.json, 2_Dense/..., sentence_bert_config.json,
config_sentence_transformers.json) and comes with two references for the
same 10 texts: st-reference.json, the vectors sentence-transformers itself
computes (`SentenceTransformer(path, device="cpu")`; per prompt role for the
model with prompts, see st_references), which tests/models.rs holds papersim
to, and reference.json, an independent float64 numpy transcription.

The numpy transcription follows what sentence-transformers runs
(transformers' BertModel / RobertaModel forward in eval mode, then Pooling,
Dense, Normalize); it follows
transformers.models.bert.modeling_bert and
sentence_transformers.models.{Pooling,Dense,Normalize} operation by
operation (erf GELU, LayerNorm with the config's eps, position ids from
padding_idx + 1 for RoBERTa, CLS / mean pooling over the attention mask,
Dense = activation(x W^T + b)).
"""

import json
import math
import os
import re

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

TEXTS = [
    "Graph neural networks for molecule property prediction.",
    "Self-supervised learning improves medical image segmentation.",
    "We study reinforcement learning for robot manipulation tasks.",
    "Transformer language models generate code from natural language.",
    "Adversarial examples fool image classifiers.",
    "Federated learning with differential privacy protects user data.",
    "A survey of speech recognition with neural networks.",
    "Knowledge distillation compresses large models into small ones.",
    "Object detection for autonomous driving in the rain.",
    "Quantum algorithms solve optimization problems faster?",
]

HIDDEN, LAYERS, HEADS, INTER, MAX_POS = 32, 2, 4, 64, 64
SPECIAL = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]


def vocab(extra=()):
    words = set()
    for t in list(TEXTS) + list(extra):
        words.update(re.findall(r"\w+|[^\w\s]", t.lower()))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    v = SPECIAL + sorted(words) + letters + ["##" + c for c in letters]
    seen, out = set(), []
    for w in v:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return {w: i for i, w in enumerate(out)}


def tokenizer(vocab):
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tok


def weights(rng, n_vocab, type_vocab, prefix=""):
    def n(*shape, std=0.3):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def ln(name, w):
        w[f"{name}.weight"] = (1.0 + n(HIDDEN, std=0.1)).astype(np.float32)
        w[f"{name}.bias"] = n(HIDDEN, std=0.1)

    w = {}
    e = prefix + "embeddings"
    w[f"{e}.word_embeddings.weight"] = n(n_vocab, HIDDEN, std=1.0)
    w[f"{e}.position_embeddings.weight"] = n(MAX_POS + 2, HIDDEN, std=1.0)
    w[f"{e}.token_type_embeddings.weight"] = n(type_vocab, HIDDEN, std=1.0)
    ln(f"{e}.LayerNorm", w)
    for i in range(LAYERS):
        p = f"{prefix}encoder.layer.{i}"
        for m in ["attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"]:
            w[f"{p}.{m}.weight"] = n(HIDDEN, HIDDEN)
            w[f"{p}.{m}.bias"] = n(HIDDEN, std=0.1)
        ln(f"{p}.attention.output.LayerNorm", w)
        w[f"{p}.intermediate.dense.weight"] = n(INTER, HIDDEN)
        w[f"{p}.intermediate.dense.bias"] = n(INTER, std=0.1)
        w[f"{p}.output.dense.weight"] = n(HIDDEN, INTER, std=0.2)
        w[f"{p}.output.dense.bias"] = n(HIDDEN, std=0.1)
        ln(f"{p}.output.LayerNorm", w)
    return w


def layer_norm(x, g, b, eps):
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def forward(w, ids, pos_offset, prefix=""):
    """transformers' BertModel (or RobertaModel) on one unpadded text, float64."""
    g = lambda k: w[prefix + k].astype(np.float64)
    eps = 1e-12
    t = len(ids)
    pos = np.arange(t) + pos_offset
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[pos]
    x = x + g("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    hd = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        lin = lambda v, m: v @ g(p + m + ".weight").T + g(p + m + ".bias")
        q, k, v = (lin(x, f"attention.self.{m}") for m in ["query", "key", "value"])
        ctx = np.zeros_like(x)
        for h in range(HEADS):
            s = slice(h * hd, (h + 1) * hd)
            a = q[:, s] @ k[:, s].T / math.sqrt(hd)
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx[:, s] = a @ v[:, s]
        x = layer_norm(lin(ctx, "attention.output.dense") + x,
                       g(p + "attention.output.LayerNorm.weight"),
                       g(p + "attention.output.LayerNorm.bias"), eps)
        inter = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(inter, "output.dense") + x, g(p + "output.LayerNorm.weight"),
                       g(p + "output.LayerNorm.bias"), eps)
    return x


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def make(name, *, model_type, pooling, dense=None, prompts=None, default_prompt=None, seed):
    rng = np.random.default_rng(seed)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    # The prompts' words join the vocabulary, so a prompt is real tokens.
    v = vocab(list((prompts or {}).values()))
    tok = tokenizer(v)
    tok.save(os.path.join(d, "tokenizer.json"))
    # Without it transformers builds the tokenizer its model_type implies (a
    # byte-level BPE RobertaTokenizer for the RoBERTa fixture, whose ids
    # overrun the embedding table) instead of loading tokenizer.json.
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]", "model_max_length": MAX_POS,
    })
    roberta = model_type == "roberta"
    pad = 1
    type_vocab = 1 if roberta else 2
    max_pos = MAX_POS + 2 if roberta else MAX_POS + 2
    cfg = {
        "architectures": ["RobertaModel" if roberta else "BertModel"],
        "model_type": model_type,
        "vocab_size": len(v),
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTER,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "use_cache": True,
        "classifier_dropout": None,
        "pad_token_id": pad,
        "position_embedding_type": "absolute",
    }
    write_json(os.path.join(d, "config.json"), cfg)
    w = weights(rng, len(v), type_vocab)
    save_file(w, os.path.join(d, "model.safetensors"))
    write_json(os.path.join(d, "sentence_bert_config.json"),
               {"max_seq_length": MAX_POS, "do_lower_case": False})
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    dw = None
    if dense:
        dw = {"linear.weight": (rng.standard_normal((dense, HIDDEN)) * 0.3).astype(np.float32),
              "linear.bias": (rng.standard_normal(dense) * 0.1).astype(np.float32)}
        modules.append({"idx": 2, "name": "2", "path": "2_Dense",
                        "type": "sentence_transformers.models.Dense"})
        write_json(os.path.join(d, "2_Dense", "config.json"), {
            "in_features": HIDDEN, "out_features": dense, "bias": True,
            "activation_function": "torch.nn.modules.activation.Tanh"})
        save_file(dw, os.path.join(d, "2_Dense", "model.safetensors"))
    modules.append({"idx": len(modules), "name": str(len(modules)),
                    "path": f"{len(modules)}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    write_json(os.path.join(d, "modules.json"), modules)
    st = {"__version__": {"sentence_transformers": "3.0.1"}, "similarity_fn_name": "cosine",
          "prompts": prompts or {}, "default_prompt_name": default_prompt}
    write_json(os.path.join(d, "config_sentence_transformers.json"), st)

    pos_offset = pad + 1 if roberta else 0
    refs = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        h = forward(w, np.array(ids), pos_offset)
        x = h[0] if pooling == "cls" else h.mean(0)
        if dw is not None:
            x = np.tanh(x @ dw["linear.weight"].astype(np.float64).T + dw["linear.bias"])
        x = x / np.linalg.norm(x)
        refs.append({"text": text, "vector": [round(float(f), 7) for f in x]})
    write_json(os.path.join(d, "reference.json"), refs)
    print(name, len(v), "tokens in the vocabulary,", len(refs), "reference vectors")


def st_references(name):
    """Encodes TEXTS with sentence-transformers itself and writes
    st-reference.json: {"versions", "sets": {set: [vector, ...]}}. Sets:
    "plain" (encode: default_prompt_name's prompt), and for a model with
    prompts "query" (encode_query), "document" (encode_document),
    "prompt:query" (encode(prompt_name="query"), what --prompt query gives),
    "plain-without-default" (encode with default_prompt_name null) and
    "e5-document" (prompts {"query", "passage"} only: encode(prompt_name=
    "passage"), which papersim's documents get; sentence-transformers 6.3's
    encode_document gives no prompt there, see src/embed/prompts.rs)."""
    import shutil
    import tempfile

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    d = os.path.join(OUT, name)

    def vecs(x):
        return [[round(float(f), 7) for f in row] for row in np.asarray(x, dtype=np.float64)]

    def variant(edit):
        tmp = tempfile.mkdtemp()
        shutil.copytree(d, tmp, dirs_exist_ok=True)
        p = os.path.join(tmp, "config_sentence_transformers.json")
        with open(p) as f:
            c = json.load(f)
        edit(c)
        write_json(p, c)
        return tmp

    m = SentenceTransformer(d, device="cpu")
    sets = {"plain": vecs(m.encode(TEXTS))}
    with open(os.path.join(d, "config_sentence_transformers.json")) as f:
        configured = json.load(f)
    if configured.get("prompts"):
        sets["query"] = vecs(m.encode_query(TEXTS))
        sets["document"] = vecs(m.encode_document(TEXTS))
        sets["prompt:query"] = vecs(m.encode(TEXTS, prompt_name="query"))
        tmp = variant(lambda c: c.update(default_prompt_name=None))
        sets["plain-without-default"] = vecs(SentenceTransformer(tmp, device="cpu").encode(TEXTS))
        shutil.rmtree(tmp)
        tmp = variant(lambda c: c.update(
            prompts={"query": c["prompts"]["query"], "passage": c["prompts"]["document"]},
            default_prompt_name=None))
        sets["e5-document"] = vecs(SentenceTransformer(tmp, device="cpu").encode(
            TEXTS, prompt_name="passage"))
        shutil.rmtree(tmp)
    write_json(os.path.join(d, "st-reference.json"), {
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "torch": torch.__version__},
        "texts": TEXTS,
        "sets": sets,
    })
    print(name, "st-reference.json:", ", ".join(sets))


FIXTURES = ["bert-cls-dense", "roberta-mean", "bert-prompts"]

if __name__ == "__main__":
    import sys

    # --st: only (re)compute the sentence-transformers references of the
    # committed fixtures; needs sentence-transformers and torch.
    if "--st" not in sys.argv:
        make("bert-cls-dense", model_type="bert", pooling="cls", dense=16, seed=1)
        make("roberta-mean", model_type="roberta", pooling="mean", seed=2)
        make("bert-prompts", model_type="bert", pooling="mean", seed=3,
             prompts={"query": "query: ", "document": "passage: ",
                      "classification": "classify the topic: "},
             default_prompt="classification")
    if "--numpy-only" not in sys.argv:
        for name in FIXTURES:
            st_references(name)
