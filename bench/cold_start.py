"""Where the time of a cold `codesearch query` and a cold `codesearch index` goes, phase by phase.

Runs the real commands as fresh processes with CODESEARCH_TRACE (codesearch/phases.py), so
every figure is a whole process as a user starts it, split into the phases it went through
(imports, device start, model load, graph capture, index open, ANN load, search, ...). The
part before codesearch's first phase is Python start-up and imports of the command line.

    # CPU, e5-small: cold queries, and 20 consecutive queries right after the first (daemon on)
    python bench/cold_start.py --repo DEV_REPOS/pallets+click --model e5-small --index-dir IDX \\
        --runs 5 --consecutive 20 --out cold-cpu-e5.json
    # CPU, Qwen3-Embedding-0.6B shape (random weights), a tiny repository: index + queries
    python bench/cold_start.py --repo fixtures/python --model /path/to/qwen3-0.6b-random --device cpu \\
        --index-runs 1 --runs 3 --out cold-cpu-qwen3.json
    # GPU, Qwen3 shape: a cold index of a big repository, then cold queries
    python bench/cold_start.py --repo BIG_REPO --model /path/to/qwen3-0.6b-random --device cuda \\
        --index-runs 2 --runs 5 --out cold-gpu-qwen3.json

--index-runs N builds the index N times into fresh folders (the last one is kept for the
queries) and reports the fixed cost: the whole run less its `embed` phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = ["read a file and parse its lines", "重试失败的网络请求", "format a date as a string",
             "find the configuration file", "把字符串转换成小写", "compare two version numbers"]


def run_traced(cmd: list[str], env: dict, timeout: float = 1800) -> dict:
    """One process: wall seconds, exit code and its phases. It runs in a neutral folder, so
    `python -m codesearch.cli` imports the codesearch that PYTHONPATH or the installation names,
    not a source tree that happens to be the current folder."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        trace = f.name
    started = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env={**env, "CODESEARCH_TRACE": trace}, capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    ended = started + wall
    try:
        data = json.loads(Path(trace).read_text())
    except (OSError, ValueError):
        data = {"phases": [], "exit": None}
    finally:
        Path(trace).unlink(missing_ok=True)
    if done.returncode not in (0, 1):  # 1: a query that found nothing above the threshold
        # a figure of a command that failed measures nothing: stop here, saying why
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    phases = data["phases"]
    first = min((p["start"] for p in phases), default=data.get("exit") or 0.0)
    t0_wall, exit_wall = data.get("t0_wall", started), data.get("exit_wall", ended)
    return {"wall_s": round(wall, 4), "rc": done.returncode, "phases": phases,
            # Python start-up and imports until codesearch is imported, then until the first phase
            "interpreter_start_s": round(t0_wall - started, 4), "until_first_phase_s": round(first, 4),
            # from the end of the work (atexit) until the process is gone: interpreter shutdown
            "shutdown_s": round(ended - exit_wall, 4), "stdout_tail": done.stdout[-300:]}


def totals(run: dict) -> dict[str, float]:
    """Seconds per phase name (a phase entered twice counts twice)."""
    out: dict[str, float] = {}
    for p in run["phases"]:
        out[p["name"]] = out.get(p["name"], 0.0) + p["end"] - p["start"]
    return out


def summarise(runs: list[dict]) -> dict:
    names = list(dict.fromkeys(p["name"] for r in runs for p in r["phases"]))
    per = [totals(r) for r in runs]
    return {"wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 3),
            "wall_s_max": round(max(r["wall_s"] for r in runs), 3),
            "interpreter_start_s_median": round(statistics.median(r["interpreter_start_s"] for r in runs), 3),
            "until_first_phase_s_median": round(statistics.median(r["until_first_phase_s"] for r in runs), 3),
            "shutdown_s_median": round(statistics.median(r["shutdown_s"] for r in runs), 3),
            "phases_median_s": {n: round(statistics.median(t.get(n, 0.0) for t in per), 4) for n in names}}


def show(title: str, summary: dict) -> None:
    print(f"\n{title}: median {summary['wall_s_median']:.2f} s (max {summary['wall_s_max']:.2f} s); "
          f"interpreter start {summary['interpreter_start_s_median']:.2f} s, then until the first phase "
          f"{summary['until_first_phase_s_median']:.2f} s; shutdown {summary['shutdown_s_median']:.2f} s")
    for name, secs in summary["phases_median_s"].items():
        print(f"  {name:<28} {secs:8.3f} s")


