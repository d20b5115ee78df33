"""The CPU backend: a converted copy of the model in padded, length-sorted batches, and an
honest time estimate before a long CPU job starts.

What it can run instead of the plain fp32 loop (docs/embedding.md has the side-by-side
measurements on this project's 2-core machine):

- "bf16": weights and activations in bfloat16, where the CPU multiplies bf16 natively
  (AVX512-BF16 or AMX: recent AMD EPYC/Ryzen, Intel Sapphire Rapids and later). About 1.4x
  the fp32 loop on one core, cosine to fp32 >= 0.9999. Chosen automatically there.
- "int8": torch's dynamic int8 quantisation of the Linear layers, except the MLP output
  projections, whose inputs have outliers that int8 handles badly. Faster on CPUs without
  bf16 but less exact (cosine to fp32 about 0.993 on code); only when asked for.
- "fp32": the plain loop (transformers_loop.py), chosen by the factory where bf16 is not native.
"""

from __future__ import annotations

import time
import warnings

from .base import Batches, Progress
from .batching import group_by_budget
from .device import native_bf16
from .hf_model import HFModel, TokenEmbedder

CPU_PATHS = ("bf16", "int8", "fp32")
# fraction of the measured matrix-multiply rate a whole model reaches (measured: e5-small fp32)
MODEL_EFFICIENCY = 0.55
_rate_cache: dict[tuple, float] = {}


def _skip_for_int8(name: str) -> bool:
    """MLP output projections (BERT `output.dense` outside attention, Qwen `down_proj`)."""
    return name.endswith("down_proj") or (name.endswith("output.dense") and "attention" not in name)


def choose_cpu_path(setting: str, requested_dtype: str | None = None) -> str:
    """The CPU path for a `cpu_path` setting ("auto" or one of CPU_PATHS), decided before the
    model is loaded, so that a bf16 path loads bf16 weights (no fp32 copy on the way)."""
    if setting in CPU_PATHS:
        return setting
    if requested_dtype not in (None, "fp32"):
        return "fp32"  # the model is loaded in another precision on purpose: the plain loop keeps it
    return "bf16" if native_bf16() else "fp32"


class CpuEmbedder(TokenEmbedder):
    def __init__(self, model: HFModel, kind: str, token_budget: int | None = None):
        import torch

        super().__init__(model)
        if kind not in ("bf16", "int8"):
            raise ValueError(f"unknown CPU path {kind!r}")
        self.cpu_kind = kind
        self.token_budget = token_budget or 4096
        net = model.model
        if kind == "bf16":
            net = net.to(torch.bfloat16)
        else:
            from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

            names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
            qspec = {n: default_dynamic_qconfig for n in names if not _skip_for_int8(n)}
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated, still works
                warnings.simplefilter("ignore")
                net = quantize_dynamic(net, qspec, dtype=torch.qint8)
        self.net = net.eval()

    @property
    def path(self) -> str:
        return f"cpu-{self.cpu_kind}"

    def estimate_seconds(self, total_tokens: int) -> float:
        return total_tokens / estimate_cpu_rate(self.model.model, self.cpu_kind)

    def plan(self, total_tokens: int) -> str:
        import torch

        return f"{self.cpu_kind} on {torch.get_num_threads()} CPU thread(s), sorted batches"

    def stream_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> Batches:
        import torch

        lengths = [len(t) for t in token_ids]
        for batch in group_by_budget(lengths, self.token_budget, padded=True, max_items=256):
            ids, mask = self.model.pad([token_ids[i] for i in batch])
            with torch.inference_mode():
                hidden = self.net(input_ids=ids, attention_mask=mask).last_hidden_state
                vectors = self.model.pool(hidden, mask).numpy()
            if progress:
                progress(len(batch), sum(lengths[i] for i in batch))
            yield batch, vectors


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


def estimate_cpu_rate(net, kind: str = "fp32") -> float:
    """Tokens/s this model should reach here: 2 x (non-embedding parameters) FLOP per token,
    at a measured matrix-multiply rate times the fraction a whole model reaches."""
    import torch

    params = sum(p.numel() for n, p in net.named_parameters() if "embed" not in n)
    hidden = int(getattr(net.config, "hidden_size", 1024))
    dtype = torch.bfloat16 if kind == "bf16" else torch.float32
    rate = _matmul_rate(dtype, hidden, torch.get_num_threads())
    speedup = 1.6 if kind == "int8" else 1.0
    return max(1.0, MODEL_EFFICIENCY * speedup * rate / (2 * max(1, params)))
