"""The data behind the score calibration and the default `--threshold`.

For real questions (the development benchmark's `en`, `zh` and `doc` questions, and the
fixtures' questions in tests/questions/) and for questions that have no answer (nonsense,
off-topic English and Chinese, and real questions asked of another repository), records each
mode's top hits with their raw signals (cosine of the question and of its English rendering,
BM25), the fused score, the calibrated score and whether the hit answers the question.

    python bench/threshold_data.py --devset ../shared/devset --repos DEV_REPOS --index-root IDX \\
        [--fixtures-index FIXIDX] [--raw records.json] --out docs/bench/threshold.json
    python bench/threshold_data.py --summary records.json [--threshold 0.3 ...]

The first form needs the indexes of docs/quality.md (and of `fixtures/` under FIXIDX). Both
print, for each threshold and mode, how many answers of real questions would be dropped from
the top 10 (and R@10 with the threshold applied) and how many hits the questions without an
answer still get; `--out` writes that table, `--raw` every record (to re-summarise).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.app import SearchSession, open_workspace  # noqa: E402
from codesearch.ranking import calibrate, candidate_pool  # noqa: E402

FIELDS = ("en", "zh", "doc")
MODES = ("hybrid", "semantic", "lexical")
K = 10

# questions no repository here answers: nonsense, keyboard mash, everyday topics
NONSENSE = [
    "asdkfj qwpoeiru zxcvnm", "xyzzy plugh frobnicate", "lorem ipsum dolor sit amet", "aaaa bbbb cccc",
    "banana helicopter symphony", "purple monkey dishwasher", "the quick brown fox jumps over the lazy dog",
    "recipe for chocolate cake with strawberries", "who won the football world cup in 1998",
    "how tall is mount everest", "what will the weather be like in paris tomorrow",
    "best hiking trails in the alps in summer", "my cat sleeps all day on the sofa",
    "song lyrics about love and heartbreak", "history of the roman empire", "how to grow tomatoes on a balcony",
    "今天天气怎么样", "红烧肉的做法", "世界杯冠军是谁", "我的猫喜欢睡觉", "周末去爬山还是去海边",
    "如何学好一门外语", "北京到上海的高铁票价", "写一首关于月亮的诗",
    "qwerty", "hello", "???", "1234567890",
]


def correct(hit, q: dict, prefix: str) -> bool:
    path = prefix + hit.path
    for t in [q["target"], *q.get("also_ok", [])]:
        if t["path"] == path and (t.get("start_line") is None or
                                  (hit.start_line <= t["end_line"] and hit.end_line >= t["start_line"])):
            return True
    return False


def fixture_correct(hit, q: dict, prefix: str) -> bool:
    return hit.path == q["path"] and hit.qualname == q["qualname"]


def record(searcher, text: str, mode: str, check) -> dict:
    """The top K of one question in one mode with every signal of each hit."""
    plan = searcher.plan(text)
    sem, lex = searcher.candidates(plan, candidate_pool(K), mode, None)
    top = searcher.rank(plan, sem, lex, mode)[:K]
    calibrated = calibrate(top, sem, lex, mode, searcher.calibration(mode))
    hits = searcher.hits([u for u, _ in top], dict(calibrated), {})
    sem_maps = [dict(s) for s in sem]
    lex_map = dict(lex)
    out = []
    for (uid, fused), h in zip(top, hits):
        out.append({"qualname": h.qualname, "path": h.path, "fused": round(fused, 4),
                    "score": round(h.score, 4),
                    "cos": [round(m[uid], 4) if uid in m else None for m in sem_maps],
                    "bm25": round(lex_map[uid], 3) if uid in lex_map else None,
                    "ok": bool(check(h))})
    pool_cos = sorted((v for _, v in sem[0]), reverse=True) if sem else []
    return {"hits": out, "pool_cos": [round(v, 4) for v in pool_cos[:60]], "n_lex": len(lex),
            "n_texts": len(plan.texts), "floor": round(searcher.noise_floor(), 4) if mode != "lexical" else None}


def collect(args) -> dict:
    repos = json.loads((args.devset / "repos.json").read_text())
    queries = [json.loads(line) for line in (args.devset / "queries.jsonl").read_text().splitlines() if line.strip()]
    data = {"real": [], "none": []}
    sets = []
    for r in repos:
        if r["repo"] in args.exclude:
            continue
        root = args.repos / r["repo"].replace("/", "+")
        repo_dir = root / r["subdir"] if r.get("subdir") else root
        prefix = (r["subdir"].strip("/") + "/") if r.get("subdir") else ""
        mine = [q for q in queries if q["repo"] == r["repo"]]
        others = [q for q in queries if q["repo"] != r["repo"]][:: 7]  # real questions, wrong repository
        sets.append((r["repo"], repo_dir, args.index_root, prefix, mine, correct, others))
    if args.fixtures_index:
        fx = Path(__file__).resolve().parent.parent / "fixtures"
        qs = [json.loads(line) for p in sorted((fx.parent / "tests" / "questions").glob("*.jsonl"))
              for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        sets.append(("fixtures", fx, args.fixtures_index, "", qs, fixture_correct, []))
    t0 = time.perf_counter()
    for name, repo_dir, index_root, prefix, mine, check, others in sets:
        ws = open_workspace(repo_dir, index_dir=index_root)
        if not ws.has_index:
            print(f"# skipped {name}: not indexed", file=sys.stderr)
            continue
        session = SearchSession(ws)
        try:
            session.refresh()
        except Exception as error:  # noqa: BLE001 - an index still being built
            print(f"# skipped {name}: {error}", file=sys.stderr)
            continue
        s = session.searcher
        for q in mine:
            for field in FIELDS:
                if q.get(field):
                    for mode in MODES:
                        rec = record(s, q[field], mode, lambda h: check(h, q, prefix))
                        data["real"].append({"repo": name, "field": field, "mode": mode, "q": q[field], **rec})
        for text in NONSENSE:
            for mode in MODES:
                rec = record(s, text, mode, lambda h: False)
                data["none"].append({"repo": name, "kind": "nonsense", "mode": mode, "q": text, **rec})
        for q in others:
            for mode in MODES:
                rec = record(s, q["en"], mode, lambda h: False)
                data["none"].append({"repo": name, "kind": "other-repo", "mode": mode, "q": q["en"], **rec})
        session.close()
        print(f"# {name} done, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return data


def summary(data: dict, thresholds: list[float]) -> dict:
    """Print the table; return it (with each index's noise floor) for the JSON."""
    table: dict = {"floors": {r["repo"]: r["floor"] for r in data["real"] if r.get("floor")}, "modes": {}}
    for mode in MODES:
        real = [r for r in data["real"] if r["mode"] == mode]
        print(f"\n== {mode}: {len(real)} real questions; questions without an answer: "
              + ", ".join(f"{k} {sum(1 for r in data['none'] if r['mode'] == mode and r['kind'] == k)}"
                          for k in ("nonsense", "other-repo")))
        print("threshold | answers in top 10 dropped | R@10 en/zh/doc (fixtures incl.) | "
              "nonsense: mean hits, share with none | other-repo: mean hits, share with none")
        for t in thresholds:
            dropped = sum(1 for r in real for h in r["hits"] if h["ok"] and h["score"] < t
                          and not any(x["ok"] and x["score"] >= t for x in r["hits"]))
            r10 = []
            for field in FIELDS:
                rs = [r for r in real if r["field"] == field]
                r10.append(sum(1 for r in rs if any(h["ok"] and h["score"] >= t for h in r["hits"])) / max(1, len(rs)))
            cells = []
            for kind in ("nonsense", "other-repo"):
                rs = [r for r in data["none"] if r["mode"] == mode and r["kind"] == kind]
                n = [sum(1 for h in r["hits"] if h["score"] >= t) for r in rs]
                cells.append(f"{sum(n) / max(1, len(n)):.2f}, {sum(1 for x in n if x == 0) / max(1, len(n)):.2f}")
            print(f"{t:9.2f} | {dropped:25d} | {' / '.join(f'{x:.3f}' for x in r10):32} | "
                  f"{cells[0]:36} | {cells[1]}")
            table["modes"].setdefault(mode, []).append(
                {"threshold": t, "answers_dropped": dropped, "r10": dict(zip(FIELDS, r10)),
                 "nonsense_mean_hits_and_share_with_none": cells[0], "other_repo_mean_hits_and_share_with_none": cells[1]})
    return table


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path)
    ap.add_argument("--repos", type=Path)
    ap.add_argument("--index-root")
    ap.add_argument("--fixtures-index")
    ap.add_argument("--out", type=Path, help="write the table (and the indexes' noise floors) as JSON")
    ap.add_argument("--raw", type=Path, help="write every record (several MB) as JSON")
    ap.add_argument("--summary", type=Path, help="print the table of a --raw JSON written before")
    ap.add_argument("--threshold", type=float, action="append")
    ap.add_argument("--exclude", action="append", default=[], help="skip this repository (owner/name)")
    args = ap.parse_args()
    thresholds = args.threshold or [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6]
    data = json.loads(args.summary.read_text()) if args.summary else collect(args)
    if args.raw:
        args.raw.write_text(json.dumps(data, ensure_ascii=False))
    table = summary(data, thresholds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/threshold_data.py " + " ".join(sys.argv[1:])
        args.out.write_text(json.dumps({"command": command, **table}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