def after_index(base, repo, args, root, env, questions) -> dict:
    """`codesearch index` leaves a warm query process behind: the first query right after the
    run (the daemon may still be loading: the query answers in-process), and one once it is up."""
    denv = {**env, "CODESEARCH_DAEMON": "1"}
    index = run_traced([*base, "index", repo, "--model", args.model, "--device", args.device, "--index-dir", root,
                        "-q"], denv)
    query = [*base, "query", "--index-dir", root, "--repo", repo, "--device", args.device, "-k", "5", "--no-snippet"]
    at_once = run_traced([*query, questions[0]], denv)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ping = subprocess.run([*base, "daemon", "status", "--index-dir", root, "--repo", repo], env=denv,
                              capture_output=True, text=True, cwd=tempfile.gettempdir())
        if ping.stdout.startswith("running"):
            break
        time.sleep(0.5)
    ready = [run_traced([*query, questions[(i + 1) % len(questions)]], denv) for i in range(3)]
    subprocess.run([*base, "daemon", "stop", "--index-dir", root, "--repo", repo], env=denv, capture_output=True,
                   cwd=tempfile.gettempdir())
    out = {"index_s": index["wall_s"], "query_at_once_s": at_once["wall_s"],
           "queries_daemon_ready_s": [r["wall_s"] for r in ready]}
    print(f"\nafter index ({index['wall_s']:.1f} s): a query at once {at_once['wall_s']:.2f} s; "
          f"once the daemon is up: " + ", ".join(f"{r['wall_s']:.2f}" for r in ready) + " s")
    return out


def machine() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        info["cpu_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
        info["cpu_model"] = next(line for line in open("/proc/cpuinfo") if "model name" in line).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        if out.returncode == 0:
            info["gpu"] = out.stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--index-dir", default=None, help="where the query index is (default: a temp folder)")
    ap.add_argument("--index-runs", type=int, default=0, help="cold index runs into fresh folders")
    ap.add_argument("--runs", type=int, default=5, help="cold `query --no-daemon` runs")
    ap.add_argument("--consecutive", type=int, default=0,
                    help="then: one query that starts the daemon, and this many right after it")
    ap.add_argument("--codesearch", default=f"{sys.executable} -m codesearch.cli",
                    help="how to start codesearch (default: this interpreter's module)")
    ap.add_argument("--after-index", action="store_true",
                    help="then: index with the daemon on, query at once, and again once the daemon is ready")
    ap.add_argument("--english-only", action="store_true", help="leave out the Chinese questions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    base = args.codesearch.split()
    questions = [q for q in QUESTIONS if q.isascii()] if args.english_only else QUESTIONS
    env = {**os.environ, "CODESEARCH_DAEMON": "0"}
    env.pop("TOKENIZERS_PARALLELISM", None)  # as users run it: the tokenizer on every core
    repo = str(Path(args.repo).resolve())
    work = Path(tempfile.mkdtemp(prefix="cold-start-"))
    index_root = args.index_dir or str(work / "idx")
    report = {"command": " ".join(sys.argv), "machine": machine(), "repo": repo, "model": args.model,
              "device": args.device}
    try:
        if args.index_runs:
            runs = []
            for i in range(args.index_runs):
                root = str(work / f"index-run-{i}")
                runs.append(run_traced([*base, "index", repo, "--model", args.model, "--device", args.device,
                                        "--index-dir", root, "-q"], env))
                index_root = root
            summary = summarise(runs)
            embed = [totals(r).get("embed", 0.0) for r in runs]
            summary["fixed_cost_s_median"] = round(statistics.median(r["wall_s"] - e for r, e in zip(runs, embed)), 3)
            report["index"] = {"summary": summary, "runs": runs}
            show("cold index", summary)
            print(f"  fixed cost (whole run less embedding): {summary['fixed_cost_s_median']:.2f} s")
        elif not args.index_dir and (args.runs or args.consecutive):
            done = subprocess.run([*base, "index", repo, "--model", args.model, "--device", args.device,
                                   "--index-dir", index_root, "-q"], env=env, capture_output=True, text=True,
                                  cwd=tempfile.gettempdir())
            if done.returncode != 0:
                raise SystemExit(done.stderr)
        query = [*base, "query", "--index-dir", index_root, "--repo", repo, "--device", args.device, "-k", "5",
                 "--no-snippet"]
        runs = [run_traced([*query, "--no-daemon", questions[i % len(questions)]], env) for i in range(args.runs)]
        if runs:
            report["cold_query"] = {"summary": summarise(runs), "runs": runs}
            show("cold query (--no-daemon)", report["cold_query"]["summary"])
        if args.consecutive:
            denv = {**env, "CODESEARCH_DAEMON": "1"}
            subprocess.run([*base, "daemon", "stop", "--index-dir", index_root, "--repo", repo], env=denv,
                           capture_output=True, cwd=tempfile.gettempdir())
            seq = [run_traced([*query, questions[i % len(questions)]], denv) for i in range(args.consecutive + 1)]
            walls = [r["wall_s"] for r in seq]
            report["consecutive"] = {"first_s": walls[0], "after_first_s": walls[1:],
                                     "after_first_max_s": max(walls[1:]), "runs": seq}
            print(f"\nfirst query (starts the daemon) {walls[0]:.2f} s; the next {len(walls) - 1}: "
                  f"max {max(walls[1:]):.2f} s, median {statistics.median(walls[1:]):.2f} s")
            print("  " + " ".join(f"{w:.2f}" for w in walls[1:]))
            subprocess.run([*base, "daemon", "stop", "--index-dir", index_root, "--repo", repo], env=denv,
                           capture_output=True, cwd=tempfile.gettempdir())
        if args.after_index:
            report["after_index"] = after_index(base, repo, args, str(work / "after-index"), env, questions)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
