"""List every function and method that codesearch extracts from one repository.

The held-out questions (queries.jsonl beside this file) were written from this list: a
target's line range must be the range codesearch's extractor gives (as for
../shared/devset/, whose README describes the format), so the scorer's overlap test
compares like with like. Only extraction runs here, never a search: whoever writes the
questions must not see what the search answers.

    python bench/heldout/list_units.py HELD_REPOS/owner+name [--all]

One line a unit: path:start-end kind qualname | first doc line. Tests, examples, benchmarks
(ranking.is_secondary_path) and handlebars' build tasks are left out unless --all is given (they stay in the index as distractors).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from codesearch.extract import extract_units  # noqa: E402
from codesearch.files import discover, read_source  # noqa: E402
from codesearch.ranking import is_secondary_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo_dir")
    ap.add_argument("--all", action="store_true", help="also tests, examples, benchmarks")
    args = ap.parse_args()
    root = Path(args.repo_dir).resolve()
    found = discover(root)
    for f in found.files:
        if not args.all and (is_secondary_path(f.path) or f.path.startswith("tasks/")):
            continue
        source, _ = read_source(root, f.path)
        for u in extract_units(f.path, source, f.language.name):
            if u.kind == "file":
                continue
            doc = u.doc.strip().splitlines()[0] if u.doc.strip() else ""
            print(f"{u.path}:{u.start_line}-{u.end_line} {u.kind} {u.qualname} | {doc[:120]}")


if __name__ == "__main__":
    main()
