"""What extraction and the full-text fields cost per index run, apart from embedding:
`extract_units` and `chunking.lexical_fields` over every source file of some repositories,
best of 3, in this process (run it with another release on PYTHONPATH to compare).

    python bench/extract_cost.py DEV_REPOS/JamesNK+Newtonsoft.Json DEV_REPOS/jhy+jsoup ... [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import importlib.util  # noqa: E402

if importlib.util.find_spec("codesearch") is None:  # else: the installed one, or PYTHONPATH's release
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.chunking import lexical_fields  # noqa: E402
from codesearch.extract import extract_units  # noqa: E402
from codesearch.files import discover, read_source  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repos", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    jobs = [(f.path, read_source(root, f.path)[0], f.language.name) for root in args.repos for f in discover(root).files]
    runs = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        units = 0
        for path, source, language in jobs:
            for unit in extract_units(path, source, language):
                lexical_fields(unit)
                units += 1
        runs.append(time.perf_counter() - t0)
    import codesearch

    report = {"code": str(Path(codesearch.__file__).parent), "files": len(jobs), "units": units,
              "seconds": [round(r, 3) for r in runs], "best_s": round(min(runs), 3)}
    print(f"{report['code']}: {len(jobs)} files, {units} units, best of {args.rounds}: {report['best_s']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
