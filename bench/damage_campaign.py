"""Damaged indexes: every kind in tests/hostile.DAMAGES, then random page damage with many seeds.

    python bench/damage_campaign.py [--seeds 50] [--folder DIR] [--json OUT]

Indexes a small repository once (e5-small), then for each damage: copies the index, damages it,
runs `codesearch query` (three questions, in every mode), `status` and `index`, and records
each exit: 0, a one-line `error:` (with its code), a traceback, or a death by signal. Then
`index --rebuild` must repair it (exit 0, status ok). Goal: no traceback, no signal, every
rebuild repairs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from hostile import DAMAGES, Damage, damage_index  # noqa: E402

PY = sys.executable
FILES = {f"pkg/mod{i}.py": f'def helper_{i}(items):\n    """Sort the items and keep the first {i}."""\n'
                           f'    return sorted(items)[:{i}]\n\n\nclass Store{i}:\n    def put(self, key, value):\n'
                           f'        """Remember value under key number {i}."""\n        self.data[key] = value\n'
         for i in range(30)}
QUERIES = [["--mode", "hybrid", "sort the items"], ["--mode", "lexical", "remember value"],
           ["--mode", "semantic", "keep the first ones"]]


def cs(*args) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "codesearch.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CODESEARCH_DAEMON": "0"})


def outcome(r: subprocess.CompletedProcess) -> str:
    if r.returncode < 0:
        return f"signal {-r.returncode}"
    if "Traceback" in r.stderr:
        return "traceback"
    if r.returncode == 0:
        return "ok"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    return f"error {r.returncode}" if len(errors) == 1 else f"exit {r.returncode} without one error line"


def random_pages(seed: int) -> Damage:
    def apply(index_dir: Path) -> None:
        db = index_dir / "index.db"
        data = bytearray(db.read_bytes())
        rng = random.Random(seed)
        start = 100 if seed % 4 == 0 else 4096  # one seed in four may hit the first page (the schema)
        for _ in range(rng.randint(1, 30)):
            i = rng.randrange(start, len(data) - 64)
            data[i:i + rng.randint(1, 64)] = rng.randbytes(64)[:rng.randint(1, 64)]
        db.write_bytes(bytes(data[:len(db.read_bytes())]))
    return Damage(f"random_pages_{seed}", f"random bytes in index.db (seed {seed})", apply, None, None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.folder or tempfile.mkdtemp(prefix="codesearch-damage-"))
    base = work / "base"
    if not (base / ".codesearch" / "index.db").exists():
        for rel, text in FILES.items():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_text(text)
        r = cs("index", str(base), "--model", "e5-small", "-q")
        assert r.returncode == 0, r.stderr
    rows, bad = [], 0
    for damage in DAMAGES + [random_pages(s) for s in range(args.seeds)]:
        repo = work / "case"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(base, repo)
        damage_index(repo / ".codesearch", damage)
        row = {"damage": damage.name, "what": damage.what}
        row["query"] = sorted({outcome(cs("query", "--repo", str(repo), "--json", *q)) for q in QUERIES})
        row["status"] = outcome(cs("status", "--repo", str(repo)))
        row["index"] = outcome(cs("index", str(repo), "-q"))
        rebuilt = cs("index", str(repo), "--rebuild", "-q")
        after = cs("status", "--repo", str(repo))
        row["rebuild"] = outcome(rebuilt)
        row["repaired"] = rebuilt.returncode == 0 and after.returncode == 0 and "integrity   ok" in after.stdout
        seen = row["query"] + [row["status"], row["index"], row["rebuild"]]
        failed = any(o.startswith(("traceback", "signal", "exit")) for o in seen) or not row["repaired"]
        bad += failed
        rows.append(row)
        print(f"{'FAIL' if failed else 'ok  '} {damage.name:<20} query {', '.join(row['query']):<18} status "
              f"{row['status']:<8} index {row['index']:<8} rebuild {row['rebuild']} repaired {row['repaired']}",
              flush=True)
    tally = Counter(o for r in rows for o in r["query"] + [r["status"], r["index"]])
    print(f"{len(rows)} damaged indexes: {bad} with a traceback, a signal or no repair; outcomes {dict(tally)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": len(rows), "failed": bad, "rows": rows}, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
