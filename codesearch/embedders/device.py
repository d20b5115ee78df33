"""Facts about the machine that decide how a model runs: the device, the cores, native bf16."""

from __future__ import annotations

import os


def pick_device(requested: str = "auto") -> str:
    """`auto`: CUDA if there is a GPU, else Apple's MPS, else the CPU (imports torch)."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def usable_cpus(cap: int | None = None) -> int:
    """Cores this process may run on (capped by the `threads` setting). More torch threads than
    cores is much slower."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, cap) if cap else n)


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
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
