"""The Qwen3-Embedding code path on a tiny random Qwen3 with the real Qwen3 tokenizer.

Checks what the model card asks for: left padding, `<|endoftext|>` closing every input,
last-token pooling, the `Instruct: ...\\nQuery:` prefix on queries only, Matryoshka
truncation before normalisation, and vectors equal to a plain transformers forward.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen_tiny import ENDOFTEXT_ID  # noqa: E402

from codesearch.embedders.batching import group_by_budget  # noqa: E402
from codesearch.embedders.local import load_local  # noqa: E402
from codesearch.embedders.models import QWEN_CODE_TASK, spec_from_folder  # noqa: E402

TEXTS = ["def read_csv(path):\n    return list(csv.reader(open(path)))",
         "读取CSV并排序",
         "x",
         "class Backoff:\n    def call(self, fn):\n        for i in range(5):\n            try: return fn()\n"
         "            except Exception: time.sleep(2 ** i)"]


@pytest.fixture(scope="module")
def qwen(qwen_folder):
    return load_local(spec_from_folder(qwen_folder, "tiny-qwen3"), "cpu")


def test_spec_follows_model_card(qwen_folder):
    spec = spec_from_folder(qwen_folder, "tiny-qwen3")
    assert spec.pooling == "last" and spec.padding_side == "left" and spec.append_eos
    assert spec.query_prompt == f"Instruct: {QWEN_CODE_TASK}\nQuery:"  # no space after Query:
    assert spec.document_prompt == ""


def test_every_input_ends_with_endoftext_once(qwen):
    ids = qwen.tokenize(TEXTS + ["already closed<|endoftext|>"])
    assert all(seq[-1] == ENDOFTEXT_ID for seq in ids)
    assert ids[-1].count(ENDOFTEXT_ID) == 1
    assert ids[0][:-1] == qwen.model.tokenizer(TEXTS[0])["input_ids"]


def test_left_padding_puts_real_tokens_last(qwen):
    ids, mask = qwen.model.pad(qwen.tokenize(["a", "a much longer input with many more tokens"]))
    assert mask[0, -1] == 1 and mask[0, 0] == 0  # short row padded on the left
    assert ids[0, -1].item() == ENDOFTEXT_ID and ids[1, -1].item() == ENDOFTEXT_ID


def test_vectors_do_not_depend_on_batch_companions(qwen):
    together = qwen.embed_documents(TEXTS)
    alone = np.stack([qwen.embed_documents([t])[0] for t in TEXTS])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert (together * alone).sum(axis=1).min() > 0.9999


def test_matches_plain_transformers_recipe(qwen, qwen_folder):
    """The model card's own recipe: tokenizer pads left, last hidden state of the last position."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_folder, padding_side="left")
    model = AutoModel.from_pretrained(qwen_folder).eval()
    prompt = f"Instruct: {QWEN_CODE_TASK}\nQuery:"
    inputs = [prompt + TEXTS[1] + "<|endoftext|>", prompt + TEXTS[0] + "<|endoftext|>"]
    batch = tok(inputs, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**batch).last_hidden_state[:, -1]
    ref = torch.nn.functional.normalize(ref, p=2, dim=1).numpy()
    ours = qwen.embed_queries([TEXTS[1], TEXTS[0]])
    assert (ours * ref).sum(axis=1).min() > 0.9999


def test_instruction_only_on_queries(qwen):
    q = qwen.embed_queries([TEXTS[0]])[0]
    d = qwen.embed_documents([TEXTS[0]])[0]
    manual = qwen.embed_documents([f"Instruct: {QWEN_CODE_TASK}\nQuery:" + TEXTS[0]])[0]
    assert float(q @ manual) > 0.9999
    assert float(q @ d) < 0.9999


def test_matryoshka_truncates_then_normalises(qwen_folder):
    spec = spec_from_folder(qwen_folder, "tiny-qwen3")
    full = load_local(spec, "cpu").embed_documents(TEXTS)
    spec.dims = 32
    short = load_local(spec, "cpu").embed_documents(TEXTS)
    expect = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    assert short.shape == (len(TEXTS), 32)
    assert np.allclose(short, expect, atol=1e-5)


def test_batches_respect_token_budget():
    lengths = [5, 100, 7, 100, 50, 3, 60]
    batches = group_by_budget(lengths, 200, padded=True)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 200 or len(b) == 1
    # sorted by length: each batch holds neighbours in length order
    assert batches[0] == [1, 3]
