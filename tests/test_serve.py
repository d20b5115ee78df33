"""`codesearch serve`, a real server on loopback (e5-small on the CPU): the OpenAI embeddings
protocol, its vectors against the in-process path, batching of concurrent requests, the key,
bad requests, and Ctrl-C draining the requests in flight."""

from __future__ import annotations

import base64
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SERVER_KEY as KEY  # noqa: E402
from servers import run_cli, start_serve  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(e5_server):
    return e5_server


@pytest.fixture(scope="module")
def local(e5_spec):
    from codesearch.embedders.local import load_local

    return load_local(e5_spec, "cpu")


def post(server, payload, headers=AUTH, **kw):
    return httpx.post(server.url + "/embeddings", json=payload, headers=headers, timeout=120, **kw)


def vectors(response) -> np.ndarray:
    from codesearch.embedders.remote import decode_embedding

    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.stack([decode_embedding(d["embedding"]) for d in data])


def test_health_and_models(server):
    health = server.health()
    assert health["status"] == "ok" and health["dim"] == 384 and health["model"] == "intfloat/multilingual-e5-small"
    r = httpx.get(server.url + "/models", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "intfloat/multilingual-e5-small"


def test_inputs_formats_and_dimensions_agree(server, local):
    text = "passage: def add(a, b):\n    return a + b"
    one = vectors(post(server, {"input": text}))
    listed = post(server, {"input": [text, "passage: 读取CSV并排序"], "encoding_format": "base64",
                           "model": "e5-small"})
    assert listed.json()["usage"]["prompt_tokens"] > 10
    both = vectors(listed)
    ids = local.tokenize([text])
    by_ids = vectors(post(server, {"input": ids[0]}))
    assert np.allclose(one, both[:1], atol=1e-6) and np.allclose(one, by_ids, atol=1e-6)
    assert np.allclose(np.linalg.norm(both, axis=1), 1, atol=1e-5)
    cut = vectors(post(server, {"input": [text], "dimensions": 64}))
    assert cut.shape == (1, 64) and abs(np.linalg.norm(cut) - 1) < 1e-5
    expect = one[:, :64] / np.linalg.norm(one[:, :64])
    assert float((cut * expect).sum()) > 0.99999


def test_vectors_equal_the_in_process_path(server, e5_spec, local):
    """Through the client (which adds e5's prompts): cosine >= 0.999 to in-process, documents and questions."""
    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    remote = RemoteEmbedder(e5_spec, make_endpoints(e5_spec, server.url, None, KEY), request_tokens=200)
    docs = ["def add(a, b):\n    return a + b", "// 下载网页\nfunction fetchPage(url) { return fetch(url); }",
            "SELECT name FROM users ORDER BY name", "x = 1\n" * 600]  # the last one is over 512 tokens
    try:
        got, want = remote.embed_documents(docs), local.embed_documents(docs)
        assert (got * want).sum(axis=1).min() >= 0.999
        q_got, q_want = remote.embed_queries(["sum of two numbers", "读取网页"]), local.embed_queries(
            ["sum of two numbers", "读取网页"])
        assert (q_got * q_want).sum(axis=1).min() >= 0.999
        assert float((q_got[0] * got[0]).sum()) > float((q_got[0] * got[2]).sum())  # prompts were added
    finally:
        remote.close()


def test_concurrent_requests_are_embedded_together(server, local):
    texts = [f"passage: def function_{i}(x):\n    return x * {i}" for i in range(32)]
    before = server.health()
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(texts))

    def one(i):
        barrier.wait()
        results[i] = vectors(post(server, {"input": texts[i], "encoding_format": "base64"}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = server.health()
    got = np.concatenate([results[i] for i in range(len(texts))])
    want = local.embed_token_ids(local.tokenize(texts))
    assert (got * want).sum(axis=1).min() >= 0.999
    assert after["requests"] - before["requests"] == len(texts)
    assert after["jobs"] - before["jobs"] < len(texts)  # some requests shared a job


@pytest.mark.parametrize("payload,status", [
    (b"{not json", 400),
    (b"[1, 2]", 400),
    ({"model": "e5-small"}, 400),
    ({"input": []}, 400),
    ({"input": ["a", 1]}, 400),
    ({"input": [[1, 2, 10 ** 9]]}, 400),
    ({"input": [[]]}, 400),
    ({"input": [[5] * 600]}, 400),
    ({"input": "a", "dimensions": 0}, 400),
    ({"input": "a", "dimensions": 385}, 400),
    ({"input": "a", "encoding_format": "int8"}, 400),
    ({"input": "a", "model": "another-model"}, 404),
    ({"input": ["a"] * 2049}, 413),
])
def test_bad_requests_get_a_4xx_json_error_and_the_server_lives_on(server, payload, status):
    if isinstance(payload, bytes):
        r = httpx.post(server.url + "/embeddings", content=payload, headers=AUTH, timeout=30)
    else:
        r = post(server, payload)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert server.health()["status"] == "ok"


def test_the_key_is_required(server):
    assert post(server, {"input": "a"}, headers={}).status_code == 401
    r = post(server, {"input": "a"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "key" in r.json()["error"]["message"]
    assert httpx.get(server.url + "/models", timeout=10).status_code == 401


def test_listening_beyond_loopback_needs_a_key():
    r = run_cli("serve", "--model", "e5-small", "--host", "0.0.0.0", "--port", "0",
                env={"CODESEARCH_API_KEY": "", "OPENAI_API_KEY": ""}, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CODESEARCH_API_KEY" in lines[0]


def test_ctrl_c_lets_the_requests_in_flight_finish(e5_spec):
    srv = start_serve("--model", "e5-small", "--device", "cpu")
    try:
        texts = [f"passage: def f{i}(x):\n" + "    y = x + 1\n" * 40 for i in range(48)]
        answer: dict = {}

        def slow():
            answer["r"] = httpx.post(srv.url + "/embeddings", json={"input": texts}, timeout=120)

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 30
        while srv.health()["active"] == 0 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.02)  # until the request's job is being embedded
        assert t.is_alive(), "the request finished before Ctrl-C: make it bigger"
        code = srv.stop(signal.SIGINT)
        t.join(60)
        assert answer["r"].status_code == 200 and len(answer["r"].json()["data"]) == len(texts)
        assert code == 0 and any(line.startswith("stopped: 1 requests") for line in srv.log)
    finally:
        srv.kill()
