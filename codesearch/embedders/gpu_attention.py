"""Variable-length attention over a packed token stream, for the packed GPU path (gpu_packed.py).

Three implementations with one contract, (q, k, v, cu_q, cu_k, max_q, max_k, causal, scale)
-> out over packed [T, H, D] tensors:
- torch's flash-attention 2 varlen kernel (`torch.nn.attention.varlen`, or the aten op under it);
- our Triton kernel (gpu_kernels.py) for the causal self-attention of the compiled path;
- a per-sequence SDPA reference, for the CPU tests.
"""

from __future__ import annotations

import inspect

ATTENTION_CHOICES = ("triton", "flash")


def flash_varlen():
    """A function (q, k, v, cu_q, cu_k, max_q, max_k, causal, scale) -> out over packed
    [T, H, D] tensors, or None when this torch has no varlen flash kernel. Queries and keys
    have their own offsets so that the last layer can attend from the end rows alone."""
    import torch

    # The aten op first: it is what torch.nn.attention.varlen calls, and importing that public
    # module pulls in torch._dynamo (3.4 s measured on this project's CPU machine, most of a
    # cold GPU query's start-up).
    op = getattr(torch.ops.aten, "_flash_attention_forward", None)
    if op is not None:
        # it takes fewer key/value heads than query heads (GQA)
        def attend(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
            return op(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False, scale=scale)[0]
        attend.kind = "aten._flash_attention_forward"
        return attend
    try:
        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
    except (ImportError, ValueError, TypeError):
        return None
    if "is_causal" not in params or "enable_gqa" not in params:
        return None

    def attend(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=causal, scale=scale, enable_gqa=True)
    attend.kind = "torch.nn.attention.varlen.varlen_attn"
    return attend


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
    """Same contract as the flash kernel, one sequence at a time through SDPA: for CPU tests.
    Causal masking is aligned to the end of each key sequence, as flash-attention does when a
    sequence has fewer queries than keys."""
    import torch
    import torch.nn.functional as F

    out = torch.empty_like(q)
    rep = q.shape[1] // k.shape[1]
    for (a, b), (c, e) in zip(zip(cu_q.tolist()[:-1], cu_q.tolist()[1:]),
                              zip(cu_k.tolist()[:-1], cu_k.tolist()[1:])):
        qs = q[a:b].transpose(0, 1)
        ks = k[c:e].transpose(0, 1).repeat_interleave(rep, dim=0)
        vs = v[c:e].transpose(0, 1).repeat_interleave(rep, dim=0)
        mask = None
        if causal:
            nq, nk = b - a, e - c
            mask = torch.ones(nq, nk, dtype=torch.bool).tril(diagonal=nk - nq)
        out[a:b] = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale).transpose(0, 1)
    return out


reference_varlen.kind = "reference (per-sequence SDPA)"



def triton_varlen(flash):
    """Causal self-attention through our Triton kernel (gpu_kernels.py); anything else (the
    pruned last layer's end-row queries) through `flash`."""
    from .gpu_kernels import tune, varlen_causal_attention

    def attend(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
        if causal and cu_q is cu_k:
            return varlen_causal_attention(q, k, v, cu_q, max_q, scale)
        return flash(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale)
    attend.kind = f"Triton varlen kernel (+ {flash.kind} for the last layer)"
    attend.tune = tune
    return attend


def compiled_attention(choice: str = "triton"):
    """The attention for the compiled packed path: the `attention` setting (triton|flash),
    falling back to flash where Triton is missing."""
    from . import gpu_kernels

    flash = flash_varlen()
    if flash is not None and choice == "triton" and gpu_kernels.available():
        return triton_varlen(flash)
    return flash


def varlen_supported(device: str) -> tuple[bool, str]:
    """Whether the packed path can run on `device`, and if not, why."""
    import torch

    if not device.startswith("cuda"):
        return False, "packed attention needs CUDA"
    if flash_varlen() is None:
        return False, f"torch {torch.__version__} has no varlen flash attention"
    major, _ = torch.cuda.get_device_capability(torch.device(device))
    if major < 8:
        return False, "flash attention needs an Ampere or newer GPU"
    return True, ""

