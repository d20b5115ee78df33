"""Grammar fuzzing: mutated fixtures of every language through extraction, under a time budget.

    python bench/fuzz_grammars.py [--cases 10000] [--seed 1] [--budget 5] [--json OUT] [--keep DIR]

Each case takes a fixture file of one language (round robin over every language codesearch
knows), applies 1-8 seeded mutations (cut a range, repeat a range, insert brackets, quotes or
comment openers, reverse a range, insert random bytes, splice in another fixture, nest
deeply, truncate) and runs `extract.extract_file` on it with the parse budget, in a child
process. Counted:
- crashes: the child died of a signal (tree-sitter or the binding reading freed memory) or
  raised; the input is kept in --keep;
- hangs: a case still running 10 s after its budget (the budget failed to bound it);
- fallbacks: cases that hit the budget and became one file-level unit (bounded, as designed);
- bad units: a unit with lines outside the file, or no unit at all.
The child is restarted after a crash or a hang, from the next case. The last line of output
is the summary as JSON (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKENS = [b"{", b"}", b"(", b")", b"[", b"]", b"<", b">", b";", b":", b",", b".", b'"', b"'", b"`", b"\n",
          b"/*", b"*/", b"//", b"#", b"--", b"@", b"$", b"\\", b"<<EOF\n", b"<?php", b"?>", b"=>", b"->",
          b"def ", b"fn ", b"class ", b"function ", b"func ", b"end\n", b"BEGIN ", b"\xe4\xb8\xad", b"\x00"]


def fixtures_by_language() -> dict[str, list[bytes]]:
    from codesearch.languages import LANGUAGES, language_for_path

    out: dict[str, list[bytes]] = {name: [] for name in LANGUAGES}
    for path in sorted((ROOT / "fixtures").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            lang = language_for_path(str(path), data[:100])
            if lang is not None:
                out[lang.name].append(data)
    return {k: v for k, v in out.items() if v}


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(9)
        i = rng.randrange(len(b) + 1)
        j = min(len(b), i + rng.randint(1, 200))
        if op == 0:
            del b[i:j]
        elif op == 1 and b:
            k = rng.randrange(len(b))
            b[i:i] = b[k:k + rng.randint(1, 400)] * rng.randint(1, 3)
        elif op == 2:
            b[i:i] = rng.choice(TOKENS) * rng.randint(1, 30)
        elif op == 3:
            b[i:j] = b[i:j][::-1]
        elif op == 4:
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 5:
            other = rng.choice(others)
            k = rng.randrange(len(other) + 1)
            b[i:i] = other[k:k + rng.randint(10, 600)]
        elif op == 6:
            depth = rng.randint(50, 400)
            opener, closer = rng.choice([(b"(", b")"), (b"{", b"}"), (b"[", b"]")])
            b[i:i] = opener * depth + (closer * depth if rng.random() < 0.5 else b"")
        elif op == 7:
            del b[i:]
        else:
            k = rng.randrange(len(b) + 1)
            b[i:i] = b"\n".join(b[k:k + 80].split(b"\n")[:1]) * rng.randint(2, 50)
    return bytes(b[:64_000])


def case_input(n: int, seed: int, corpus: dict[str, list[bytes]]) -> tuple[str, bytes]:
    languages = sorted(corpus)
    lang = languages[n % len(languages)]
    rng = random.Random(seed * 1_000_003 + n)
    return lang, mutate(rng.choice(corpus[lang]), rng, corpus[lang])


def child(conn, start: int, cases: int, seed: int, budget: float) -> None:
    """Run cases from `start`, telling the parent before and after each."""
    from codesearch.extract import extract_file
    from codesearch.languages import LANGUAGES

    corpus = fixtures_by_language()
    for n in range(start, cases):
        lang, data = case_input(n, seed, corpus)
        conn.send(("start", n))
        ext = LANGUAGES[lang].extensions[0] if LANGUAGES[lang].extensions else ""
        try:
            result = extract_file(f"case{n}{ext}", data, lang, budget)
        except Exception as error:  # noqa: BLE001 - reported as a crash of that case
            conn.send(("error", n, f"{type(error).__name__}: {error}"))
            continue
        lines = data.count(b"\n") + data.count(b"\r") + 1
        bad = not result.units or any(u.start_line < 1 or u.end_line < u.start_line or u.start_line > lines
                                      for u in result.units)
        conn.send(("done", n, bool(result.fallback), bad))
    conn.send(("finished", cases))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=5.0, help="parse budget per file, seconds")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", default=None, help="folder for the inputs that crashed or hung")
    args = ap.parse_args()
    corpus = fixtures_by_language()
    keep = Path(args.keep) if args.keep else None
    ctx = mp.get_context("spawn")
    stats = {"cases": 0, "crashes": 0, "hangs": 0, "fallbacks": 0, "bad_units": 0, "fallbacks_by_language": {},
             "errors": [],
             "languages": sorted(corpus), "seed": args.seed, "budget_s": args.budget}
    t0 = time.perf_counter()
    next_case = 0

    def record(kind: str, n: int, detail: str) -> None:
        stats["errors"].append({"case": n, "kind": kind, "detail": detail[:300]})
        if keep is not None:
            lang, data = case_input(n, args.seed, corpus)
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{kind}_{n}_{lang}.bin").write_bytes(data)

    def child_died(current: int | None, next_case: int) -> int:
        """The case in flight when the child process died is a crash; go on after it."""
        if current is None:
            return next_case
        stats["crashes"] += 1
        stats["cases"] += 1
        record("crash", current, f"child exit code {proc.exitcode}")
        return current + 1

    while next_case < args.cases:
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=child, args=(child_end, next_case, args.cases, args.seed, args.budget))
        proc.start()
        child_end.close()
        current, started = None, time.monotonic()
        while True:
            if parent_end.poll(1.0):
                try:
                    msg = parent_end.recv()
                except EOFError:
                    msg = None
                if msg is None:
                    proc.join(5)
                    next_case = child_died(current, next_case)
                    break
                if msg[0] == "start":
                    current, started = msg[1], time.monotonic()
                elif msg[0] == "done":
                    stats["cases"] += 1
                    stats["fallbacks"] += msg[2]
                    if msg[2]:
                        lang = stats["languages"][msg[1] % len(stats["languages"])]
                        stats["fallbacks_by_language"][lang] = stats["fallbacks_by_language"].get(lang, 0) + 1
                    stats["bad_units"] += msg[3]
                    if msg[3]:
                        record("bad", msg[1], "unit lines out of range or no unit")
                    current, next_case = None, msg[1] + 1
                    if stats["cases"] % 1000 == 0:
                        print(f"{stats['cases']} cases, {stats['crashes']} crashes, {stats['hangs']} hangs ...",
                              flush=True)
                elif msg[0] == "error":
                    stats["cases"] += 1
                    stats["crashes"] += 1
                    record("error", msg[1], msg[2])
                    current, next_case = None, msg[1] + 1
                elif msg[0] == "finished":
                    next_case = msg[1]
                    proc.join(30)
                    break
            elif not proc.is_alive():
                proc.join()
                next_case = child_died(current, next_case)
                break
            if current is not None and time.monotonic() - started > args.budget + 10:
                proc.kill()
                proc.join()
                stats["hangs"] += 1
                stats["cases"] += 1
                record("hang", current, f"still running {args.budget + 10:.0f} s after its start")
                next_case = current + 1
                break
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{stats['cases']} cases over {len(corpus)} languages in {stats['seconds']} s: "
          f"{stats['crashes']} crashes, {stats['hangs']} hangs, {stats['fallbacks']} bounded by the "
          f"{args.budget:g} s budget, {stats['bad_units']} bad units")
    summary = {k: v for k, v in stats.items() if k != "errors"}
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2))
    print(json.dumps(summary))
    return 0 if not (stats["crashes"] or stats["hangs"] or stats["bad_units"]) else 1


if __name__ == "__main__":
    sys.exit(main())
