"""An independent OpenAI-compatible server: Infinity (michaelfeil/infinity, from PyPI) serving the
bundled e5-small folder on the CPU, offline. The client's vectors through it equal the
in-process path, and a fixture repository is indexed and queried through it.

Infinity pins transformers<5 and numpy<2, so it lives in a virtual environment of its own
(.ci/run makes one); the tests find its `infinity_emb` on PATH or at $CODESEARCH_TEST_INFINITY
and skip without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import infinity_executable, run_cli, start_infinity  # noqa: E402

pytestmark = pytest.mark.skipif(infinity_executable() is None,
                                reason="Infinity is not installed (pip install 'infinity-emb[server,torch]' in a "
                                       "venv of its own; CODESEARCH_TEST_INFINITY=<its bin/infinity_emb>)")

FILES = {"calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
         "text/csv_tools.py": "import csv\n\ndef read_sorted(path, column):\n    \"\"\"Read a CSV file and sort "
                              "its rows by a column.\"\"\"\n    with open(path) as f:\n        rows = list(csv.DictReader(f))"
                              "\n    return sorted(rows, key=lambda r: r[column])\n",
         "web/fetch.js": "// download a page over http\nfunction fetchPage(url) {\n  return fetch(url);\n}\n"}


@pytest.fixture(scope="module")
def infinity(e5_folder):
    srv = start_infinity(e5_folder, name="e5-small")
    yield srv
    srv.stop()


def test_vectors_through_infinity_equal_the_in_process_path(infinity, e5_spec):
    from codesearch.embedders.local import load_local
    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    remote = RemoteEmbedder(e5_spec, make_endpoints(e5_spec, infinity.url, "e5-small", None))
    local = load_local(e5_spec, "cpu")
    docs = ["def add(a, b):\n    return a + b", "// 下载网页\nfunction fetchPage(url) { return fetch(url); }",
            "x = 1\n" * 600]  # over 512 tokens: cut by the client as the in-process path cuts
    try:
        assert (remote.embed_documents(docs) * local.embed_documents(docs)).sum(axis=1).min() >= 0.999
        questions = ["sum of two numbers", "读取CSV并排序"]
        assert (remote.embed_queries(questions) * local.embed_queries(questions)).sum(axis=1).min() >= 0.999
    finally:
        remote.close()


def test_index_and_query_a_repository_through_infinity(infinity, make_git_repo):
    repo = make_git_repo(FILES)
    r = run_cli("index", str(repo), "--model", "e5-small", "--api-base", infinity.url, "--api-model", "e5-small")
    assert r.returncode == 0, r.stderr
    r = run_cli("query", "--json", "-k", "1", "--repo", str(repo), "读取CSV并排序")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"] == "text/csv_tools.py"
