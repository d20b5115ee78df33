"""Every hostile repository of tests/hostile.py through the real command line, as a table.

    python bench/hostile_repos.py [--folder DIR] [--json OUT]

Builds the hostile repository (every case of hostile.REPO_CASES at once), runs
`codesearch index --json` on it (parse_timeout 5 s, the default) and checks each case's expected
outcome; prints one line per case (the table in docs/reliability.md) and the run's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from hostile import REPO_CASES, build_hostile_repo, read_outcome, summary_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.folder or tempfile.mkdtemp(prefix="codesearch-hostile-"))
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    build_hostile_repo(repo)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "codesearch.cli", "index", str(repo), "--model", "e5-small", "--json",
                        "-q"], capture_output=True, text=True, env={**os.environ, "CODESEARCH_DAEMON": "0"})
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        print(f"index failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
        return 1
    outcome = read_outcome(summary_json(r.stdout), repo / ".codesearch")
    rows, failed = [], 0
    for case in REPO_CASES:
        try:
            case.check(outcome)
            ok, why = True, ""
        except AssertionError as error:
            ok, why = False, str(error)[:300]
            failed += 1
        rows.append({"case": case.name, "what": case.what, "expect": case.expect, "ok": ok, "why": why})
        print(f"{'ok  ' if ok else 'FAIL'} {case.name:<18} {case.what} -> {case.expect}" + (f" ({why})" if why else ""))
    print(f"{len(rows)} cases, {failed} failed; `codesearch index` took {seconds:.1f} s, exit {r.returncode}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": rows, "index_s": round(seconds, 1)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
