"""Git hooks on real git repositories made in a temp dir (no network).

The model is the bundled multilingual-e5-small folder (converted into the session's cache),
reached through a folder of symlinks, so one test can break "its" model without touching
the others. The index is built once per session and copied for each test (the copy keeps
mtimes, so nothing looks changed). Most tests run the hook with --sync, so the index is
fresh when `git commit` returns; one test covers the detached background worker.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codesearch import hooks
from codesearch.hooks import Batch, Change

PY = sys.executable
SYNC_ENV, LINGER_ENV, SYNC_WAIT_ENV = "CODESEARCH_HOOK_SYNC", "CODESEARCH_HOOK_LINGER", "CODESEARCH_HOOK_SYNC_WAIT"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull}

FILES = {
    "calc.py": '''def add_numbers(a, b):
    """Add two numbers."""
    return a + b


def subtract_numbers(a, b):
    """Subtract b from a."""
    return a - b
''',
    "io_utils.py": '''import csv


def read_csv_rows(path):
    """Read a CSV file into a list of rows."""
    with open(path, newline="") as f:
        return list(csv.reader(f))
''',
    "legacy.py": '''def legacy_checksum(data):
    """Old checksum nobody uses."""
    return sum(data) % 255
''',
    "config_loader.py": '''import json


def load_settings_file(path):
    """Load the JSON settings file."""
    with open(path) as f:
        return json.load(f)
''',
}
RENAMED = "new dir/naïve módulo é.py"  # a rename into a name with spaces and non-ASCII


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch):
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)  # no user or system config: no global core.hooksPath, no signing
    monkeypatch.delenv("CODESEARCH_INDEX_DIR", raising=False)
    monkeypatch.delenv(SYNC_ENV, raising=False)
    monkeypatch.setenv(LINGER_ENV, "0")  # workers exit when done (one test lets them linger)


def git(repo: Path, *args: str, check: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV, **(env_extra or {})},
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def cs(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PY, "-m", "codesearch.cli", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"codesearch {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write(repo: Path, rel: str, text: str) -> None:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def new_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for rel, text in (files or {"a.py": "def a():\n    return 1\n"}).items():
        write(path, rel, text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return path


def model_farm(folder: Path, target: Path) -> Path:
    """A model folder made of symlinks to `folder`'s files: cheap to copy, safe to break."""
    target.mkdir(parents=True)
    for entry in folder.iterdir():
        (target / entry.name).symlink_to(entry)
    return target


def units(repo: Path) -> set[tuple[str, str]]:
    con = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        return set(con.execute("SELECT path, name FROM units"))
    finally:
        con.close()


def vector_count(repo: Path) -> int:
    con = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        return con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    finally:
        con.close()


def up_to_date(repo: Path) -> bool:
    info = json.loads(cs("status", "--json", "--repo", str(repo)).stdout)
    return info["changed_since"] == 0 and info["deleted_since"] == 0


def lexical(repo: Path, query: str) -> list[tuple[str, str]]:
    from codesearch.search import Searcher
    from codesearch.store import Store

    store = Store(repo / ".codesearch").open()
    try:
        return [(h.path, h.name) for h in Searcher(store).search(query, 5, mode="lexical")]
    finally:
        store.close()


@pytest.fixture(scope="session")
def indexed_template(tmp_path_factory, e5_folder) -> tuple[Path, Path]:
    """(repo, model folder): a committed repository indexed once with the e5-small farm."""
    base = tmp_path_factory.mktemp("hooks-template")
    model = model_farm(e5_folder, base / "model")
    os.environ.update(GIT_ENV)
    repo = new_repo(base / "repo", FILES)
    cs("index", str(repo), "--model", str(model), "-q")
    return repo, model


@pytest.fixture
def indexed_repo(indexed_template, tmp_path) -> Path:
    repo, _model = indexed_template
    copy = tmp_path / "work repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def wait_for_worker(repo: Path, timeout: float = 180.0) -> None:
    idx = repo / ".codesearch"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hooks.pending(idx).events and not hooks.drainer_running(idx):
            return
        time.sleep(0.2)
    log = (idx / hooks.LOG_FILE).read_text(errors="replace") if (idx / hooks.LOG_FILE).exists() else ""
    raise AssertionError(f"background update did not finish in {timeout} s; log:\n{log}")


