"""Wall time of `codesearch query` as a user feels it: in-process (cold) vs through the warm daemon.

    python bench/query_latency.py REPO [--index-dir DIR] [--runs 10]

REPO must be indexed. Prints the median, min and max wall time of whole `codesearch query`
processes: with the daemon off (every query imports torch and loads the model), the first
query with the daemon on (answers in-process, then starts the daemon), and repeated
queries answered by the daemon.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

QUESTIONS = ["read a file and parse its lines", "读取配置文件", "retry on error", "format a date",
             "escape html", "split a string into words", "compute a hash", "open a connection"]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def summary(name: str, xs: list[float]) -> None:
    print(f"{name:<34} median {statistics.median(xs):6.3f} s  min {min(xs):6.3f}  max {max(xs):6.3f}  (n={len(xs)})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--index-dir", default=None)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    base = [sys.executable, "-m", "codesearch.cli"]
    where = ["--repo", args.repo] + (["--index-dir", args.index_dir] if args.index_dir else [])
    env = dict(os.environ)
    stop = base + ["daemon", "stop"] + where
    subprocess.run(stop, env=env, capture_output=True)
    cold = [timed(base + ["query", "--no-daemon", "-k", "10", *where, QUESTIONS[i % len(QUESTIONS)]], env)
            for i in range(max(3, args.runs // 2))]
    summary("cold, no daemon", cold)
    first = []
    for _ in range(3):
        subprocess.run(stop, env=env, capture_output=True)
        time.sleep(0.5)
        first.append(timed(base + ["query", "-k", "10", *where, QUESTIONS[0]], env))
    summary("first query (starts the daemon)", first)
    for _ in range(600):  # wait until the daemon answers
        # `daemon status` prints "running (pid N)" or "not running"
        if subprocess.run(base + ["daemon", "status"] + where, capture_output=True).stdout.startswith(b"running"):
            break
        time.sleep(0.2)
    warm = [timed(base + ["query", "-k", "10", *where, QUESTIONS[i % len(QUESTIONS)]], env)
            for i in range(args.runs)]
    summary("repeated, through the daemon", warm)
    console = os.path.join(os.path.dirname(sys.executable), "codesearch")
    if os.path.exists(console):
        warm2 = [timed([console, "query", "-k", "10", *where, QUESTIONS[i % len(QUESTIONS)]], env)
                 for i in range(args.runs)]
        summary("repeated, `codesearch` script", warm2)
    subprocess.run(stop, env=env, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
