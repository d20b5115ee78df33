"""Every fast embedding path gives the reference path's vectors (on CPU).

- the packed (padding-free) decoder forward, with the per-sequence reference attention in place
  of the CUDA flash kernel: same layer arithmetic, RoPE restarting per sequence, last-token
  pooling at each sequence's end, Matryoshka truncation, any batch split;
- the arithmetic handed to torch.compile equals the eager arithmetic;
- the CPU paths (bf16, int8) against the fp32 plain loop;
- the multi-device pool: splitting, merging, and a real run over two CPU "devices".
The GPU-only pieces (flash varlen kernel, compilation, CUDA graphs) are checked against the plain
transformers forward by bench/embed_throughput.py on the GPU (min cosine in docs/bench/*.json).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from codesearch.embedders.batching import group_by_budget  # noqa: E402
from codesearch.embedders.gpu import PackedGpuEmbedder, packed_unsupported  # noqa: E402
from codesearch.embedders.gpu_attention import reference_varlen  # noqa: E402
from codesearch.embedders.hf_model import HFModel  # noqa: E402
from codesearch.embedders.local import LocalOptions, load_local  # noqa: E402
from codesearch.embedders.models import spec_from_folder  # noqa: E402
from codesearch.embedders.multigpu import MultiGpuEmbedder, merge_results, split_work  # noqa: E402
from codesearch.embedders.transformers_loop import TransformersEmbedder  # noqa: E402

TEXTS = ["def read_csv(path):\n    return list(csv.reader(open(path)))",
         "读取CSV并排序",
         "x",
         "class Backoff:\n    def call(self, fn):\n        for i in range(5):\n            try: return fn()\n"
         "            except Exception: time.sleep(2 ** i)",
         "SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC;" * 3,
         "fn main() { println!(\"hello\"); }"]


@pytest.fixture(scope="module")
def plain(qwen_folder):
    return TransformersEmbedder(HFModel(spec_from_folder(qwen_folder, "tiny-qwen3"), "cpu"))


@pytest.fixture(scope="module")
def token_ids(plain):
    return plain.tokenize(TEXTS)


def cos_min(a, b):
    return float((a * b).sum(axis=1).min())


def packed_runner(folder, dims=None, budget=4096):
    spec = spec_from_folder(folder, "tiny-qwen3")
    spec.dims = dims
    model = HFModel(spec, "cpu")
    return model, PackedGpuEmbedder(model, budget, attention=reference_varlen)


@pytest.mark.parametrize("budget", [4096, 40, 1])
def test_packed_matches_plain(qwen_folder, plain, token_ids, budget):
    ref = plain.embed_token_ids(token_ids)
    _, runner = packed_runner(qwen_folder, budget=budget)
    ours = runner.embed_token_ids(token_ids)
    assert ours.shape == ref.shape
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cos_min(ours, ref) > 0.9999


def test_packed_streams_every_input_once_with_progress(qwen_folder, token_ids, plain):
    _, runner = packed_runner(qwen_folder, budget=50)
    seen, calls = [], []
    out = np.zeros((len(token_ids), plain.dim), dtype=np.float32)
    for sel, vecs in runner.stream_token_ids(token_ids, progress=lambda n, t: calls.append((n, t))):
        seen.extend(sel)
        out[sel] = vecs
    assert sorted(seen) == list(range(len(token_ids)))
    assert sum(n for n, _ in calls) == len(token_ids)
    assert sum(t for _, t in calls) == sum(len(t) for t in token_ids)
    assert cos_min(out, plain.embed_token_ids(token_ids)) > 0.9999


def test_packed_matryoshka(qwen_folder):
    spec = spec_from_folder(qwen_folder, "tiny-qwen3")
    spec.dims = 32
    ref = TransformersEmbedder(HFModel(spec, "cpu")).embed_documents(TEXTS)
    _, runner = packed_runner(qwen_folder, dims=32)
    ours = runner.embed_token_ids(runner.tokenize(TEXTS))
    assert ours.shape == (len(TEXTS), 32)
    assert cos_min(ours, ref) > 0.9999


def test_positions_restart_per_sequence(qwen_folder, plain):
    """The same text packed after a long one must embed exactly as alone."""
    ids = plain.tokenize([TEXTS[3], TEXTS[0]])
    _, runner = packed_runner(qwen_folder)
    together = runner.embed_token_ids(ids)
    alone = runner.embed_token_ids([ids[1]])
    assert float(together[1] @ alone[0]) > 0.99999


def test_last_layer_on_end_rows_only_changes_nothing(qwen_folder, token_ids):
    """The final layer run on the end rows alone gives the full layer's vectors, for batches of
    many sequences and of one (where the pruning is skipped)."""
    _, runner = packed_runner(qwen_folder, budget=4096)
    pruned = runner.embed_token_ids(token_ids)
    runner.packed.prune_last = False
    full = runner.embed_token_ids(token_ids)
    assert cos_min(pruned, full) > 0.99999
    runner.packed.prune_last = True
    runner.token_budget = 1
    assert cos_min(runner.embed_token_ids(token_ids), full) > 0.99999


def test_reference_attention_aligns_causal_mask_to_the_end():
    """Fewer queries than keys: the queries are the sequence's last rows (flash's convention),
    so the pruned last layer's one query per sequence sees every key."""
    import torch

    torch.manual_seed(0)
    q, k, v = (torch.randn(7, 4, 8) for _ in range(3))
    k, v = k[:, :2], v[:, :2]
    cu = torch.tensor([0, 3, 7], dtype=torch.int32)
    full = reference_varlen(q, k, v, cu, cu, 4, 4, True, 0.3)
    ends = torch.tensor([2, 6])
    one = torch.tensor([0, 1, 2], dtype=torch.int32)
    for causal in (True, False):
        assert torch.allclose(reference_varlen(q[ends], k, v, one, cu, 1, 4, causal, 0.3), full[ends], atol=1e-6)


