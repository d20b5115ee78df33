"""hnswlib top-10 against exact search on a real index: recall@k and latency.

    python bench/ann_recall.py INDEX_DIR [--queries 500] [--k 10] [--ef 10,50,100,200,400]

Queries are stored unit vectors perturbed with noise (so they are not in the index), which
needs no model. Prints recall@k of the graph at each query-time ef against brute force, and
the mean latency of each. codesearch sets ef = max(EF_SEARCH, 2k) at load (hnswlib does not
save ef).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.ann import EF_SEARCH, AnnIndex, exact_search  # noqa: E402
from codesearch.store import Store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default=f"10,50,100,{EF_SEARCH},400")
    ap.add_argument("--noise", type=float, default=0.5)
    args = ap.parse_args()
    store = Store(args.index_dir).open()
    ids, mat = store.vectors_for_chunks()
    ann = AnnIndex(args.index_dir, mat.shape[1])
    if not ann.load(store.live_label_stamp()):
        ann.build(ids, mat)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(ids), size=min(args.queries, len(ids)), replace=False)
    queries = mat[picks] + args.noise * rng.standard_normal((len(picks), mat.shape[1])).astype(np.float32) \
        / np.sqrt(mat.shape[1])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(exact_search(mat, ids, q, args.k)[0].tolist()) for q in queries]
    print(f"{args.index_dir}: {len(ids)} vectors, {mat.shape[1]} dims, {len(queries)} queries, k={args.k}")
    t0 = time.perf_counter()
    for q in queries:
        exact_search(mat, ids, q, args.k)
    print(f"exact search: {1000 * (time.perf_counter() - t0) / len(queries):.2f} ms/query")
    for ef in [int(x) for x in args.ef.split(",")]:
        ann.index.set_ef(ef)
        t0 = time.perf_counter()
        found = [set(ann.index.knn_query(q.reshape(1, -1), k=args.k)[0][0].tolist()) for q in queries]
        ms = 1000 * (time.perf_counter() - t0) / len(queries)
        recall = np.mean([len(f & t) / len(t) for f, t in zip(found, truth)])
        print(f"ef={ef:<4} recall@{args.k}={recall:.4f}  {ms:.2f} ms/query"
              + ("   <- codesearch's setting" if ef == max(EF_SEARCH, 2 * args.k) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
