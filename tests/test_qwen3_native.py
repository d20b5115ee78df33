"""Qwen3 checkpoints read without transformers (embedders/qwen3_native.py) give transformers'
token ids and vectors, and a question on such a model never imports transformers."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codesearch.embedders.gpu import PackedGpuEmbedder
from codesearch.embedders.hf_model import HFModel
from codesearch.embedders.models import spec_from_folder
from codesearch.embedders.qwen3_native import NativeDecoderModel, native_config
from codesearch.embedders.transformers_loop import TransformersEmbedder

TEXTS = ["def read_csv(path):\n    return list(csv.reader(open(path)))", "读取CSV并排序", "x",
         "already closed<|endoftext|>", "word " * 3000]


@pytest.fixture(scope="module")
def spec(qwen_folder):
    return spec_from_folder(qwen_folder, "tiny-qwen3")


@pytest.fixture(scope="module")
def reference(spec):
    return TransformersEmbedder(HFModel(spec, "cpu"))


def cos_min(a, b):
    return float((a * b).sum(axis=1).min())


def test_token_ids_are_transformers_ids(spec, reference):
    assert NativeDecoderModel(spec, "cpu").tokenize(TEXTS) == reference.tokenize(TEXTS)
    short = dataclasses.replace(spec, max_tokens=512)
    ids = NativeDecoderModel(short, "cpu").tokenize(TEXTS)
    assert ids == HFModel(short, "cpu").tokenize(TEXTS)
    assert len(ids[-1]) == 512 and ids[-1][-1] == ids[0][-1]  # truncated to the limit, EOS kept last


@pytest.mark.parametrize("dtype,floor", [("fp32", 0.99999), (None, 0.999)])
def test_vectors_match_transformers(spec, reference, dtype, floor):
    native = PackedGpuEmbedder(NativeDecoderModel(spec, "cpu", dtype=dtype))
    assert cos_min(native.embed_documents(TEXTS), reference.embed_documents(TEXTS)) > floor
    assert cos_min(native.embed_queries(TEXTS[:2]), reference.embed_queries(TEXTS[:2])) > floor


def test_matryoshka_dims(spec):
    short = dataclasses.replace(spec, dims=32)
    ref = TransformersEmbedder(HFModel(short, "cpu")).embed_documents(TEXTS[:3])
    ours = PackedGpuEmbedder(NativeDecoderModel(short, "cpu", dtype="fp32")).embed_documents(TEXTS[:3])
    assert ours.shape == (3, 32) and cos_min(ours, ref) > 0.99999


def test_sharded_checkpoint(spec, reference, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "sharded"
    shutil.copytree(spec.source, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:]), 1):
        shard = f"model-0000{i}-of-00002.safetensors"
        save_file({f"model.{n}": tensors[n] for n in part}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({f"model.{n}": shard for n in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = dataclasses.replace(spec, source=str(folder))
    ours = PackedGpuEmbedder(NativeDecoderModel(sharded, "cpu", dtype="fp32")).embed_documents(TEXTS[:3])
    assert cos_min(ours, reference.embed_documents(TEXTS[:3])) > 0.99999


def test_only_qwen_folders_with_default_rope(spec, e5_spec, tmp_path):
    assert native_config(spec) is not None
    assert native_config(e5_spec) is None  # a BERT folder
    for style in ("rope_parameters", "rope_scaling"):
        folder = tmp_path / style
        shutil.copytree(spec.source, folder)
        config = json.loads((folder / "config.json").read_text())
        config.pop("rope_parameters", None)
        config[style] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
        (folder / "config.json").write_text(json.dumps(config))
        assert native_config(dataclasses.replace(spec, source=str(folder))) is None, style


def test_a_question_on_a_qwen3_model_does_not_import_transformers(qwen_folder):
    code = ("import sys\n"
            "from codesearch.embedders.factory import make_embedder\n"
            "from codesearch.embedders.models import spec_from_folder\n"
            "from codesearch.settings import Settings\n"
            f"emb = make_embedder(spec_from_folder(__import__('pathlib').Path({str(qwen_folder)!r}), 't'),"
            " Settings(device='cpu'), 'query')\n"
            "v = emb.embed_queries(['read a csv file'])\n"
            "assert v.shape == (1, 64) and abs(float((v * v).sum()) - 1) < 1e-4\n"
            "assert 'transformers' not in sys.modules, 'transformers imported'\n"
            "print(emb.path)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "packed"


def test_vectors_are_unit_length(spec):
    v = PackedGpuEmbedder(NativeDecoderModel(spec, "cpu")).embed_documents(TEXTS)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("style", ["transformers5", "legacy"])
def test_rope_theta_in_either_config_spelling(spec, tmp_path, style):
    """transformers 5 writes rope_parameters.rope_theta, the published checkpoints a top-level
    rope_theta: a theta other than the default must be read from both (a wrong theta shows only
    as slightly worse vectors, so compare with transformers loading the same folder)."""
    folder = tmp_path / style
    shutil.copytree(spec.source, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("rope_parameters", None)
    config.pop("rope_theta", None)
    if style == "transformers5":
        config["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0}
    else:
        config["rope_theta"] = 1000000.0
        config["rope_scaling"] = None
    (folder / "config.json").write_text(json.dumps(config))
    theta = dataclasses.replace(spec, source=str(folder))
    ref = TransformersEmbedder(HFModel(theta, "cpu", dtype="fp32")).embed_documents(TEXTS[:4])
    ours = PackedGpuEmbedder(NativeDecoderModel(theta, "cpu", dtype="fp32")).embed_documents(TEXTS[:4])
    assert cos_min(ours, ref) > 0.99999
    default = PackedGpuEmbedder(NativeDecoderModel(spec, "cpu", dtype="fp32")).embed_documents(TEXTS[:4])
    assert cos_min(default, ref) < 0.99999  # the test can tell a wrong theta


def test_question_length_is_counted_by_either_loader(spec, reference):
    """Long questions are cut to what the model reads (question.shorten_question), which asks the
    embedder how many tokens a question takes: the native loader's `tokenizers.Tokenizer` is not
    callable as a transformers tokenizer is, and a question on a Qwen3 index failed with a
    TypeError before any search."""
    native = PackedGpuEmbedder(NativeDecoderModel(spec, "cpu"))
    for text in ("read a csv file", "读取配置文件并排序", "parse " * 300):
        assert native.query_tokens(text) == reference.query_tokens(text)
    assert native.query_tokens("parse " * 300) > 256  # long enough to be cut (QUESTION_MAX_TOKENS)


def test_a_long_question_on_a_qwen3_index_is_answered_and_shortened(qwen_folder, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text('def add(a, b):\n    """Add two numbers."""\n    return a + b\n')
    env = {"CODESEARCH_DAEMON": "0"}
    cli = [sys.executable, "-m", "codesearch.cli"]
    import os

    done = subprocess.run([*cli, "index", str(repo), "--model", str(qwen_folder), "--device", "cpu", "-q"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cli, "query", "--repo", str(repo), "--device", "cpu", "--json", "add numbers " * 200],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "add" and "shortened" in done.stderr
