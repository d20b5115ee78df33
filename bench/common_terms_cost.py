"""What the full-text side of a question costs on a big index, and what leaving out its
common terms would save (the `common-terms` probe of bench/probe_levers.py measures what it
costs in ranking; docs/quality.md, "The second step, fourth session").

    python bench/common_terms_cost.py --devset ../shared/devset --index UNION [--index UNION_BEFORE] [--json out.json]

UNION: an index made by bench/union_latency.py. For every devset question (en, zh, doc) the
terms and synonyms codesearch would search are taken from question.plan_question, and
Store.lexical_all is timed on them (best of 3, the indexes interleaved), first with every
term, then without the terms found in more than each share of the index's units.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.question import plan_question  # noqa: E402
from codesearch.store import Store, fts_match  # noqa: E402

SHARES = (1.0, 0.3, 0.2, 0.1, 0.05)


def summary(times: list[float], matches: list[int]) -> dict:
    v = sorted(times)
    return {"mean_ms": round(1000 * statistics.mean(v), 1), "p95_ms": round(1000 * v[int(0.95 * len(v))], 1),
            "matches": round(statistics.mean(matches))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, required=True)
    ap.add_argument("--index", type=Path, action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    queries = [json.loads(line) for line in (args.devset / "queries.jsonl").read_text().splitlines() if line.strip()]
    plans = [plan_question(q[f], True, True) for q in queries for f in ("en", "zh", "doc") if q.get(f)]
    stores = [Store(p).open() for p in args.index]
    report = {"questions": len(plans), "indexes": {}}
    for store in stores:
        n = store.conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        counts = {t: store.conn.execute("SELECT count(*) FROM units_fts WHERE units_fts MATCH ?",
                                        (fts_match([t]),)).fetchone()[0]
                  for p in plans for t in p.terms + p.expansions}
        report["indexes"][str(store.dir)] = {"units": n, "by_share": {}, "_counts": counts}
    for share in SHARES:
        best = {str(s.dir): [1e9] * len(plans) for s in stores}
        matches = {str(s.dir): [0] * len(plans) for s in stores}
        for _ in range(args.rounds):
            for i, p in enumerate(plans):
                for s in stores:
                    info = report["indexes"][str(s.dir)]
                    limit = share * info["units"]
                    terms = [t for t in p.terms if info["_counts"][t] <= limit] or p.terms[:1]
                    exp = [t for t in p.expansions if info["_counts"][t] <= limit]
                    t0 = time.perf_counter()
                    found = len(s.lexical_all(terms)) + (len(s.lexical_all(exp)) if exp else 0)
                    best[str(s.dir)][i] = min(best[str(s.dir)][i], time.perf_counter() - t0)
                    matches[str(s.dir)][i] = found
        for s in stores:
            fig = summary(best[str(s.dir)], matches[str(s.dir)])
            report["indexes"][str(s.dir)]["by_share"][share] = fig
            print(f"{s.dir}: terms in at most {share:.0%} of units: lexical_all mean {fig['mean_ms']} ms, "
                  f"p95 {fig['p95_ms']} ms, {fig['matches']} matches")
    for info in report["indexes"].values():
        info.pop("_counts")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
