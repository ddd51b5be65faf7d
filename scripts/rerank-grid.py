#!/usr/bin/env python3
"""Scores variants of the `sentences` re-ranking on paper-to-paper judgements,
on all query papers and on each half (even / odd positions among the sorted
query ids): choose on one half, confirm on the other.

It re-implements the ranking in numpy from a library's own files, so that
whitening powers and fusion weights can be compared without rebuilding:

    papersim build --corpus ../shared/data/citeseer/corpus.jsonl.gz --format beir --library /tmp/cs
    papersim export --library /tmp/cs --vectors /tmp/cs.npy --metadata /tmp/cs.jsonl
    papersim eval --library /tmp/cs --paper-qrels ../shared/data/citeseer/paper-qrels.txt \
        --modes keyword --run /tmp/cs-keyword.run
    python3 scripts/rerank-grid.py /tmp/cs /tmp/cs.npy /tmp/cs.jsonl /tmp/cs-keyword.run \
        ../shared/data/citeseer/paper-qrels.txt

Needs numpy. The library must have no removed papers (export rows = library
rows). Candidates are the dense top 100 and the keyword top 100, as in
`papersim`; the whitening is fitted on all sentences (papersim samples at most
50,000), so figures can differ from `papersim eval` in the last digit.
"""
import collections
import itertools
import json
import math
import struct
import sys

import numpy as np


def read_sentences(path):
    b = open(path, "rb").read()
    assert b[:8] == b"PSIMSEN\0", "not a sentences file"
    _version, dim = struct.unpack_from("<II", b, 8)
    rows, n = struct.unpack_from("<QQ", b, 16)
    o = 32
    offs = np.frombuffer(b, dtype="<u8", count=rows + 1, offset=o)
    o += 8 * (rows + 1)
    scales = np.frombuffer(b, dtype="<f4", count=n, offset=o)
    o += 4 * n
    codes = np.frombuffer(b, dtype="i1", count=n * dim, offset=o).reshape(n, dim)
    return offs.astype(np.int64), codes.astype(np.float32) * scales[:, None]


