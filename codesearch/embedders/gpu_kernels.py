"""A hand-written Triton kernel for the packed GPU path (codesearch/embedders/gpu_packed.py): causal
variable-length attention over a packed token stream, with grouped key/value heads.

Why: a kernel-time profile of the compiled packed forward on an H100 (bench/gpu_profile.py,
docs/embedding.md) put attention at ~19% of the time, although it is ~3% of the FLOPs.
torch's varlen kernel is flash-attention 2, built for Ampere: on a batch of 512-token
sequences it ran at ~125 TFLOP/s, and on our short code pieces (median ~120 tokens) it is
bound by per-block overhead. Triton compiles `tl.dot` to Hopper's wgmma instructions, and
each program here handles one block of query rows of one head of one sequence, so a short
sequence costs one or two small programs.

The algorithm is flash-attention's online softmax (Dao et al., 2022): scores of a block of
queries against blocks of keys, a running maximum and sum per row, the output rescaled as
the maximum grows; exp2 with log2(e) folded into the scale. Only blocks at or left of the
diagonal are visited (causal). Written for this project.

Tested on the CPU through Triton's interpreter (tests/triton_interpreter_check.py) against
the per-sequence reference; bench/gpu_profile.py times it against flash-attention on the GPU,
and the packed path uses it by default (the `attention` setting, CODESEARCH_ATTENTION=flash
turns it off).
"""

from __future__ import annotations

import functools
import inspect
import os


def available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: no Triton here
        return False
    return True


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=2)
def _kernel(interpreted: bool):
    """`interpreted` is part of the cache key: Triton decides at decoration time whether a
    function is compiled or run by its interpreter."""
    import triton
    import triton.language as tl

    @triton.jit
    def varlen_causal(q_ptr, k_ptr, v_ptr, o_ptr, cu_ptr, qk_scale, MAX_BUCKET,
                      sq_t, sq_h, sk_t, sk_h, sv_t, sv_h, so_t, so_h,
                      GROUP: tl.constexpr, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
        block = tl.program_id(0)
        seq = tl.program_id(1)
        head = tl.program_id(2)
        start = tl.load(cu_ptr + seq)
        length = tl.load(cu_ptr + seq + 1) - start
        m0 = block * BM
        if m0 < length:
            kv_head = head // GROUP
            rows = m0 + tl.arange(0, BM)
            cols = tl.arange(0, D)
            row_ok = rows < length
            q = tl.load(q_ptr + (start + rows)[:, None] * sq_t + head * sq_h + cols[None, :],
                        mask=row_ok[:, None], other=0.0)
            m_i = tl.full((BM,), float("-inf"), dtype=tl.float32)
            l_i = tl.zeros((BM,), dtype=tl.float32)
            acc = tl.zeros((BM, D), dtype=tl.float32)
            hi = tl.minimum(length, m0 + BM)  # causal: no key beyond the block's last row
            for n0 in range(0, hi, BN):
                keys = n0 + tl.arange(0, BN)
                key_ok = keys < length
                kt = tl.load(k_ptr + (start + keys)[None, :] * sk_t + kv_head * sk_h + cols[:, None],
                             mask=key_ok[None, :], other=0.0)
                s = tl.dot(q, kt) * qk_scale
                s = tl.where((rows[:, None] >= keys[None, :]) & key_ok[None, :], s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, axis=1))
                p = tl.exp2(s - m_new[:, None])
                alpha = tl.exp2(m_i - m_new)
                l_i = l_i * alpha + tl.sum(p, axis=1)
                vb = tl.load(v_ptr + (start + keys)[:, None] * sv_t + kv_head * sv_h + cols[None, :],
                             mask=key_ok[:, None], other=0.0)
                acc = tl.dot(p.to(vb.dtype), vb, acc * alpha[:, None])
                m_i = m_new
            out = acc / l_i[:, None]
            tl.store(o_ptr + (start + rows)[:, None] * so_t + head * so_h + cols[None, :],
                     out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])

    if interpreted:
        return varlen_causal
    configs = [triton.Config({"BM": bm, "BN": bn}, num_warps=w, num_stages=st)
               for bm, bn, w, st in ((128, 64, 8, 2), (128, 64, 4, 2), (64, 64, 4, 2), (64, 32, 4, 2),
                                     (128, 128, 8, 2), (64, 64, 4, 3), (128, 32, 4, 2))]
    # tuned again per size class of the batch's longest sequence (MAX_BUCKET, otherwise unused);
    # results kept in Triton's cache folder where this Triton can (so tuning is paid once)
    extra = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}
    return triton.autotune(configs=configs, key=["GROUP", "D", "MAX_BUCKET"], **extra)(varlen_causal)


TUNE_LENGTHS = (32, 64, 128, 256, 512)


def tune(hq: int, hk: int, d: int, dtype, device, tokens: int = 65536) -> None:
    """Autotune the kernel now, for every size class of sequence up to 512 tokens (part of the
    packed path's warm-up rather than of the first batches). The batches look like packed
    ones: sorted longest first, lengths between half the class and the class."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for top in TUNE_LENGTHS:
        lengths, total = [], 0
        while total < tokens:
            n = int(torch.randint(top // 2 + 1, top + 1, (1,), generator=gen))
            lengths.append(n)
            total += n
        lengths.sort(reverse=True)
        cu = torch.tensor([0] + lengths).cumsum(0).to(device=device, dtype=torch.int32)
        q = torch.randn(total, hq, d, device=device, dtype=dtype)
        k = torch.randn(total, hk, d, device=device, dtype=dtype)
        varlen_causal_attention(q, k, k, cu, top, d ** -0.5)


def varlen_causal_attention(q, k, v, cu, max_len: int, scale: float):
    """Causal self-attention of each sequence of a packed stream: q [T, Hq, D], k and v
    [T, Hk, D] (Hq a multiple of Hk; rows may be strided, the last dimension contiguous),
    cu [N+1] int32 offsets. Returns [T, Hq, D]."""
    import torch

    t, hq, d = q.shape
    hk = k.shape[1]
    out = torch.empty((t, hq, d), dtype=q.dtype, device=q.device)
    n = cu.shape[0] - 1
    if t == 0 or n == 0:
        return out
    assert q.stride(2) == 1 and k.stride(2) == 1 and v.stride(2) == 1 and hq % hk == 0
    qk_scale = float(scale) * 1.4426950408889634  # log2(e): the kernel uses exp2
    bucket = 1 << max(5, (max(1, max_len) - 1).bit_length())
    args = (q, k, v, out, cu, qk_scale, bucket, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            v.stride(0), v.stride(1), out.stride(0), out.stride(1))
    if _interpreted():
        bm = 16
        _kernel(True)[((max_len + bm - 1) // bm, n, hq)](*args, GROUP=hq // hk, D=d, BM=bm, BN=16)
    else:
        def grid(meta):
            return ((max_len + meta["BM"] - 1) // meta["BM"], n, hq)
        _kernel(False)[grid](*args, GROUP=hq // hk, D=d)
    return out
