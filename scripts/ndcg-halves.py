#!/usr/bin/env python3
"""nDCG@10 of each mode of a TREC run on all query papers and on each half
(even / odd positions among the sorted query ids), as docs/evaluation.md
reports them: choose on one half, confirm on the other.

    papersim eval --library /tmp/cs --paper-qrels ../shared/data/citeseer/paper-qrels.txt \\
        --modes dense,hybrid,sentences --run /tmp/cs.run
    python3 scripts/ndcg-halves.py /tmp/cs.run ../shared/data/citeseer/paper-qrels.txt

The run file is `papersim eval --run`'s (qid Q0 docid rank score tag, one
tag per mode); the qrels are `query_paper_id candidate_id relevance` lines.
Queries the run has no line for are left out, as `papersim eval` scores only
the queries it ran. Standard library only.
"""
import collections
import math
import sys


def read_qrels(path):
    qrels = collections.defaultdict(dict)
    for line in open(path):
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            qrels[parts[0]][parts[1]] = float(parts[2])
        except ValueError:
            continue  # a header line
    return qrels


def read_run(path):
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    for n, line in enumerate(open(path), 1):
        parts = line.split()
        if len(parts) != 6:
            sys.exit(f"{path}:{n}: expected 6 fields (qid Q0 docid rank score tag)")
        q, _, d, rank, _, tag = parts
        runs[tag][q].append((int(rank), d))
    return runs


def ndcg10(ranked, rel):
    dcg = sum(rel.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    qrels = read_qrels(sys.argv[2])
    for tag, by_query in read_run(sys.argv[1]).items():
        queries = sorted(by_query)
        scores = [ndcg10([d for _, d in sorted(by_query[q])], qrels.get(q, {})) for q in queries]
        mean = lambda xs: sum(xs) / max(len(xs), 1)
        print(
            f"{tag:20s} all {mean(scores):.4f}  even {mean(scores[0::2]):.4f}  "
            f"odd {mean(scores[1::2]):.4f}  ({len(scores)} queries)"
        )


if __name__ == "__main__":
    main()
