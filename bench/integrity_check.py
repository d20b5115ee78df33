"""How long the index checks take on a large index, to choose when each one runs.

    python bench/integrity_check.py [--chunks 100000] [--dim 1024] [--folder DIR] [--json OUT]

Builds (once, in FOLDER) an index of CHUNKS units with one piece each, code text of about
1 KB a unit and random unit vectors of DIM dimensions, written through `store.Store` as the
indexer writes them, then times, cold (page cache dropped when run as root) and warm:
`Store.open()` with its consistency check (every open), the consistency check alone, what
`codesearch index` checks first (`integrity_problem(rows=False)`: SQLite quick_check, the FTS5
integrity-check, every vector's size), the row scan `codesearch status` adds, and quick_check
and the FTS5 check alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.chunking import lexical_fields  # noqa: E402
from codesearch.extract import Unit  # noqa: E402
from codesearch.store import Store  # noqa: E402


def build(folder: Path, chunks: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    store = Store(folder).open(create=True)
    body = "\n".join(f"    total = total + values[{i}] * weight  # accumulate the weighted sum" for i in range(14))
    step = 5000
    for start in range(0, chunks, step):
        n = min(step, chunks - start)
        hashes = [f"{start + i:040x}" for i in range(n)]
        vecs = rng.standard_normal((n, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.put_vectors(hashes, vecs)
        with store.transaction():
            for i, h in enumerate(hashes):
                k = start + i
                u = Unit(path=f"pkg{k % 500}/mod{k // 500}.py", language="python", kind="function",
                         name=f"fn_{k}", qualname=f"Thing{k % 97}.fn_{k}", start_line=1, end_line=16,
                         signature=f"def fn_{k}(values, weight)", doc=f"Weighted sum number {k}.",
                         code=f"def fn_{k}(values, weight):\n{body}\n    return total")
                store.add_unit(u, False, lexical_fields(u), [h])
    store.set_meta("model", {"id": "synthetic", "dim": dim})
    store.close()


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--folder", default="/tmp/codesearch-integrity-bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    folder = Path(args.folder)
    if not (folder / "index.db").exists():
        t = timed(lambda: build(folder, args.chunks, args.dim))
        print(f"built {args.chunks} chunks x {args.dim} dims in {t:.1f} s")
    size = (folder / "index.db").stat().st_size
    out = {"chunks": args.chunks, "dim": args.dim, "db_bytes": size}
    for state in ("cold", "warm"):
        if state == "cold" and not drop_caches():
            continue
        store = Store(folder)
        out[f"open_{state}_s"] = timed(store.open)
        out[f"consistency_{state}_s"] = timed(store.consistency_problem)
        if state == "cold":
            store.close()
            drop_caches()
            store = Store(folder).open()
        full_t0 = time.perf_counter()
        problem = store.integrity_problem(rows=False)
        out[f"index_check_{state}_s"] = time.perf_counter() - full_t0  # what `codesearch index` runs
        out[f"rows_scan_{state}_s"] = timed(store._rows_problem)  # what `codesearch status` adds
        out[f"quick_check_only_{state}_s"] = timed(lambda: store.conn.execute("PRAGMA quick_check").fetchall())
        out[f"fts_check_only_{state}_s"] = timed(
            lambda: store.conn.execute("INSERT INTO units_fts(units_fts) VALUES ('integrity-check')"))
        out["problem"] = problem
        store.close()
    print(f"index.db {size / 1e6:.0f} MB ({args.chunks} chunks, {args.dim} dims)")
    for k, v in out.items():
        if k.endswith("_s"):
            print(f"  {k:<26} {v * 1000:9.1f} ms")
    print(f"  problem found: {out['problem']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
