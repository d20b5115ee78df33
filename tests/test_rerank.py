"""The second stage: a cross-encoder on a rerank server reorders the best candidates.

The server is a real one, Infinity (from PyPI, in a venv of its own; skipped without it),
serving a small cross-encoder made here: a 2-layer BERT sequence classifier with seeded random
weights and the e5-small tokenizer (no reranker weights can be downloaded here). Its scores
mean nothing, which is the point of the test: codesearch's order must be the server's order,
not one it could have reached by itself. A dead server leaves the first-stage answer and a note.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import free_port, infinity_executable, run_cli, start_infinity  # noqa: E402

from codesearch.app import Query, SearchSession, choose_reranker, open_workspace  # noqa: E402
from codesearch.errors import CodesearchError  # noqa: E402
from codesearch.rerank import (RerankError, _read_scores, candidate_text, format_pair, reorder,  # noqa: E402
                               template_for)
from codesearch.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
needs_infinity = pytest.mark.skipif(infinity_executable() is None, reason="Infinity is not installed "
                                    "(CODESEARCH_TEST_INFINITY=<its bin/infinity_emb>; .ci/run makes one)")


# -- pieces without a server --------------------------------------------------------------------

def test_reorder_follows_the_scores_for_the_head_and_keeps_the_tail():
    ranked = [(10, 0.9), (11, 0.8), (12, 0.7), (13, 0.6)]
    assert reorder(ranked, [0.1, 0.7, 0.7]) == [(11, 0.8), (12, 0.7), (10, 0.9), (13, 0.6)]  # ties: first stage


def test_qwen3_template_is_the_model_cards():
    q, d = format_pair("qwen3", "读取CSV并排序", "def read_csv(): ...")
    assert q.startswith("<|im_start|>system\nJudge whether the Document meets the requirements")
    assert q.endswith("<Instruct>: Given a question about code, retrieve the function or method that answers it\n"
                      "<Query>: 读取CSV并排序\n")
    assert d == "<Document>: def read_csv(): ...<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert format_pair("plain", "q", "d") == ("q", "d")
    assert template_for("auto", "Qwen/Qwen3-Reranker-0.6B") == "qwen3"
    assert template_for("auto", "BAAI/bge-reranker-v2-m3") == "plain"
    assert template_for("plain", "Qwen/Qwen3-Reranker-4B") == "plain"


def test_candidate_text_has_the_name_doc_and_code_once_and_is_cut():
    text = candidate_text("src/a.py", "Reader.read", "def read(self)", "Read it.", "def read(self):\n    pass")
    assert text == "src/a.py Reader.read\nRead it.\ndef read(self):\n    pass"
    assert len(candidate_text("a.py", "f", "", "", "x" * 10_000)) == 2000


@pytest.mark.parametrize("body,problem", [
    ({"results": [{"index": 0, "relevance_score": 0.5}]}, "scored 1 of 2"),
    ({"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.1}]}, "not a rerank"),
    ({"results": [{"index": 0, "relevance_score": 0.5}, {"index": 5, "relevance_score": 0.1}]}, "not a rerank"),
    ({"results": [{"index": 0, "relevance_score": "NaN"}, {"index": 1, "relevance_score": 0.1}]}, "not a rerank"),
    ({"data": []}, "not a rerank"),
])
def test_a_wrong_answer_is_an_error_not_an_order(body, problem):
    with pytest.raises(RerankError, match=problem):
        _read_scores("http://x/v1", httpx.Response(200, json=body), 2)


def test_reranker_settings_are_checked_before_the_first_question():
    assert choose_reranker(Settings()) is None
    assert choose_reranker(Settings(rerank_api_base="none", rerank_model="m")) is None
    ep = choose_reranker(Settings(rerank_api_base="http://gpu:8000/v1/", rerank_model="Qwen/Qwen3-Reranker-0.6B"))
    assert (ep.base, ep.template, ep.top) == ("http://gpu:8000/v1", "qwen3", 20)
    for bad, message in ((Settings(rerank_api_base="http://gpu:8000/v1"), "needs the model"),
                         (Settings(rerank_api_base="ftp://gpu/v1", rerank_model="m"), "not an http"),
                         (Settings(rerank_api_base="http://a/v1,http://b/v1", rerank_model="m"), "one reranker URL")):
        with pytest.raises(CodesearchError, match=message):
            choose_reranker(bad)


# -- a real rerank server ---------------------------------------------------------------------------

FILES = {
    "conf.py": 'def parse_config(text):\n    """Parse key=value lines into a dict."""\n'
               '    return dict(l.split("=", 1) for l in text.splitlines())\n\n\n'
               'def write_config(path, values):\n    """Write a dict as key=value lines."""\n'
               '    open(path, "w").write("\\n".join(f"{k}={v}" for k, v in values.items()))\n',
    "net.py": 'def fetch_page(url):\n    """Download a page over HTTP."""\n    import urllib.request\n'
              '    return urllib.request.urlopen(url).read()\n\n\n'
              'def retry(fn, attempts=3):\n    """Call fn again until it succeeds."""\n'
              '    for _ in range(attempts - 1):\n        try:\n            return fn()\n'
              '        except OSError:\n            pass\n    return fn()\n',
    "maths.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n\n\n'
                'def mean(values):\n    """The average of a list of numbers."""\n    return sum(values) / len(values)\n',
}


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, e5_folder) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-rerank")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(e5_folder / name, folder / name)  # Infinity's transformers<5 reads the original files
    vocab = json.loads((e5_folder / "config.json").read_text())["vocab_size"]
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=514, num_labels=1, pad_token_id=1,
                        initializer_range=0.5)  # wide weights: scores far apart, one order whatever the float path
    torch.manual_seed(1234)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder):
    srv = start_infinity(tiny_cross_encoder, name="tiny-rerank")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, e5_spec):
    import subprocess

    from codesearch.embedders.local import load_local
    from codesearch.indexer import Indexer
    from codesearch.paths import index_dir_for

    repo = tmp_path_factory.mktemp("rerank-repo")
    for rel, text in FILES.items():
        (repo / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    embedder = load_local(e5_spec, "cpu")
    Indexer(repo, index_dir_for(repo)).run(spec_for=lambda r: embedder.spec, embedder_for=lambda s, t: embedder)
    return repo


def _server_order(base: str, question: str, texts: list[str]) -> list[int]:
    body = {"model": "tiny-rerank", "query": question, "documents": texts}
    results = httpx.post(f"{base}/rerank", json=body, timeout=60).json()["results"]
    scores = {r["index"]: r["relevance_score"] for r in results}
    return sorted(range(len(texts)), key=lambda i: (-scores[i], i))


@needs_infinity
def test_the_best_candidates_come_in_the_servers_order(reranker, indexed):
    question = "read settings from a config file"
    plain = SearchSession(open_workspace(indexed, daemon=False))
    first = plain.answer(Query(question, k=20, threshold=0.0)).hits  # every unit: rerank_top is 20
    plain.close()
    rows = {h.unit_id: h for h in first}
    store_rows = None
    session = SearchSession(open_workspace(indexed, daemon=False, rerank_api_base=reranker.url,
                                           rerank_model="tiny-rerank"))
    try:
        answer = session.answer(Query(question, k=4, threshold=0.0))
        store_rows = session.store.units_by_id([h.unit_id for h in first])
    finally:
        session.close()
    texts = [candidate_text(*(store_rows[h.unit_id][i] for i in (1, 5, 8, 9, 10))) for h in first]
    expected = [first[i].unit_id for i in _server_order(reranker.url, question, texts)][:4]
    got = [h.unit_id for h in answer.hits]
    assert got == expected and answer.notes == []
    assert got != [h.unit_id for h in first[:4]]  # the server's order, not the first stage's
    assert all(h.why["rerank"] is not None for h in answer.hits) and set(got) <= set(rows)
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)  # printed scores still descend


@needs_infinity
def test_query_flags_reach_the_reranker_and_a_dead_one_leaves_the_first_stage(reranker, indexed):
    question = "download a web page"
    base = ["query", "--json", "-k", "3", "--no-daemon", "--repo", str(indexed)]
    plain = run_cli(*base, question)
    assert plain.returncode == 0, plain.stderr
    live = run_cli(*base, "--rerank-api-base", reranker.url, "--rerank-model", "tiny-rerank", question)
    assert live.returncode == 0 and "note:" not in live.stderr, live.stderr
    session = SearchSession(open_workspace(indexed, daemon=False, rerank_api_base=reranker.url,
                                           rerank_model="tiny-rerank"))
    try:
        in_process = [h.qualname for h in session.answer(Query(question, k=3, threshold=0.0)).hits]
    finally:
        session.close()
    assert [h["qualname"] for h in json.loads(live.stdout)] == in_process
    dead = f"http://127.0.0.1:{free_port()}/v1"
    r = run_cli(*base, "--rerank-api-base", dead, "--rerank-model", "tiny-rerank", question)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(plain.stdout)
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: the reranker at {dead} did not answer (connection refused); "
                     f"results are in first-stage order"]
    r = run_cli(*base, "--rerank-api-base", reranker.url, question)
    assert r.returncode == 2 and "needs the model to send" in r.stderr
