"""A transformers model on one device, on the fastest path that device allows.

The local branch of the factory's choice (factory.py), kept in a module of its own because
the multi-GPU workers (multigpu.py) load their copy the same way:

- a Qwen3-family checkpoint on CUDA (and for questions on the CPU too): the packed backend
  (gpu.py) over weights read straight from the checkpoint (qwen3_native.py: no transformers,
  seconds less start-up), compiled when the job pays;
- any other Qwen3-family model on CUDA: the packed backend over the transformers model;
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


def load_local(spec: ModelSpec, device: str, options: LocalOptions | None = None,
               purpose: str = "documents") -> TokenEmbedder:
    from .transformers_loop import TransformersEmbedder

    from .cpu import choose_cpu_path
    from .device import pick_device

    opts = options or LocalOptions()
    if opts.fast:
        native = _native_backend(spec, device, opts, purpose)
        if native is not None:
            return native
    device = pick_device(device)
    cpu_kind = choose_cpu_path(opts.cpu_path, opts.dtype) if device == "cpu" and opts.fast else "fp32"
    dtype = "bf16" if cpu_kind == "bf16" and opts.dtype is None else opts.dtype
    model = HFModel(spec, device=device, dtype=dtype, threads=opts.threads)
    note = "fast paths turned off"
    if opts.fast:
        try:
            backend, note = _fast_backend(model, opts, cpu_kind)
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


def _native_backend(spec: ModelSpec, device: str, opts: LocalOptions, purpose: str):
    """The packed backend over the checkpoint's own weights, where it applies (else None)."""
    from .qwen3_native import NativeDecoderModel, native_config

    if native_config(spec) is None:
        return None
    from ..phases import phase
    from .device import pick_device
    from .gpu import PackedGpuEmbedder
    from .gpu_attention import varlen_supported

    with phase("import torch"):
        import torch  # noqa: F401 - timed here: the largest part of a cold start
    with phase("device start"):
        resolved = pick_device(device)
        if resolved.startswith("cuda") and not varlen_supported(resolved)[0]:
            return None
    if resolved == "cpu" and purpose != "query":
        return None  # CPU documents: the measured bf16/fp32 padded loops (cpu.py)
    if not (resolved == "cpu" or resolved.startswith("cuda")):
        return None
    try:
        model = NativeDecoderModel(spec, resolved, opts.dtype, opts.threads)
    except (ValueError, OSError, KeyError) as error:
        log.info("native checkpoint loader unavailable (%s); loading through transformers", error)
        return None
    return PackedGpuEmbedder(model, opts.token_budget, attention_choice=opts.attention, compile=opts.compile,
                             cuda_graphs=opts.cuda_graphs)


def _fast_backend(model: HFModel, opts: LocalOptions, cpu_kind: str):
    """(backend, "") or (None, why not)."""
    if model.device.startswith("cuda"):
        from .gpu import PackedGpuEmbedder, packed_unsupported

        why = packed_unsupported(model)
        if why:
            return None, why
        return PackedGpuEmbedder(model, opts.token_budget, attention_choice=opts.attention,
                                 compile=opts.compile, cuda_graphs=opts.cuda_graphs), ""
    if model.device == "cpu":
        from .cpu import CpuEmbedder
        from .device import native_bf16

        if cpu_kind == "fp32":
            return None, "fp32 plain loop" + ("" if native_bf16() else " (this CPU has no native bf16)")
        return CpuEmbedder(model, cpu_kind, opts.token_budget), ""
    return None, f"no fast path for {model.device}"
