"""Hybrid answers with the full-text query beside the question's embedding (the default,
search.Searcher.candidates) against one after the other, in one process on one index,
interleaved question by question, with the hits compared:

    python bench/overlap_latency.py UNION [--rounds 2] [--json out.json]

UNION: an index made by bench/union_latency.py (or any index). Questions: every devset en,
zh and doc question. The query embedder is the one a real query uses (app.Embedders).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.app import Embedders, resolve_spec  # noqa: E402
from codesearch.search import Searcher  # noqa: E402
from codesearch.settings import load_settings  # noqa: E402
from codesearch.store import Store  # noqa: E402


def figures(times: list[float]) -> dict:
    v = sorted(times)
    return {"p50_ms": round(1000 * v[len(v) // 2], 1), "p95_ms": round(1000 * v[int(0.95 * len(v))], 1),
            "mean_ms": round(1000 * statistics.mean(v), 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("index", type=Path)
    ap.add_argument("--devset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "devset")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    store = Store(args.index).open()
    embedder = Embedders(load_settings().with_flags(device="cpu")).for_queries(
        resolve_spec(None, store.get_meta("model")["id"]))
    serial, beside = Searcher(store, embedder=embedder), Searcher(store, embedder=embedder)
    serial.overlap = False
    queries = [json.loads(line) for line in (args.devset / "queries.jsonl").read_text().splitlines() if line.strip()]
    texts = [q[f] for q in queries for f in ("en", "zh", "doc") if q.get(f)]
    for s in (serial, beside):
        s.answer(texts[0])  # caches and the engine warm
    times: dict[str, list[float]] = {"serial": [], "beside": []}
    same = 0
    for _ in range(args.rounds):
        for text in texts:
            got = {}
            for name, s in (("serial", serial), ("beside", beside)):
                t0 = time.perf_counter()
                hits = s.answer(text).hits
                times[name].append(time.perf_counter() - t0)
                got[name] = [(h.unit_id, round(h.score, 6)) for h in hits]
            same += got["serial"] == got["beside"]
    report = {"index": str(args.index), "questions": len(texts), "rounds": args.rounds,
              "identical_answers": same, "answers": len(texts) * args.rounds,
              **{name: figures(v) for name, v in times.items()}}
    for name in ("serial", "beside"):
        print(f"{name}: p50 {report[name]['p50_ms']} ms, p95 {report[name]['p95_ms']} ms, mean {report[name]['mean_ms']} ms")
    print(f"identical answers: {same} of {len(texts) * args.rounds}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
