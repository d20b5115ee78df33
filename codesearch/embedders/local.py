"""A transformers model on one device, on the fastest path that device allows.

The local branch of the factory's choice (factory.py), kept in a module of its own because
the multi-GPU workers (multigpu.py) load their copy the same way:

- CUDA and a Qwen3-family model: the packed GPU backend (gpu.py), compiled when the job pays;
- CPU with native bf16 (or `cpu_path` bf16/int8): the CPU backend (cpu.py);
- anything else (MPS, other models, `fast` off): the plain transformers loop.
A fast path that cannot start falls back to the plain loop with a note, unless it was asked
for by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .hf_model import HFModel, TokenEmbedder
from .spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class LocalOptions:
    """How a local model runs (from the settings; picklable, for worker processes)."""

    token_budget: int | None = None
    dtype: str | None = None
    threads: int | None = None
    fast: bool = True
    cpu_path: str = "auto"  # auto | bf16 | int8 | fp32
    compile: str = "auto"  # auto | always | never
    attention: str = "triton"  # triton | flash
    cuda_graphs: bool = True


def load_local(spec: ModelSpec, device: str, options: LocalOptions | None = None) -> TokenEmbedder:
    from .transformers_loop import TransformersEmbedder

    opts = options or LocalOptions()
    model = HFModel(spec, device=device, dtype=opts.dtype, threads=opts.threads)
    note = "fast paths turned off"
    if opts.fast:
        try:
            backend, note = _fast_backend(model, opts)
        except Exception as error:  # noqa: BLE001 - a fast path must never stop indexing
            if opts.cpu_path not in ("auto", "fp32") and model.device == "cpu":
                raise ValueError(f"CPU path {opts.cpu_path!r} is not available here: {error}") from None
            backend, note = None, f"fast path unavailable ({type(error).__name__}: {error})"
        if backend is not None:
            return backend
    log.info("plain embedding loop: %s", note)
    plain = TransformersEmbedder(model, opts.token_budget)
    plain.note = note
    return plain


def _fast_backend(model: HFModel, opts: LocalOptions):
    """(backend, "") or (None, why not)."""
    if model.device.startswith("cuda"):
        from .gpu import PackedGpuEmbedder, packed_unsupported

        why = packed_unsupported(model)
        if why:
            return None, why
        return PackedGpuEmbedder(model, opts.token_budget, attention_choice=opts.attention,
                                 compile=opts.compile, cuda_graphs=opts.cuda_graphs), ""
    if model.device == "cpu":
        from .cpu import CpuEmbedder, choose_cpu_path
        from .device import native_bf16

        kind = choose_cpu_path(opts.cpu_path, model.dtype)
        if kind == "fp32":
            return None, "fp32 plain loop" + ("" if native_bf16() else " (this CPU has no native bf16)")
        return CpuEmbedder(model, kind, opts.token_budget), ""
    return None, f"no fast path for {model.device}"