# -- install / uninstall (no model) --------------------------------------------------------------

def test_install_creates_hooks_and_is_idempotent(tmp_path):
    repo = new_repo(tmp_path / "r")
    out = cs("hook", "install", "--repo", str(repo)).stdout
    assert "has no index yet" in out
    hook_dir = repo / ".git" / "hooks"
    for name in hooks.HOOK_NAMES:
        p = hook_dir / name
        assert os.access(p, os.X_OK)
        text = p.read_text()
        assert text.startswith("#!/bin/sh\n") and text.count(hooks.BEGIN) == 1
        assert f"hook run {name} -- \"$@\" || true" in text
    before = {n: (hook_dir / n).read_bytes() for n in hooks.HOOK_NAMES}
    again = cs("hook", "install", "--repo", str(repo)).stdout
    assert again.count("already installed") == 3
    assert {n: (hook_dir / n).read_bytes() for n in hooks.HOOK_NAMES} == before
    status = json.loads(cs("hook", "status", "--json", "--repo", str(repo)).stdout)
    assert all(h["installed"] and h["mode"] == "background" for h in status["hooks"].values())
    # switching to --sync rewrites the block in place, still once
    cs("hook", "install", "--sync", "--repo", str(repo))
    assert (hook_dir / "pre-commit").read_text().count(hooks.BEGIN) == 1
    status = json.loads(cs("hook", "status", "--json", "--repo", str(repo)).stdout)
    assert all(h["mode"] == "sync" for h in status["hooks"].values())
    cs("hook", "uninstall", "--repo", str(repo))
    assert not any((hook_dir / n).exists() for n in hooks.HOOK_NAMES)


@pytest.mark.parametrize("original", [
    b"#!/bin/bash\nset -e\necho 'my own checks' >&2\nexit 0\n",
    b"#!/usr/bin/env sh\r\necho crlf\r\n",
    b"#!/bin/sh",  # no newline at all
    b"echo no shebang, run by sh\nexit 0",  # and no final newline
])
def test_existing_hook_kept_and_restored_byte_for_byte(tmp_path, original):
    repo = new_repo(tmp_path / "r")
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_bytes(original)
    hook.chmod(0o750)
    cs("hook", "install", "--repo", str(repo))
    cs("hook", "install", "--repo", str(repo))  # idempotent with a user hook too
    content = hook.read_bytes()
    assert content.count(hooks.BEGIN.encode()) == 1
    assert original.split(b"\n")[0].rstrip(b"\r") in content
    if original.startswith(b"#!"):
        assert content.startswith(original.split(b"\n")[0])  # shebang stays first
        # our block runs before the user's code, so a final `exit 0` cannot skip it
        assert content.index(hooks.BEGIN.encode()) < len(original.split(b"\n")[0]) + 2
    assert stat.S_IMODE(hook.stat().st_mode) == 0o750
    out = cs("hook", "uninstall", "--repo", str(repo)).stdout
    assert "as it was" in out
    assert hook.read_bytes() == original
    assert stat.S_IMODE(hook.stat().st_mode) == 0o750
    assert not (repo / ".git" / "hooks" / "post-merge").exists()


def test_existing_hook_still_runs_with_ours(tmp_path):
    repo = new_repo(tmp_path / "r")
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho USER-HOOK-RAN >&2\nexit 0\n")
    hook.chmod(0o755)
    cs("hook", "install", "--repo", str(repo))
    write(repo, "b.py", "def b():\n    return 2\n")
    git(repo, "add", "-A")
    proc = git(repo, "commit", "-q", "-m", "b")
    assert "USER-HOOK-RAN" in proc.stderr
    assert "no index for this repository yet" in proc.stderr  # ours ran too (and only hinted)


