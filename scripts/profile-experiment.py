#!/usr/bin/env python3
"""The profile experiment of docs/evaluation.md ("Ranking new papers against a
profile"): which ranker finds a paper's citation links from the other half of
them, arxiv-sanity's tf-idf + linear SVM against rankers on papersim's
embeddings.

    papersim build --corpus ../shared/data/citeseer/corpus.jsonl.gz --format beir --library LIB
    papersim export --library LIB --vectors cs.npy --metadata cs.jsonl
    python3 -m venv target/feed-venv && target/feed-venv/bin/pip install scikit-learn numpy
    target/feed-venv/bin/python scripts/profile-experiment.py \\
        --corpus ../shared/data/citeseer/corpus.jsonl.gz \\
        --qrels ../shared/data/citeseer/paper-qrels.txt --vectors cs.npy --metadata cs.jsonl

Profiles: every query paper with at least 4 links. Its links sorted by id,
the ones at even positions (0, 2, ...) are the profile and the others are
to be found among every paper of the corpus except the profile and the query
paper itself (`papersim eval --profiles` splits the same way). Scores:
recall@20 and nDCG@20 (binary gains), mean over profiles, on all profiles and
on each half of them (even / odd positions among the sorted query ids), so a
choice made on one half can be confirmed on the other.

arxiv-sanity's ranker as arxiv-sanity-lite's compute.py and serve.py have it:
TfidfVectorizer(strip_accents='unicode', lowercase=True, analyzer='word',
stop_words='english', token_pattern=r'(?u)\\b[a-zA-Z_][a-zA-Z0-9_]+\\b',
ngram_range=(1, 2), max_features=20000, norm='l2', use_idf=True,
smooth_idf=True, sublinear_tf=True, max_df=0.1, min_df=5) over
"title abstract authors", fitted on the whole corpus; LinearSVC(
class_weight='balanced', C=0.01, max_iter=1000000, tol=1e-6) trained with the
profile as positives and every other paper as negatives, then every paper
ranked by its decision value.
"""
import argparse
import collections
import gzip
import json
import math
import sys
import time

import numpy as np
from scipy import sparse
from sklearn import svm
from sklearn.feature_extraction.text import TfidfVectorizer

K = 20


def read_corpus(path):
    opener = gzip.open if path.endswith(".gz") else open
    ids, texts = [], []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["_id"])
            authors = " ".join(r.get("authors", []) or [])
            texts.append(f"{r.get('title', '')} {r.get('text', '')} {authors}")
    return ids, texts


def read_qrels(path):
    links = collections.defaultdict(set)
    for line in open(path):
        parts = line.split()
        if len(parts) >= 3 and parts[2] not in ("0", "relevance"):
            links[parts[0]].add(parts[1])
    return links


def profiles(links, row):
    """(query id, profile rows, target rows) per query paper with >= 4 links
    in the corpus, sorted by query id."""
    out = []
    for q in sorted(links):
        ls = sorted(l for l in links[q] if l in row)
        if len(ls) < 4 or q not in row:
            continue
        out.append((q, [row[l] for l in ls[0::2]], {row[l] for l in ls[1::2]}))
    return out


def score(ranked, targets):
    gains = [1.0 if r in targets else 0.0 for r in ranked[:K]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(K, len(targets))))
    return sum(gains) / len(targets), dcg / ideal


def top(scores, skip):
    scores = scores.astype(np.float64).copy()
    scores[list(skip)] = -np.inf
    # Ties broken by row, as papersim does.
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[:K].tolist()


def linear_svm(x, pos, c):
    y = np.zeros(x.shape[0], dtype=np.int32)
    y[pos] = 1
    clf = svm.LinearSVC(class_weight="balanced", C=c, max_iter=1000000, tol=1e-6)
    clf.fit(x, y)
    return clf.decision_function(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--qrels", required=True)
    ap.add_argument("--vectors", help="papersim export's .npy")
    ap.add_argument("--metadata", help="papersim export's JSON lines (row order of --vectors)")
    ap.add_argument("--limit", type=int, help="first N profiles only (a quick look)")
    ap.add_argument("--json", action="store_true", help="one JSON object per ranker")
    args = ap.parse_args()

    ids, texts = read_corpus(args.corpus)
    row = {d: i for i, d in enumerate(ids)}
    tfidf = TfidfVectorizer(
        input="content", encoding="utf-8", decode_error="replace",
        strip_accents="unicode", lowercase=True, analyzer="word",
        stop_words="english", token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2), max_features=20000, norm="l2", use_idf=True,
        smooth_idf=True, sublinear_tf=True, max_df=0.1, min_df=5,
    ).fit_transform(texts).tocsr()

    rankers = {"arxiv-sanity tf-idf SVM (C=0.01)": lambda p: linear_svm(tfidf, p, 0.01)}
    if args.vectors:
        emb = np.load(args.vectors)
        meta_ids = [json.loads(l)["id"] for l in open(args.metadata)]
        # Rows of the export follow the library; put them in corpus order.
        emb = emb[[{d: i for i, d in enumerate(meta_ids)}[d] for d in ids]]
        both = sparse.hstack([sparse.csr_matrix(emb), tfidf]).tocsr()
        rankers.update({
            "centroid": lambda p: emb @ (emb[p].mean(axis=0)),
            "max-similarity": lambda p: (emb @ emb[p].T).max(axis=1),
            "mean of centroid and max-similarity": lambda p: 0.5 * (
                emb @ emb[p].mean(axis=0) + (emb @ emb[p].T).max(axis=1)),
            "embedding SVM (C=0.01)": lambda p: linear_svm(emb, p, 0.01),
            "embedding SVM (C=0.1)": lambda p: linear_svm(emb, p, 0.1),
            "embedding SVM (C=1)": lambda p: linear_svm(emb, p, 1.0),
            "embedding + tf-idf SVM (C=0.1)": lambda p: linear_svm(both, p, 0.1),
        })

    profs = profiles(read_qrels(args.qrels), row)
    if args.limit:
        profs = profs[: args.limit]
    print(f"{len(profs)} profiles, {len(ids)} papers", file=sys.stderr)
    if not args.json:
        print("| ranker | recall@20 | nDCG@20 | recall@20 even | recall@20 odd |")
        print("|---|---|---|---|---|")
    for name, rank in rankers.items():
        t0 = time.time()
        per = []
        for q, prof, targets in profs:
            ranked = top(rank(prof), set(prof) | {row[q]})
            per.append(score(ranked, targets))
        r = np.array(per)
        res = {
            "ranker": name, "profiles": len(per),
            "recall@20": r[:, 0].mean(), "ndcg@20": r[:, 1].mean(),
            "recall@20 even": r[0::2, 0].mean(), "recall@20 odd": r[1::2, 0].mean(),
            "seconds": time.time() - t0,
        }
        if args.json:
            print(json.dumps(res))
        else:
            print(f"| {name} | {res['recall@20']:.4f} | {res['ndcg@20']:.4f} | "
                  f"{res['recall@20 even']:.4f} | {res['recall@20 odd']:.4f} |")
        sys.stdout.flush()
        print(f"{name}: {res['seconds']:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
