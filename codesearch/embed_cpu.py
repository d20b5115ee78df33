"""Faster embedding on CPUs, and an honest time estimate before a long CPU job starts.

The plain loop runs the model in fp32. What this module can do instead (docs/embedding.md has
the side-by-side measurements on this project's 2-core machine):

- "bf16": weights and activations in bfloat16, where the CPU multiplies bf16 natively
  (AVX512-BF16 or AMX: recent AMD EPYC/Ryzen, Intel Sapphire Rapids and later). About 1.4x the
  fp32 loop's speed on one core, cosine to fp32 >= 0.9999. Chosen automatically there.
- "int8": torch's dynamic int8 quantisation of the Linear layers, except the MLP output
  projections, whose inputs have outliers that int8 handles badly. Faster on CPUs without
  bf16 but less exact (cosine to fp32 about 0.993 on code); only when asked for.
- "fp32": the plain loop (what $CODESEARCH_CPU_PATH=fp32 or --device cpu with fast off gives).

Threads: the process uses as many torch threads as cores it may run on (`usable_cpus`),
so $CODESEARCH_THREADS=N caps it on a shared machine.
"""

from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np

log = logging.getLogger(__name__)

CPU_PATHS = ("bf16", "int8", "fp32")
# fraction of the measured matrix-multiply rate a whole model reaches (measured: e5-small fp32)
MODEL_EFFICIENCY = 0.55
_rate_cache: dict[tuple, float] = {}


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _skip_for_int8(name: str) -> bool:
    """MLP output projections (BERT `output.dense` outside attention, Qwen `down_proj`)."""
    return name.endswith("down_proj") or (name.endswith("output.dense") and "attention" not in name)


class CPURunner:
    """Sorted, padded batches (as the plain loop) through a converted copy of the model."""

    def __init__(self, embedder, kind: str):
        import torch

        self.emb = embedder
        self.cpu_kind = kind
        model = embedder.model
        if kind == "bf16":
            model = model.to(torch.bfloat16)
        elif kind == "int8":
            from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

            names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
            spec = {n: default_dynamic_qconfig for n in names if not _skip_for_int8(n)}
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated, still works
                warnings.simplefilter("ignore")
                model = quantize_dynamic(model, spec, dtype=torch.qint8)
        self.model = model.eval()
        self.token_budget = embedder.token_budget

    @property
    def kind(self) -> str:
        return f"cpu-{self.cpu_kind}"

    def estimate_seconds(self, total_tokens: int) -> float:
        return total_tokens / estimate_cpu_rate(self.emb, self.cpu_kind)

    def plan(self, total_tokens: int) -> str:
        import torch

        return f"{self.cpu_kind} on {torch.get_num_threads()} CPU thread(s), sorted batches"

    def embed(self, token_ids: list[list[int]], progress=None) -> np.ndarray:
        import torch

        from .embed import plan_batches

        out = np.zeros((len(token_ids), self.emb.dim), dtype=np.float32)
        for batch in plan_batches([len(t) for t in token_ids], self.token_budget):
            ids, mask = self.emb.pad([token_ids[i] for i in batch])
            with torch.inference_mode():
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                out[batch] = self.emb.pool(hidden, mask).numpy()
            if progress:
                progress(len(batch), sum(len(token_ids[i]) for i in batch))
        return out


def make_cpu_runner(embedder, fast="auto"):
    """(runner, "") or (None, why). `fast`: "auto", True, or one of CPU_PATHS;
    $CODESEARCH_CPU_PATH overrides "auto"."""
    import torch

    choice = fast if fast in CPU_PATHS else os.environ.get("CODESEARCH_CPU_PATH", "auto")
    if choice == "auto":
        if embedder.dtype != torch.float32:
            return None, f"model loaded as {embedder.dtype}"
        choice = "bf16" if native_bf16() else "fp32"
    if choice == "fp32":
        return None, "fp32 plain loop" + ("" if native_bf16() else " (this CPU has no native bf16)")
    if choice not in CPU_PATHS:
        return None, f"unknown CPU path {choice!r}"
    return CPURunner(embedder, choice), ""


def _matmul_rate(dtype, hidden: int, threads: int) -> float:
    """FLOP/s of a model-shaped matrix product on this CPU right now (about 0.2 s to measure)."""
    import torch

    key = (str(dtype), hidden, threads)
    if key in _rate_cache:
        return _rate_cache[key]
    a = torch.randn(256, hidden).to(dtype)
    b = torch.randn(hidden, 4 * hidden).to(dtype)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.2:
        torch.mm(a, b)
        n += 1
    rate = n * 2 * 256 * hidden * 4 * hidden / (time.perf_counter() - t0)
    _rate_cache[key] = rate
    return rate


def estimate_cpu_rate(embedder, kind: str = "fp32") -> float:
    """Tokens/s this model should reach here: 2 x (non-embedding parameters) FLOP per token,
    at a measured matrix-multiply rate times the fraction a whole model reaches."""
    import torch

    model = embedder.model
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    hidden = int(getattr(model.config, "hidden_size", 1024))
    dtype = torch.bfloat16 if kind == "bf16" else torch.float32
    rate = _matmul_rate(dtype, hidden, torch.get_num_threads())
    speedup = 1.6 if kind == "int8" else 1.0
    return max(1.0, MODEL_EFFICIENCY * speedup * rate / (2 * max(1, params)))