def test_refuses_non_shell_and_disabled_hooks(tmp_path):
    repo = new_repo(tmp_path / "r")
    hook = repo / ".git" / "hooks" / "post-merge"
    hook.write_text("#!/usr/bin/env python3\nprint('hi')\n")
    hook.chmod(0o755)
    proc = cs("hook", "install", "--repo", str(repo), check=False)
    assert proc.returncode != 0 and "python3 script" in proc.stderr
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()  # all or nothing
    hook.write_text("#!/bin/sh\necho disabled\n")
    hook.chmod(0o644)
    proc = cs("hook", "install", "--repo", str(repo), check=False)
    assert proc.returncode != 0 and "not executable" in proc.stderr


def test_core_hooks_path_and_worktrees(tmp_path):
    repo = new_repo(tmp_path / "r")
    git(repo, "config", "core.hooksPath", ".githooks")
    (repo / ".githooks").mkdir()
    mine = repo / ".githooks" / "pre-commit"
    mine.write_bytes(b"#!/bin/sh\necho team hook\n")
    mine.chmod(0o755)
    out = cs("hook", "install", "--repo", str(repo)).stdout
    assert str(repo / ".githooks" / "post-checkout") in out
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert hooks.BEGIN in mine.read_text()
    status = json.loads(cs("hook", "status", "--json", "--repo", str(repo)).stdout)
    assert status["core_hooks_path"] == ".githooks" and status["hooks"]["pre-commit"]["own_hook_kept"]
    # run from a subfolder: same place
    (repo / "sub").mkdir()
    assert "already installed" in cs("hook", "install", cwd=repo / "sub").stdout
    cs("hook", "uninstall", "--repo", str(repo))
    assert mine.read_bytes() == b"#!/bin/sh\necho team hook\n"
    assert not (repo / ".githooks" / "post-merge").exists()

    # a linked worktree shares the main repository's hooks
    git(repo, "config", "--unset", "core.hooksPath")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt))
    cs("hook", "install", "--repo", str(wt))
    assert (repo / ".git" / "hooks" / "pre-commit").exists()
    write(wt, "w.py", "def w():\n    return 3\n")
    git(wt, "add", "-A")
    proc = git(wt, "commit", "-q", "-m", "w")  # no index in the worktree: a hint, and the commit
    assert "no index for this repository yet" in proc.stderr
    assert git(wt, "log", "--oneline").stdout.count("\n") == 2
    assert not (wt / ".codesearch").exists()


def test_no_index_only_hints(tmp_path):
    repo = new_repo(tmp_path / "r")
    cs("hook", "install", "--sync", "--repo", str(repo))
    write(repo, "b.py", "def b():\n    return 2\n")
    git(repo, "add", "-A")
    proc = git(repo, "commit", "-q", "-m", "b")
    hint = [l for l in proc.stderr.splitlines() if l.startswith("codesearch:")]
    assert len(hint) == 1 and "codesearch index" in hint[0]
    assert not (repo / ".codesearch").exists()


# -- what changed ----------------------------------------------------------------------------------

def test_changed_paths_for_each_hook(tmp_path):
    repo = new_repo(tmp_path / "r", {"a.py": "x = 1\n", "b.py": "y = 2\n", "c d/é.py": "z = 3\n"})
    first = git(repo, "rev-parse", "HEAD").stdout.strip()
    write(repo, "a.py", "x = 10\n")
    (repo / "b.py").unlink()
    git(repo, "mv", "c d/é.py", "c d/ü ñ.py")
    write(repo, "new file.py", "n = 1\n")
    git(repo, "add", "-A")
    assert hooks.changed_paths(repo, "pre-commit").paths == {"a.py", "b.py", "c d/é.py", "c d/ü ñ.py",
                                                             "new file.py"}
    git(repo, "commit", "-q", "-m", "two")
    second = git(repo, "rev-parse", "HEAD").stdout.strip()
    expected = {"a.py", "b.py", "c d/é.py", "c d/ü ñ.py", "new file.py"}
    assert hooks.changed_paths(repo, "post-checkout", (first, second, "1")).paths == expected
    assert hooks.changed_paths(repo, "post-checkout", (second, second, "1")).paths == set()
    assert hooks.changed_paths(repo, "post-checkout", ("0" * 40, second, "1")).paths == set()
    file_checkout = hooks.changed_paths(repo, "post-checkout", (second, second, "0"))
    assert file_checkout.stale and file_checkout.paths == set()
    # the pre-commit framework passes the arguments as environment variables
    env = {"PRE_COMMIT_FROM_REF": first, "PRE_COMMIT_TO_REF": second, "PRE_COMMIT_CHECKOUT_TYPE": "1"}
    assert hooks.changed_paths(repo, "pre-commit", (), env).paths == expected
    # post-merge: ORIG_HEAD..HEAD
    git(repo, "checkout", "-q", "-b", "side", first)
    git(repo, "merge", "-q", "--ff-only", "main")
    assert hooks.changed_paths(repo, "post-merge", ("0",)).paths == expected


