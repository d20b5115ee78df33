"""Warm query latency on an index of ~50,000 units: the union of the devset repositories.

    python bench/union_latency.py --devset ../shared/devset --repos DEV_REPOS --index-root IDX \\
        --union /tmp/union-idx [--target-units 50000] [--json docs/bench/union_latency.json]

Indexing the union from scratch costs about 50 minutes of embedding on 2 cores, so the union
is assembled from the 8 devset indexes instead (IDX, made by `codesearch index`), through
store.py's own methods: every unit with its full-text row (store.add_unit, fields from
chunking.lexical_fields, the doc column copied from the source index), its chunks and their vectors (store.put_vectors), paths prefixed
`rN/<repo>/`; the whole set is copied again under the next prefix until the union holds
`--target-units`. Copies after the first get their vectors moved by a small random step
(cosine about 0.99 to the original, seeded) so the ANN graph holds distinct points, as a
real index would, rather than exact duplicates. Then the hnswlib graph is built
(ann.AnnIndex.build) and the noise floor measured, as the indexer does.

Latency is measured the way the daemon answers: one long-lived daemon.Server (a SearchSession,
the query embedder of app.Embedders, warmed up by Server.warm_up), each question sent as one
`query` request (k=10, hybrid), timed around Server.handle. Questions: every en, zh and doc
question of the devset, twice (the second round is reported; the first warms the caches).
For comparison in the same run, the same is measured on the largest single devset index.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.ann import AnnIndex  # noqa: E402
from codesearch.chunking import lexical_fields  # noqa: E402
from codesearch.extract import Unit  # noqa: E402
from codesearch.paths import index_dir_for  # noqa: E402
from codesearch.store import Store  # noqa: E402

FIELDS = ("en", "zh", "doc")


def source_indexes(args) -> list[tuple[str, Path]]:
    out = []
    for r in json.loads((args.devset / "repos.json").read_text()):
        root = args.repos / r["repo"].replace("/", "+")
        repo_dir = root / r["subdir"] if r.get("subdir") else root
        out.append((r["repo"].replace("/", "+"), index_dir_for(repo_dir, args.index_root)))
    return out


def copy_index(src: Store, dst: Store, prefix: str, replica: int, rng) -> int:
    """Every unit of `src` into `dst` under `prefix`; returns the number of units."""
    secondary = src.secondary_units()
    chunk_units = src.chunk_units()
    ids, mat = src.vectors_for_chunks()
    if replica:
        noise = rng.standard_normal(mat.shape).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        mat = mat + 0.14 * noise  # cosine to the original about 0.99
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    hashes = [f"union:{prefix}{int(c)}" for c in ids]
    dst.put_vectors(hashes, mat)
    chunks_of: dict[int, list[str]] = {}
    for c, h in zip(ids.tolist(), hashes):
        chunks_of.setdefault(chunk_units[c], []).append(h)
    rows = src.units_by_id(sorted(chunks_of))
    # the doc column as the source index holds it: it also has the unit's class summary
    # (extract.Unit.owner_doc), which the units table does not keep
    docs = dict(src.conn.execute("SELECT rowid, doc FROM units_fts"))
    now = time.time()
    with dst.transaction():
        seen_paths = set()
        for uid, r in rows.items():
            unit = Unit(path=prefix + r[1], language=r[6], kind=r[7], name=r[4], qualname=r[5],
                        start_line=r[2], end_line=r[3], signature=r[8], doc=r[9], code=r[10])
            if unit.path not in seen_paths:
                seen_paths.add(unit.path)
                dst.put_file(unit.path, unit.language, "union", len(unit.code), 0, now)
            names, path, _, code = lexical_fields(unit)
            dst.add_unit(unit, uid in secondary, (names, path, docs.get(uid, ""), code), chunks_of[uid])
    return len(rows)


def build_union(args) -> dict:
    out = Path(args.union)
    manifest = out / "union.json"
    if manifest.exists() and not args.rebuild:
        return json.loads(manifest.read_text())
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    dst = Store(out).open(create=True)
    rng = np.random.default_rng(14)
    sources = source_indexes(args)
    model = None
    units = replica = 0
    t0 = time.perf_counter()
    while units < args.target_units:
        for name, idx in sources:
            src = Store(idx).open()
            model = model or src.get_meta("model")
            units += copy_index(src, dst, f"r{replica}/{name}/", replica, rng)
            src.close()
        replica += 1
    dst.set_meta("model", model)
    dst.set_meta("updated_at", time.time())
    ann = AnnIndex(out, model["dim"])
    ann.build(*dst.vectors_for_chunks())
    ann.save(dst.live_label_stamp())
    stats = dst.stats()
    dst.close()
    info = {"units": stats["units"], "chunks": stats["chunks"], "replicas": replica,
            "build_s": round(time.perf_counter() - t0, 1), "sources": [n for n, _ in sources]}
    manifest.write_text(json.dumps(info, indent=1))
    return info


def measure(index_dir: Path, questions: list[tuple[str, str]], rounds: int = 2) -> dict:
    from codesearch import daemon
    from codesearch.app import Workspace
    from codesearch.settings import load_settings

    ws = Workspace(root=index_dir, index_dir=index_dir, settings=load_settings())
    server = daemon.Server(ws)
    t0 = time.perf_counter()
    server.warm_up()
    warm_up_s = time.perf_counter() - t0
    if not isinstance(server.session.store.get_meta("noise_floor"), (int, float)):
        server.session.searcher.noise_floor()  # once per open index, as a first query would
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        for field, text in questions:
            req = {"op": "query", "queries": [{"text": text, "k": 10, "mode": "hybrid"}]}
            t = time.perf_counter()
            reply = server.handle(req)
            dt = time.perf_counter() - t
            assert reply["ok"], reply
            if r == rounds - 1:
                times.setdefault(field, []).append(dt)
    server.session.close()
    server.session.embedders.close()

    def summary(xs):
        xs = sorted(xs)
        return {"n": len(xs), "p50_ms": round(1000 * statistics.median(xs), 1),
                "p95_ms": round(1000 * xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
                "mean_ms": round(1000 * statistics.fmean(xs), 1), "max_ms": round(1000 * xs[-1], 1)}

    every = [x for xs in times.values() for x in xs]
    return {"warm_up_s": round(warm_up_s, 2), "all": summary(every), **{f: summary(xs) for f, xs in times.items()}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, required=True)
    ap.add_argument("--repos", type=Path, required=True)
    ap.add_argument("--index-root", required=True)
    ap.add_argument("--union", required=True, help="folder for the union index (made once, reused)")
    ap.add_argument("--target-units", type=int, default=50_000)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    info = build_union(args)
    print(f"# union: {info['units']} units, {info['chunks']} chunks, {info['replicas']} copies of the 8 indexes")
    queries = [json.loads(l) for l in (args.devset / "queries.jsonl").read_text().splitlines() if l.strip()]
    questions = [(f, q[f]) for q in queries for f in FIELDS if q.get(f)]
    largest = max(source_indexes(args), key=lambda s: (s[1] / "index.db").stat().st_size)
    load = os.getloadavg()
    result = {"union": info, "cpu": _cpu(), "loadavg_before": [round(x, 2) for x in load],
              "union_latency": measure(Path(args.union), questions),
              "single_index": {"name": largest[0], "latency": measure(largest[1], questions)},
              "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    for name, lat in (("union", result["union_latency"]), (largest[0], result["single_index"]["latency"])):
        cells = "  ".join(f"{k} p50 {v['p50_ms']} / p95 {v['p95_ms']} ms" for k, v in lat.items() if isinstance(v, dict))
        print(f"{name}: {cells}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def _cpu() -> str:
    try:
        models = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
        return f"{len(models)} x {models[0]}" if models else "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