def test_triton_attention_kernel_in_interpreter(qwen_folder):
    """The Triton varlen causal attention kernel, run by Triton's CPU interpreter, against the
    per-sequence reference (odd lengths exercise the edge masks, strided q/k/v views as in the
    model, grouped key/value heads) and inside the packed forward against the plain forward.
    In a fresh process: Triton decides at import time whether it interprets."""
    pytest.importorskip("triton")
    import os
    import subprocess

    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "triton_interpreter_check.py"),
                           str(qwen_folder)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kernel ok" in done.stdout and "forward ok" in done.stdout


def test_compiled_path_switches_attention(qwen_folder):
    """Compiling brings in the tuned attention (its autotuning belongs to the warm-up); the
    eager path keeps the attention that needs no tuning."""
    _, runner = packed_runner(qwen_folder)
    packed = runner.packed
    eager = packed.attend

    def tuned(*args):
        return eager(*args)
    packed._attend_compiled = tuned
    packed.compile()
    assert packed.attend is tuned and packed.compiled
    packed.uncompile()
    assert packed.attend is eager and not packed.compiled


def test_compiled_arithmetic_equals_eager(qwen_folder, plain, token_ids):
    """What goes to torch.compile (transformers' RMSNorm) gives the eager path's vectors."""
    emb, runner = packed_runner(qwen_folder)
    eager = runner.embed_token_ids(token_ids)
    packed = runner.packed
    packed.pre_attn, packed.post_attn, packed.final = packed._to_compile
    assert cos_min(runner.embed_token_ids(token_ids), eager) > 0.99999
    packed.uncompile()


def test_embedder_refuses_packed_without_cuda_unless_auto(qwen_folder):
    spec = spec_from_folder(qwen_folder, "tiny-qwen3")
    emb = load_local(spec, "cpu", LocalOptions(fast=False))
    assert emb.path == "plain"
    assert "CUDA" in packed_unsupported(emb.model)  # the flash kernel needs CUDA
    with pytest.raises(ValueError, match="CUDA"):
        PackedGpuEmbedder(emb.model)


def test_pack_batches_respects_budget():
    lengths = [5, 100, 7, 100, 50, 3, 60]
    batches = group_by_budget(lengths, 150, padded=False)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert sum(lengths[i] for i in b) <= 150 or len(b) == 1


@pytest.mark.parametrize("path,floor", [("bf16", 0.999), ("int8", 0.95)])
def test_cpu_paths_match_fp32(qwen_folder, plain, token_ids, path, floor):
    import torch

    if path == "int8" and "fbgemm" not in torch.backends.quantized.supported_engines \
            and "x86" not in torch.backends.quantized.supported_engines:
        pytest.skip("no int8 engine in this torch")
    emb = load_local(spec_from_folder(qwen_folder, "tiny-qwen3"), "cpu", LocalOptions(cpu_path=path))
    assert emb.path == f"cpu-{path}"
    assert cos_min(emb.embed_token_ids(token_ids), plain.embed_token_ids(token_ids)) > floor


def test_cpu_estimate_is_positive(plain):
    from codesearch.embedders.cpu import estimate_cpu_rate

    rate = estimate_cpu_rate(plain.model.model)
    assert rate > 0
    assert plain.estimate_seconds(10_000) == pytest.approx(10_000 / rate, rel=0.5)


# -- several devices --------------------------------------------------------------------------

def test_split_work_covers_every_input_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, 1000).tolist()
    tasks = split_work(lengths, task_tokens=4000)
    flat = [i for t in tasks for i in t]
    assert sorted(flat) == list(range(1000))
    assert all(sum(lengths[i] for i in t) <= 4000 or len(t) == 1 for t in tasks)
    assert split_work([10, 9000, 20], 100) == [[1], [2, 0]]


def test_merge_results_in_any_order():
    vecs = np.arange(12, dtype=np.float32).reshape(6, 2)
    pieces = [([4, 5], vecs[[4, 5]]), ([0], vecs[[0]]), ([3, 1, 2], vecs[[3, 1, 2]])]
    assert np.array_equal(merge_results(6, 2, pieces), vecs)
    with pytest.raises(ValueError, match="never"):
        merge_results(6, 2, pieces[:2])
    with pytest.raises(ValueError, match="twice"):
        merge_results(6, 2, pieces + [([0], vecs[[0]])])


def test_pool_over_two_cpu_workers_matches_one(qwen_folder, plain, token_ids):
    """One local device and one spawned worker process share the job; same vectors, same order."""
    spec = spec_from_folder(qwen_folder, "tiny-qwen3")
    many = (token_ids * 8)[:40]
    ref = plain.embed_token_ids(many)
    notes = []
    pool = MultiGpuEmbedder(spec, ["cpu", "cpu"], min_tokens=0, task_tokens=60, notice=notes.append)
    try:
        done = []
        out = pool.embed_token_ids(many, progress=lambda n, t: done.append(n))
        assert sum(done) == len(many)
        assert cos_min(out, ref) > 0.999
        assert pool.embed_queries([TEXTS[0]]).shape == (1, plain.dim)
    finally:
        pool.close()
