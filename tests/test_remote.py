"""Indexing and querying through embedding servers (real `codesearch serve` processes on
loopback): the endpoints recorded by the index, a question that never imports torch, an
unreachable endpoint, an interrupted run that resumes, two replicas with one killed mid-run,
Qwen3's end-of-text token, Matryoshka cuts, and the model facts that need no weights."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SERVER_KEY  # noqa: E402
from servers import ROOT, free_port, run_cli, start_serve  # noqa: E402

KEYED = {"CODESEARCH_API_KEY": SERVER_KEY}
FILES = {"calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
         "text/csv_tools.py": "import csv\n\ndef read_sorted(path, column):\n    \"\"\"Read a CSV file and sort "
                              "its rows by a column.\"\"\"\n    with open(path) as f:\n        rows = list(csv.DictReader(f))"
                              "\n    return sorted(rows, key=lambda r: r[column])\n",
         "web/fetch.js": "// download a page over http\nfunction fetchPage(url) {\n  return fetch(url);\n}\n"}


def many_functions(n: int) -> dict[str, str]:
    """n small, different Python functions in files of 25."""
    files = {}
    for f in range(0, n, 25):
        body = []
        for i in range(f, min(n, f + 25)):
            body.append(f"def step_{i}(values, factor={i}):\n    \"\"\"Scale every value by {i} and keep those above "
                        f"{i % 7}.\"\"\"\n    return [v * factor for v in values if v * factor > {i % 7}]\n")
        files[f"pkg/mod_{f // 25}.py"] = "\n\n".join(body)
    return files


def db(repo: Path) -> sqlite3.Connection:
    return sqlite3.connect(repo / ".codesearch" / "index.db")


def counts(repo: Path) -> tuple[int, int, int]:
    """(chunks, vectors, chunks without a vector)."""
    with db(repo) as c:
        chunks = c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        vectors = c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        missing = c.execute("SELECT COUNT(*) FROM chunks WHERE text_hash NOT IN (SELECT text_hash FROM vectors)"
                            ).fetchone()[0]
    return chunks, vectors, missing


def meta(repo: Path, key: str):
    with db(repo) as c:
        row = c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def test_index_and_query_through_serve_use_the_recorded_endpoint(e5_server, make_git_repo):
    repo = make_git_repo(FILES)
    r = run_cli("index", str(repo), "--model", "e5-small", "--api-base", e5_server.url, env=KEYED)
    assert r.returncode == 0, r.stderr
    assert f"on {e5_server.url}" in r.stdout and "remote:" in r.stderr
    assert meta(repo, "api") == {"bases": [e5_server.url], "model": "intfloat/multilingual-e5-small"}
    assert SERVER_KEY.encode() not in (repo / ".codesearch" / "index.db").read_bytes()
    r = run_cli("status", "--repo", str(repo))
    assert f"embedded on {e5_server.url} (as intfloat/multilingual-e5-small)" in r.stdout
    before = e5_server.health()["requests"]
    r = run_cli("query", "--json", "-k", "1", "--repo", str(repo), "read a csv file and sort it", env=KEYED)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"] == "text/csv_tools.py"
    assert e5_server.health()["requests"] > before  # the question went to the server
    r = run_cli("query", "--json", "-k", "1", "--repo", str(repo), "读取CSV并排序", env=KEYED)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["path"] == "text/csv_tools.py"
    served = e5_server.health()["requests"]
    r = run_cli("query", "--json", "-k", "1", "--repo", str(repo), "--api-base", "local", "read a csv file")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["path"] == "text/csv_tools.py"
    assert e5_server.health()["requests"] == served  # --api-base local: embedded here


def test_a_question_through_an_endpoint_never_imports_torch(e5_server, make_git_repo):
    repo = make_git_repo(FILES)
    assert run_cli("index", str(repo), "--model", "e5-small", "--api-base", e5_server.url, "-q",
                   env=KEYED).returncode == 0
    code = ("import sys, json\n"
            "from codesearch.app import Query, SearchSession, open_workspace\n"
            f"session = SearchSession(open_workspace({str(repo)!r}))\n"
            "hits = session.search(Query('sum of two numbers', k=1, mode='semantic'))\n"
            "print(json.dumps({'top': hits[0].path, 'path': session.searcher.embedder.path,\n"
            "                  'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT), **KEYED})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"top": "calc.py", "path": "remote", "heavy": []}


def test_an_unreachable_endpoint_is_one_error_line_that_names_it(e5_server, make_git_repo):
    repo = make_git_repo(FILES)
    assert run_cli("index", str(repo), "--model", "e5-small", "--api-base", e5_server.url, "-q",
                   env=KEYED).returncode == 0
    dead = f"http://127.0.0.1:{free_port()}/v1"
    r = run_cli("query", "--repo", str(repo), "--api-base", dead, "sum of two numbers", env=KEYED)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 8 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: cannot reach the embedding server at " + dead) and "--api-base" in lines[0]
    other = make_git_repo({"a.py": "def other():\n    return 1\n"}, name="other")
    r = run_cli("index", str(other), "--model", "e5-small", "--api-base", e5_server.url, "-q",
                env={"CODESEARCH_API_KEY": "wrong"})
    assert r.returncode == 8 and "refused" in r.stderr and "CODESEARCH_API_KEY" in r.stderr.strip().splitlines()[-1]
    r = run_cli("query", "--repo", str(repo), "--api-base", "ftp://x", "q", env=KEYED)
    assert r.returncode == 2 and "is not an http(s) URL" in r.stderr


def test_an_interrupted_remote_run_resumes(e5_server, make_git_repo):
    repo = make_git_repo(many_functions(250))
    args = [sys.executable, "-m", "codesearch", "index", str(repo), "--model", "e5-small", "--api-base",
            e5_server.url, "--batch-tokens", "64", "-q"]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), **KEYED}
    start = e5_server.health()["inputs"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while e5_server.health()["inputs"] - start < 60 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    chunks, kept, _ = counts(repo)
    assert chunks == 0 and 0 < kept < 250  # killed mid-run: vectors so far committed, no index swapped in
    r = run_cli("index", str(repo), "--api-base", e5_server.url, "--json", "-q", env=KEYED)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["chunks_reused"] == kept and report["chunks_embedded"] == 250 - kept
    assert counts(repo) == (250, 250, 0)


@pytest.fixture(scope="module")
def replicas(e5_spec):
    """Two `codesearch serve` replicas of e5-small, one CPU thread each."""
    pair = [start_serve("--model", "e5-small", "--device", "cpu", env={"CODESEARCH_THREADS": "1"}) for _ in range(2)]
    yield pair
    for srv in pair:
        srv.kill()


def test_two_replicas_one_killed_mid_index_the_run_finishes_through_the_other(replicas, make_git_repo):
    a, b = replicas
    repo = make_git_repo(many_functions(300))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "codesearch", "index", str(repo), "--model", "e5-small",
                             "--api-base", f"{a.url},{b.url}", "--batch-tokens", "64", "--json", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while a.health()["inputs"] < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before a replica could be killed"
    a.kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["chunks_embedded"] == 300 and counts(repo) == (300, 300, 0)
    assert b.health()["inputs"] > 0
    r = run_cli("query", "--json", "-k", "1", "--repo", str(repo), "scale every value by 123")  # a still dead
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["qualname"] == "step_123"


def test_qwen3_through_serve_matches_in_process(qwen_folder):
    """The client sends no <|endoftext|> and adds the instruction; the server closes each input
    with the end token (the tiny tokenizer does not) as the in-process path does."""
    from codesearch.embedders.local import load_local
    from codesearch.embedders.models import resolve_model
    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    srv = start_serve("--model", str(qwen_folder), "--device", "cpu")
    try:
        spec = resolve_model(str(qwen_folder), remote=True)
        remote = RemoteEmbedder(spec, make_endpoints(spec, srv.url, None, None))
        local = load_local(resolve_model(str(qwen_folder)), "cpu")
        docs = ["def add(a, b):\n    return a + b", "读取CSV文件并按列排序"]
        assert (remote.embed_documents(docs) * local.embed_documents(docs)).sum(axis=1).min() >= 0.999
        assert (remote.embed_queries(["sum"]) * local.embed_queries(["sum"])).sum() >= 0.999
        remote.close()
    finally:
        srv.stop()


def test_matryoshka_dimensions_are_asked_for_and_cut_locally(e5_server, e5_spec):
    from dataclasses import replace

    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    full = RemoteEmbedder(e5_spec, make_endpoints(e5_spec, e5_server.url, None, SERVER_KEY))
    cut_spec = replace(e5_spec, dims=96)
    cut = RemoteEmbedder(cut_spec, make_endpoints(cut_spec, e5_server.url, None, SERVER_KEY))
    texts = ["def add(a, b): return a + b", "SELECT * FROM t"]
    a, b = full.embed_documents(texts), cut.embed_documents(texts)
    assert b.shape == (2, 96) and cut.dim == 96
    expect = a[:, :96] / np.linalg.norm(a[:, :96], axis=1, keepdims=True)
    assert np.allclose(b, expect, atol=1e-5)


def test_models_are_described_without_their_weights(qwen_folder, make_git_repo):
    """--model Qwen/Qwen3-Embedding-0.6B --api-base works where the model was never downloaded,
    with the same meaning as the real folder's spec (and e5-small as the bundled one)."""
    from codesearch.embedders import models_match
    from codesearch.embedders.models import known_spec, native_dim, offline_spec, resolve_model, spec_from_folder
    from codesearch.errors import ModelUnavailableError

    qwen = resolve_model("Qwen/Qwen3-Embedding-0.6B", remote=True, allow_download=False)
    assert native_dim(qwen) == 1024 and qwen.pooling == "last" and qwen.query_prompt.startswith("Instruct: ")
    assert models_match(qwen, spec_from_folder(qwen_folder, "Qwen/Qwen3-Embedding-0.6B").index_meta())
    assert models_match(known_spec("e5-small"), offline_spec().index_meta())
    with pytest.raises(ModelUnavailableError, match="does not know"):
        resolve_model("someone/unknown-model", remote=True)
    r = run_cli("index", str(make_git_repo(FILES)), "--model", "Qwen/Qwen3-Embedding-0.6B", "--api-base",
                f"http://127.0.0.1:{free_port()}/v1")
    assert r.returncode == 8 and "cannot reach the embedding server" in r.stderr  # the model was no obstacle