def test_name_status_parsing():
    out = b"M\0a.py\0R087\0old name.py\0new\xc3\xa9.py\0D\0gone.py\0C100\0x.py\0y.py\0"
    assert hooks.parse_name_status(out) == {"a.py", "old name.py", "newé.py", "gone.py", "x.py", "y.py"}
    assert hooks.parse_name_status(b"") == set()


# -- the queue (no model) ------------------------------------------------------------------------

def test_queue_is_drained_by_the_lock_holder_and_never_loses_paths(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    seen: list[set[str]] = []
    late = [Change({"late.py"})]

    def update(batch: Batch):
        seen.append(set(batch.paths))
        if late:  # a commit lands while we index: queued, picked up before we stop
            hooks.enqueue(idx, late.pop())

    hooks.enqueue(idx, Change({"a.py", "b c.py"}))
    hooks.enqueue(idx, Change({"a.py", "é.py"}))
    assert hooks.drain(idx, update) == "done"
    assert seen == [{"a.py", "b c.py", "é.py"}, {"late.py"}]
    assert hooks.pending(idx).events == 0

    # someone else holds the hook lock: the paths wait in the queue for them
    holder = hooks.hook_lock(idx)
    assert holder.acquire()
    try:
        assert hooks.drainer_running(idx)
        hooks.enqueue(idx, Change({"q.py"}))
        assert hooks.drain(idx, update) == "running"
        assert hooks.pending(idx).paths == {"q.py"}
    finally:
        holder.release()
    assert not hooks.drainer_running(idx)

    # a failed update keeps its paths (claimed) for the next run
    def broken(batch):
        raise RuntimeError("model cannot load")

    with pytest.raises(RuntimeError):
        hooks.drain(idx, broken)
    hooks.enqueue(idx, Change({"r.py"}))
    assert hooks.pending(idx).paths == {"q.py", "r.py"}
    seen.clear()
    assert hooks.drain(idx, update) == "done"
    assert seen == [{"q.py", "r.py"}]
    assert not (idx / hooks.CLAIMED_FILE).exists() and (idx / hooks.QUEUE_FILE).stat().st_size == 0


def test_hook_queues_when_an_update_is_running(indexed_repo, monkeypatch):
    repo = indexed_repo
    idx = repo / ".codesearch"
    monkeypatch.setenv(SYNC_WAIT_ENV, "2")  # a --sync commit waits this long for the drainer
    cs("hook", "install", "--sync", "--repo", str(repo))
    holder = hooks.hook_lock(idx)
    assert holder.acquire()
    try:
        write(repo, "calc.py", FILES["calc.py"] + "\n\ndef halve(x):\n    return x / 2\n")
        git(repo, "add", "-A")
        t0 = time.monotonic()
        proc = git(repo, "commit", "-q", "-m", "queued")
        assert time.monotonic() - t0 < 30
        assert "goes on in the background" in proc.stderr
        assert hooks.pending(idx).paths == {"calc.py"}
        assert ("calc.py", "halve") not in units(repo)
    finally:
        holder.release()
    # the next run (here: a hook with nothing new) drains what was queued
    cs("hook", "run", "--sync", "pre-commit", cwd=repo)
    assert ("calc.py", "halve") in units(repo)
    assert hooks.pending(idx).events == 0


# -- end to end, with the model --------------------------------------------------------------------

def test_sync_commits_keep_the_index_fresh(indexed_repo, indexed_template):
    repo = indexed_repo
    _template, model = indexed_template
    cs("hook", "install", "--sync", "--repo", str(repo))
    assert up_to_date(repo)
    vectors = vector_count(repo)

    # 1. a one-line modification: only that unit is re-embedded
    write(repo, "calc.py", FILES["calc.py"].replace("return a - b", "return a - b - 0  # tweak"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tweak")
    assert vector_count(repo) == vectors + 1
    assert up_to_date(repo)
    con = sqlite3.connect(repo / ".codesearch" / "index.db")
    code = con.execute("SELECT code FROM units WHERE name='subtract_numbers'").fetchone()[0]
    con.close()
    assert "# tweak" in code

    # 2. a deletion (no model needed)
    git(repo, "rm", "-q", "legacy.py")
    git(repo, "commit", "-q", "-m", "drop legacy")
    assert ("legacy.py", "legacy_checksum") not in units(repo)
    assert lexical(repo, "legacy checksum") == []

    # 3. a rename into a folder and name with spaces and non-ASCII, with new code
    (repo / RENAMED).parent.mkdir()
    git(repo, "mv", "config_loader.py", RENAMED)
    write(repo, "io_utils.py", FILES["io_utils.py"] + '''

def write_csv_rows(path, rows):
    """Write rows to a CSV file."""
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
''')
    git(repo, "add", "-A")
    proc = git(repo, "commit", "-q", "-m", "rename and add")
    assert "warning" not in proc.stderr
    got = units(repo)
    assert (RENAMED, "load_settings_file") in got and ("config_loader.py", "load_settings_file") not in got
    assert ("io_utils.py", "write_csv_rows") in got
    assert lexical(repo, "load_settings_file")[0] == (RENAMED, "load_settings_file")
    assert up_to_date(repo)
    assert hooks.pending(repo / ".codesearch").events == 0

    # the semantic side (hnswlib graph) answers for the new code too
    from codesearch.app import Query, SearchSession, open_workspace

    session = SearchSession(open_workspace(repo))
    try:
        hits = session.search(Query("write rows into a csv file", 3, mode="semantic"))
        assert (hits[0].path, hits[0].name) == ("io_utils.py", "write_csv_rows")
        hits = session.search(Query("load json settings", 3, mode="semantic"))
        assert (hits[0].path, hits[0].name) == (RENAMED, "load_settings_file")
        assert all(h.path != "legacy.py" for h in session.search(Query("checksum of data", 10, mode="semantic")))
    finally:
        session.close()

    # 4. checkouts and merges update the paths that differ between the two heads
    git(repo, "checkout", "-q", "-b", "old", "HEAD~2")  # before the deletion and the rename
    got = units(repo)
    assert ("legacy.py", "legacy_checksum") in got and ("config_loader.py", "load_settings_file") in got
    assert (RENAMED, "load_settings_file") not in got and ("io_utils.py", "write_csv_rows") not in got
    assert up_to_date(repo)
    git(repo, "merge", "-q", "--ff-only", "main")
    got = units(repo)
    assert (RENAMED, "load_settings_file") in got and ("legacy.py", "legacy_checksum") not in got
    assert up_to_date(repo)
    # a file checkout: git does not say which files, the indexed files' mtimes do
    write(repo, "calc.py", "def scratch():\n    return 0\n")
    cs("hook", "run", "--sync", "pre-commit", cwd=repo)  # nothing staged: nothing to do
    git(repo, "checkout", "--", "calc.py")
    assert up_to_date(repo)

    # 5. uninstall leaves no trace
    cs("hook", "uninstall", "--repo", str(repo))
    assert not any((repo / ".git" / "hooks" / n).exists() for n in hooks.HOOK_NAMES)


def test_background_commit_returns_and_index_catches_up(indexed_repo):
    repo = indexed_repo
    cs("hook", "install", "--repo", str(repo))
    write(repo, "calc.py", FILES["calc.py"] + '''

def multiply_numbers(a, b):
    """Multiply two numbers."""
    return a * b
''')
    git(repo, "add", "-A")
    t0 = time.monotonic()
    git(repo, "commit", "-q", "-m", "multiply")
    commit_s = time.monotonic() - t0
    # the commit did not wait for the model (loading it alone takes seconds)
    assert commit_s < 10, commit_s
    wait_for_worker(repo)
    assert ("calc.py", "multiply_numbers") in units(repo)
    assert up_to_date(repo)
    log = (repo / ".codesearch" / hooks.LOG_FILE).read_text()
    assert "updated 1 paths" in log and "1 pieces embedded" in log
    assert json.loads(cs("hook", "status", "--json", "--repo", str(repo)).stdout)["last_error"] is None


def test_warm_worker_serves_the_next_commits(indexed_repo, monkeypatch):
    repo = indexed_repo
    idx = repo / ".codesearch"
    monkeypatch.setenv(LINGER_ENV, "60")
    cs("hook", "install", "--repo", str(repo))
    try:
        write(repo, "calc.py", FILES["calc.py"] + "\n\ndef double(x):\n    return 2 * x\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "double")
        deadline = time.monotonic() + 180
        while hooks.work_left(idx) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ("calc.py", "double") in units(repo)
        assert hooks.drainer_running(idx)  # still there, model loaded
        info = json.loads(cs("hook", "status", "--json", "--repo", str(repo)).stdout)
        assert info["worker_running"] and info["worker_pid"] and info["linger_s"] == 60

        # a --sync commit hands its paths to the warm worker and returns once they are in
        cs("hook", "install", "--sync", "--repo", str(repo))
        write(repo, "io_utils.py", FILES["io_utils.py"] + "\n\ndef first_row(rows):\n    return rows[0]\n")
        git(repo, "add", "-A")
        t0 = time.monotonic()
        proc = git(repo, "commit", "-q", "-m", "first row")
        warm_s = time.monotonic() - t0
        assert "warning" not in proc.stderr
        assert ("io_utils.py", "first_row") in units(repo) and up_to_date(repo)
        log = (idx / hooks.LOG_FILE).read_text()
        assert log.count("loading model") == 1, log  # the second update reused the loaded model
        assert warm_s < 30, warm_s
    finally:
        out = cs("hook", "stop", "--repo", str(repo)).stdout
    assert "stopped the worker" in out
    deadline = time.monotonic() + 30
    while hooks.drainer_running(idx) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hooks.drainer_running(idx)


def test_commit_goes_through_when_the_model_cannot_load(indexed_repo, indexed_template, tmp_path):
    repo = indexed_repo
    _template, good = indexed_template
    broken = model_farm(good.resolve(), tmp_path / "broken model")
    (broken / "model.safetensors").unlink()
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    from codesearch.store import Store

    store = Store(repo / ".codesearch").open()  # the index now says it was built with `broken`
    meta = store.get_meta("model")
    meta["id"] = str(broken.resolve())
    store.set_meta("model", meta)
    store.close()

    cs("hook", "install", "--sync", "--repo", str(repo))
    write(repo, "calc.py", FILES["calc.py"] + "\n\ndef triple(x):\n    return 3 * x\n")
    git(repo, "add", "-A")
    # with lingering on, --sync starts a worker and waits for it: here it fails to load the model
    proc = git(repo, "commit", "-q", "-m", "triple", env_extra={LINGER_ENV: "30"})
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("codesearch:")]
    assert len(warnings) == 1 and "warning" in warnings[0] and "queued" in warnings[0], proc.stderr
    assert git(repo, "log", "-1", "--format=%s").stdout.strip() == "triple"
    assert hooks.pending(repo / ".codesearch").paths == {"calc.py"}
    assert hooks.last_error(repo / ".codesearch")

    # the background mode fails the same way without holding anything up
    cs("hook", "install", "--repo", str(repo))
    git(repo, "rm", "-q", "legacy.py")
    git(repo, "commit", "-q", "-m", "drop legacy")
    wait_for_worker_or_failure(repo)
    assert "calc.py" in hooks.pending(repo / ".codesearch").paths

    # repair the model: the next run catches up with everything queued
    (broken / "model.safetensors").unlink()
    (broken / "model.safetensors").symlink_to(good.resolve() / "model.safetensors")
    cs("hook", "install", "--sync", "--repo", str(repo))
    write(repo, "io_utils.py", FILES["io_utils.py"] + "\n\ndef count_rows(rows):\n    return len(rows)\n")
    git(repo, "add", "-A")
    proc = git(repo, "commit", "-q", "-m", "count")
    assert "caught up" in proc.stderr
    got = units(repo)
    assert ("calc.py", "triple") in got and ("io_utils.py", "count_rows") in got
    assert ("legacy.py", "legacy_checksum") not in got
    assert hooks.pending(repo / ".codesearch").events == 0 and hooks.last_error(repo / ".codesearch") is None
    assert up_to_date(repo)


def wait_for_worker_or_failure(repo: Path, timeout: float = 180.0) -> None:
    """Wait until the background worker has given up (its claimed paths stay queued)."""
    idx = repo / ".codesearch"
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    while time.monotonic() < deadline:
        if not hooks.drainer_running(idx) and not (idx / hooks.QUEUE_FILE).stat().st_size:
            log = (idx / hooks.LOG_FILE).read_text(errors="replace")
            if "update failed" in log:
                return
        time.sleep(0.2)
    raise AssertionError("the background worker did not report its failure")


def test_pre_commit_framework_manifest():
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((root / ".pre-commit-hooks.yaml").read_text())
    (entry,) = [h for h in manifest if h["id"] == "codesearch-reindex"]
    assert entry["entry"].split()[:3] == ["codesearch", "hook", "run"]
    assert entry["language"] == "python" and entry["pass_filenames"] is False and entry["always_run"] is True
    assert set(entry["stages"]) == {"pre-commit", "post-checkout", "post-merge"}


def test_pre_commit_framework_runs_the_hook(tmp_path, indexed_repo):
    """The pre-commit framework itself installs this project from .pre-commit-hooks.yaml (as a
    user's `repo:` entry would, non-editable) and runs the hook, which updates the index.

    Offline: the framework's virtualenv sees this interpreter's packages
    (VIRTUALENV_SYSTEM_SITE_PACKAGES), so pip installs codesearch itself with no index."""
    exe = shutil.which("pre-commit")
    if exe is None:
        pytest.skip("the pre-commit framework is not installed (pip install pre-commit)")
    root = Path(__file__).resolve().parent.parent
    hook_repo = tmp_path / "hook repo"
    hook_repo.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(root / name, hook_repo / name)
    shutil.copytree(root / "codesearch", hook_repo / "codesearch", ignore=shutil.ignore_patterns("__pycache__"))
    git(hook_repo, "init", "-q", "-b", "main")
    git(hook_repo, "add", "-A")
    git(hook_repo, "commit", "-q", "-m", "hook")
    rev = git(hook_repo, "rev-parse", "HEAD").stdout.strip()
    write(indexed_repo, ".pre-commit-config.yaml",
          f"repos:\n-   repo: {hook_repo}\n    rev: {rev}\n    hooks: [{{id: codesearch-reindex}}]\n")
    write(indexed_repo, "calc.py", FILES["calc.py"] + "\n\ndef halve_number(x):\n    return x / 2\n")
    git(indexed_repo, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit home"), "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", SYNC_ENV: "1"}
    proc = subprocess.run([exe, "run", "--hook-stage", "pre-commit"], cwd=indexed_repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "codesearch index update" in proc.stdout and "Passed" in proc.stdout
    assert ("calc.py", "halve_number") in units(indexed_repo)