def whiten(x, p):
    """Rows of x whitened with power p and normalised (p = 0: centred)."""
    mu = x.mean(0)
    c = x - mu
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    y = c @ vt.T @ np.diag((s / s[0]) ** -p)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def main(lib, npy, meta, run, qrels):
    v = np.load(npy)
    ids = [json.loads(line)["id"] for line in open(meta)]
    idx = {d: i for i, d in enumerate(ids)}
    manifest = json.load(open(f"{lib}/manifest.json"))
    offs, sv = read_sentences(f"{lib}/{manifest['files']['sentences']['name']}")
    assert len(offs) - 1 == len(ids), "library rows and export differ (removed papers?)"
    rel = collections.defaultdict(set)
    for line in open(qrels):
        a, b, r = line.split()
        if int(r) > 0 and a in idx and b in idx:
            rel[a].add(b)
    keyword = collections.defaultdict(list)
    for line in open(run):
        q, _, d, _rank, _score, _tag = line.split()
        if d in idx:
            keyword[q].append(idx[d])
    raw = v @ v.T
    queries = sorted(rel)
    halves = {"all": queries, "even": queries[0::2], "odd": queries[1::2]}
    cands = {}
    for a in queries:
        s = raw[idx[a]].copy()
        s[idx[a]] = -9
        dense = list(np.argsort(-s)[:100])
        cands[a] = (dense, keyword[a][:100], np.array(sorted(set(dense) | set(keyword[a][:100]))))

    def ndcg(order, r):
        dcg = sum(1 / math.log2(i + 2) for i, t in enumerate(order[:10]) if ids[t] in r)
        return dcg / sum(1 / math.log2(i + 2) for i in range(min(10, len(r))))

    def rrf(lists):
        sc = collections.defaultdict(float)
        for lst, w in lists:
            for i, c in enumerate(lst):
                sc[c] += w / (61 + i)
        return sorted(sc, key=lambda c: -sc[c])

    def align(a, c, x):
        m = x[offs[a] : offs[a + 1]] @ x[offs[c] : offs[c + 1]].T
        return 0.5 * (m.max(1).mean() + m.max(0).mean()) if m.size else 0.0

    def score(fn):
        return {h: sum(ndcg(fn(a), rel[a]) for a in qs) / len(qs) for h, qs in halves.items()}

    def show(label, r):
        print(f"{label:44s} " + "  ".join(f"{h} {r[h]:.4f}" for h in halves))

    show("dense", score(lambda a: cands[a][0]))
    show("hybrid (keyword 1)", score(lambda a: rrf([(cands[a][0], 1), (cands[a][1], 1)])))
    paper_w = {p: whiten(v, p) if p else v for p in [0, 0.25, 0.5]}
    sent_w = {p: whiten(sv, p) if p else sv for p in [0, 0.25, 0.5]}

    # Each signal alone, over the same candidates: the paper cosine and the
    # sentence alignment, raw, centred (power 0) and whitened.
    for label, p in [("raw", None), ("centred", 0.0), ("p=0.25", 0.25), ("p=0.5", 0.5)]:
        w = v if p is None else whiten(v, p)
        x = sv if p is None else whiten(sv, p)

        def by_cosine(a, w=w):
            c = cands[a][2]
            return list(c[np.argsort(-(w[c] @ w[idx[a]]))])

        def by_alignment(a, x=x):
            c = cands[a][2]
            return list(c[np.argsort(-np.array([align(idx[a], j, x) for j in c]))])

        show(f"paper cosine alone, {label}", score(by_cosine))
        show(f"sentence alignment alone, {label}", score(by_alignment))
    for pp, ps in itertools.product([0, 0.25, 0.5], [0, 0.25, 0.5]):
        w = paper_w[pp]
        al = {a: np.array([align(idx[a], c, sent_w[ps]) for c in cands[a][2]]) for a in queries}
        for wk, wa in itertools.product([0.5, 1.0], [0.5, 1.0]):

            def fn(a):
                d, k, c = cands[a]
                by_dense = list(c[np.argsort(-(w[c] @ w[idx[a]]))])
                return rrf([(by_dense, 1), (k, wk), (list(c[np.argsort(-al[a])]), wa)])

            show(f"papers p={pp} sentences p={ps} keyword {wk} align {wa}", score(fn))
        sys.stdout.flush()

    # Two alternatives at the chosen powers and weights (0.25, 0.5, 0.5, 0.5):
    # an optimal-transport alignment (Sinkhorn, as in Aspire) in place of
    # max-sim, and a hubness correction (CSLS: minus a quarter or half of each
    # candidate's mean cosine to its 10 nearest papers) of the paper cosine.
    w, x = paper_w[0.25], sent_w[0.5]

    def sinkhorn(m, eps=0.05, steps=50):
        k = np.exp(-(1 - m) / eps)
        a, b = np.ones(m.shape[0]) / m.shape[0], np.ones(m.shape[1]) / m.shape[1]
        u = np.ones(m.shape[0])
        for _ in range(steps):
            vv = b / (k.T @ u + 1e-30)
            u = a / (k @ vv + 1e-30)
        return ((u[:, None] * k * vv[None, :]) * m).sum()

    def ot(a, c):
        m = x[offs[a] : offs[a + 1]] @ x[offs[c] : offs[c + 1]].T
        return sinkhorn(m) if m.size else 0.0

    sims = w @ w.T
    np.fill_diagonal(sims, -9)
    hub = (-np.sort(-sims, axis=1)[:, :10]).mean(1)
    al = {a: np.array([align(idx[a], c, x) for c in cands[a][2]]) for a in queries}
    tr = {a: np.array([ot(idx[a], c) for c in cands[a][2]]) for a in queries}
    for label, by, penalty in [
        ("chosen (max-sim)", al, 0.0),
        ("optimal transport alignment", tr, 0.0),
        ("CSLS 0.25", al, 0.25),
        ("CSLS 0.5", al, 0.5),
    ]:

        def fn(a, by=by, penalty=penalty):
            d, k, c = cands[a]
            sc = w[c] @ w[idx[a]] - penalty * hub[c]
            return rrf([(list(c[np.argsort(-sc)]), 1), (k, 0.5), (list(c[np.argsort(-by[a])]), 0.5)])

        show(label, score(fn))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
