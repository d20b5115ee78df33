"""How much the codesearch git hook costs a commit, and how soon the index is fresh.

    python bench/hook_commit.py [--functions 5000] [--runs 5] [--model e5-small] [--workdir DIR]

1. Builds a git repository of FUNCTIONS Python functions (25 per file, varied names,
   docstrings and bodies) and indexes it once with the model (default: the offline
   multilingual-e5-small) on CPU. With --workdir the repository and index are kept and
   reused by the next run.
2. `git commit` time for a one-line change in one file, median of RUNS commits each:
   - without hooks (core.hooksPath pointing at an empty folder),
   - with `codesearch hook install` (background mode); after each timed commit the bench
     waits, untimed, until the background worker has the change in the index, so runs do
     not overlap. That time, from the commit's start, is reported too: "cold" for the first
     commit (the worker starts and loads the model), "warm" for the next ones (the worker
     lingers, model loaded, for $CODESEARCH_HOOK_LINGER s, default 120).
   The two kinds of commit alternate, so a change in machine load hits both alike.
3. Time until the index is fresh in sync mode (`codesearch hook install --sync`): from the
   start of `git commit` (which returns once the index has the change) until the changed
   function is searchable; the bench checks that the new identifier is found in the changed
   file and that `codesearch status` says up to date. Measured "cold" (lingering off: the
   hook loads the model inline every time) and "warm" (a lingering worker does the update).
Everything runs on CPU (CUDA is hidden from the processes started here). Python bytecode is
cached (in __pycache__, which git ignores) as in a normal install, even where
PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from codesearch import hooks  # noqa: E402
from codesearch.settings import Settings  # noqa: E402

# the settings' environment variables (codesearch/settings.py KEYS) and the default linger
SYNC_ENV = "CODESEARCH_HOOK_SYNC"
LINGER_ENV = "CODESEARCH_HOOK_LINGER"
DEFAULT_LINGER = Settings().hook_linger
PER_FILE = 25
SESSION = format(int(time.time()), "x")
VERBS = ["parse", "load", "save", "compute", "validate", "merge", "split", "render", "encode", "decode",
         "fetch", "update", "normalize", "filter", "sort", "group", "count", "convert", "resolve", "build"]
NOUNS = ["invoice", "customer", "order", "config", "token", "matrix", "report", "session", "payload", "image",
         "address", "schedule", "ledger", "account", "message", "vector", "graph", "record", "price", "cache"]
ADJECTIVES = ["cached", "partial", "remote", "local", "nested", "sorted", "weighted", "unique", "pending",
              "expired"]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull}


def function_source(rng: random.Random, file_no: int, k: int) -> str:
    verb, noun, adj = rng.choice(VERBS), rng.choice(NOUNS), rng.choice(ADJECTIVES)
    name = f"{verb}_{adj}_{noun}_{file_no}_{k}"
    arg = rng.choice(["items", "values", "rows", "entries", "data"])
    op = rng.choice(["+", "-", "*", "^", "|"])
    limit = rng.randint(2, 500)
    return f'''def {name}({arg}, factor={rng.randint(1, 9)}):
    """{verb.capitalize()} the {adj} {noun} {arg} and return the {rng.choice(["total", "result", "list", "count"])}."""
    result = []
    for index, item in enumerate({arg}):
        if index > {limit}:
            break
        result.append((item {op} factor) % {rng.randint(7, 997)})
    return result
'''


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def cs(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "codesearch.cli", *args], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"codesearch {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def build_repo(repo: Path, functions: int) -> None:
    rng = random.Random(1234)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    files = (functions + PER_FILE - 1) // PER_FILE
    made = 0
    for f in range(files):
        n = min(PER_FILE, functions - made)
        body = "\n\n".join(function_source(rng, f, k) for k in range(n))
        pkg = repo / f"pkg{f // 20:02d}"
        pkg.mkdir(exist_ok=True)
        (pkg / f"module_{f:03d}.py").write_text(f'"""Module {f}."""\n\n\n' + body, encoding="utf-8")
        made += n
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "generated")


def units_count(repo: Path) -> int:
    con = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        return con.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    finally:
        con.close()


def one_line_change(repo: Path, run: int, tag: str) -> tuple[str, str]:
    """Change one line of one function; returns (path, the new identifier)."""
    files = sorted(repo.glob("pkg*/module_*.py"))
    path = files[(run * 7) % len(files)]  # plain and hooked commits of a run change the same file
    text = path.read_text(encoding="utf-8")
    marker = f"bench_{tag}_marker_{run}_{SESSION}"  # unique to this bench run, so it is a change
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip().startswith("result = []"):  # the first function's, marked or not
            lines[i] = f"    result = []  # {marker}"
            break
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path.relative_to(repo)), marker


def timed_commit(repo: Path, hooks_path: Path, message: str) -> tuple[float, str]:
    env = {**os.environ, **GIT_ENV}
    t0 = time.perf_counter()
    proc = subprocess.run(["git", "-c", f"core.hooksPath={hooks_path}", "commit", "-q", "-m", message],
                          cwd=repo, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"git commit failed:\n{proc.stdout}{proc.stderr}")
    return elapsed, proc.stderr


def wait_fresh(repo: Path, timeout: float = 600.0) -> float:
    idx = repo / ".codesearch"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hooks.work_left(idx):
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"the background update did not finish; see {idx / hooks.LOG_FILE}")


def wait_stopped(repo: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while hooks.drainer_running(repo / ".codesearch") and time.monotonic() < deadline:
        time.sleep(0.1)


def searchable(repo: Path, path: str, marker: str) -> bool:
    con = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        rows = con.execute("SELECT path FROM units WHERE code LIKE ?", (f"%{marker}%",)).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows} == {path}  # the function (and its file's unit, if any)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="Keep the generated repository and its index here (reused when present).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures to this file.")
    args = ap.parse_args()

    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU only, for this process and the hooks it starts
    os.environ.pop("CODESEARCH_INDEX_DIR", None)
    os.environ.pop(SYNC_ENV, None)
    os.environ.pop(LINGER_ENV, None)
    os.environ.update(GIT_ENV)
    temp = None
    if args.workdir is None:
        temp = Path(tempfile.mkdtemp(prefix="codesearch-hook-bench-"))
        work = temp
    else:
        work = args.workdir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    repo = work / f"repo-{args.functions}"
    no_hooks = work / "no-hooks"
    no_hooks.mkdir(exist_ok=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # cache bytecode like a normal install
    try:
        figures = {"functions": args.functions, "runs": args.runs, "model": args.model, "device": "cpu",
                   "cpus": len(os.sched_getaffinity(0)), "load_average_start": os.getloadavg()[0]}
        if not (repo / ".codesearch" / "index.db").exists():
            shutil.rmtree(repo, ignore_errors=True)
            build_repo(repo, args.functions)
            print(f"indexing {args.functions} functions with {args.model} on CPU ...", flush=True)
            t0 = time.perf_counter()
            cs("index", str(repo), "--model", args.model, "--device", "cpu", "-q")
            figures["index_seconds"] = round(time.perf_counter() - t0, 1)
            print(f"  {figures['index_seconds']} s", flush=True)
        else:
            git(repo, "reset", "-q", "--hard")
            cs("hook", "uninstall", "--repo", str(repo))
            cs("index", str(repo), "--device", "cpu", "-q")  # catch up with earlier bench commits
        figures["units"] = units_count(repo)
        hooks_dir = hooks.hooks_dir(repo)
        cs("hook", "stop", "--repo", str(repo))  # a worker left by an earlier run would not be cold
        wait_stopped(repo)

        # -- commit latency: no hooks vs background hook, alternating ------------------------
        cs("hook", "install", "--device", "cpu", "--repo", str(repo))
        cs("--version")  # fills the bytecode cache
        plain, hooked, bg_fresh, bg_cold = [], [], [], None
        for run in range(args.runs + 1):  # run 0 warms the disk cache and is not counted
            path, _ = one_line_change(repo, run, "plain")
            git(repo, "add", path)
            t_plain, _ = timed_commit(repo, no_hooks, f"plain {run}")
            # the hooked commit changes the same file again, so its update covers both
            path, marker = one_line_change(repo, run, "hooked")
            git(repo, "add", path)
            start = time.perf_counter()
            t_hooked, err = timed_commit(repo, hooks_dir, f"hooked {run}")
            done = wait_fresh(repo)
            if not searchable(repo, path, marker):
                raise SystemExit(f"background update did not index the change ({err.strip()})")
            if run:
                plain.append(t_plain)
                hooked.append(t_hooked)
                bg_fresh.append(done - start)
            else:
                bg_cold = done - start
            print(f"  run {run}: commit {t_plain * 1000:.0f} ms without hooks, {t_hooked * 1000:.0f} ms with "
                  f"the background hook; index fresh after {done - start:.2f} s "
                  f"({'cold' if not run else 'warm worker'})", flush=True)
        cs("hook", "stop", "--repo", str(repo))

        # -- time to fresh, sync mode --------------------------------------------------------
        cs("hook", "install", "--sync", "--device", "cpu", "--repo", str(repo))
        sync = {}
        for kind, linger in (("cold", "0"), ("warm", str(DEFAULT_LINGER))):
            os.environ[LINGER_ENV] = linger
            wait_stopped(repo)
            sync[kind] = []
            for run in range(args.runs + 1):
                path, marker = one_line_change(repo, run, f"sync{kind}")
                git(repo, "add", path)
                t_sync, err = timed_commit(repo, hooks_dir, f"sync {kind} {run}")
                if not searchable(repo, path, marker) or "warning" in err:
                    raise SystemExit(f"the sync hook did not index the change: {err}")
                if run or kind == "cold":  # warm: run 0 starts the worker
                    sync[kind].append(t_sync)
                print(f"  sync run {run} ({kind}): commit returned with the index fresh after {t_sync:.2f} s",
                      flush=True)
            cs("hook", "stop", "--repo", str(repo))
        status = json.loads(cs("status", "--json", "--repo", str(repo)))
        assert status["changed_since"] == 0 and status["deleted_since"] == 0, status
        cs("hook", "uninstall", "--repo", str(repo))
        wait_stopped(repo)

        med = statistics.median
        figures.update({
            "commit_no_hook_ms": round(med(plain) * 1000),
            "commit_background_hook_ms": round(med(hooked) * 1000),
            "commit_slowdown_ms": round((med(hooked) - med(plain)) * 1000),
            "fresh_background_cold_s": round(bg_cold, 2),
            "fresh_background_warm_s": round(med(bg_fresh), 2),
            "fresh_sync_cold_s": round(med(sync["cold"]), 2),
            "fresh_sync_warm_s": round(med(sync["warm"]), 2),
            "load_average_end": os.getloadavg()[0],
            "samples": {"plain": plain, "hooked": hooked, "bg_fresh": bg_fresh, "sync": sync},
        })
        print()
        print(f"repository: {figures['units']} functions in {len(list(repo.glob('pkg*/module_*.py')))} files; "
              f"model {args.model} on CPU ({figures['cpus']} cores); median of {args.runs} runs")
        print(f"git commit, no hooks:            {figures['commit_no_hook_ms']:>6} ms")
        print(f"git commit, background hook:     {figures['commit_background_hook_ms']:>6} ms "
              f"(+{figures['commit_slowdown_ms']} ms; goal < 300 ms)")
        print(f"index fresh, background mode:    {figures['fresh_background_warm_s']:>6} s after the commit "
              f"started, warm worker ({figures['fresh_background_cold_s']} s for the first, cold)")
        print(f"index fresh, sync mode, cold:    {figures['fresh_sync_cold_s']:>6} s (model loaded inline; goal < 5 s)")
        print(f"index fresh, sync mode, warm:    {figures['fresh_sync_warm_s']:>6} s (lingering worker)")
        print(f"load average: {figures['load_average_start']:.2f} at start, {figures['load_average_end']:.2f} at end")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
