"""Padding-free ("packed") forward for Qwen3/Qwen2-style embedding models, made for CUDA.

The plain loop in `embed.py` pads every batch to its longest row and runs the stock
transformers modules. Here the batch is one 1-D stream of tokens, sequences laid end to
end, described by `cu_seqlens` (the offsets where each sequence starts):

- attention is variable-length causal attention over that stream (flash-attention's
  varlen kernel, reached through `torch.nn.attention.varlen` or the aten op under it),
  so no token attends across a sequence border and no padding is computed at all;
- RoPE positions restart at 0 for every sequence;
- last-token pooling reads the row at each sequence's end (mean pooling: a segment sum).

The layer arithmetic is written out in plain torch from the model's own weights (q/k/v and
gate/up projections merged into one matrix each; the modules' weights become views into
those, so nothing is stored twice) and mirrors transformers' Qwen3 code: RMSNorm in fp32,
cos/sin in fp32 rounded to the model dtype, the same rotate-half RoPE. Vectors match a
plain padded transformers forward (cosine >= 0.999 in bf16; tests/test_embed_fast.py checks
this on CPU with a reference attention, the bench on the GPU with flash-attention).

Two speeds of the same code:
- eager: no warm-up at all (torch's flash-attention kernel);
- compiled: the two pieces of a layer around attention (norm, projections, q/k norm, RoPE;
  then output projection, residual, norm, MLP) go through `torch.compile` with a dynamic
  token count and coordinate-descent tuning, so one compilation serves every batch and all
  28 layers; attention becomes our Triton kernel (gpu_kernels.py), autotuned in the same
  warm-up. Inductor's and Triton's caches live in codesearch's cache folder, so the cost is
  paid once per machine; `plan()` decides from the job's token count whether compiling pays.

With last-token pooling the last layer runs on the end rows only (see `forward`).

Batches are pipelined: token ids go through pinned memory with non-blocking copies, results
come back the same way, and the next batch is prepared on the CPU while the GPU works.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DECODER_TYPES = ("qwen3", "qwen2")
# Measured on one H100 (docs/embedding.md), Qwen3-Embedding-0.6B shape, real tokens/s.
# Used only to decide whether compiling pays off; scaled by the model's size.
REF_PARAMS = 0.44e9
REF_EAGER_RATE = 250_000.0  # packed, eager (flash attention): 257-267k measured
REF_COMPILED_RATE = 480_000.0  # packed, compiled, Triton attention: 479-505k measured
COLD_COMPILE_S = 35.0  # first compilation + attention tuning on a machine (32-36 s measured)
WARM_COMPILE_S = 8.0  # with inductor's and Triton's caches filled (7.4 s measured)
# Inductor settings for the compiled pieces. Coordinate-descent tuning of the generated
# elementwise/norm kernels measured +2-9% tokens/s on H100s (docs/embedding.md).
INDUCTOR_OPTIONS = {"coordinate_descent_tuning": True}
# Attention over the packed stream: "triton" (codesearch/gpu_kernels.py) or "flash" (torch's
# flash-attention 2 varlen kernel).
ATTENTION_DEFAULT = "triton"


# -- attention ------------------------------------------------------------------------------

def _flash_varlen():
    """A function (q, k, v, cu_q, cu_k, max_q, max_k, causal, scale) -> out over packed
    [T, H, D] tensors, or None when this torch has no varlen flash kernel. Queries and keys
    have their own offsets so that the last layer can attend from the end rows alone."""
    import torch

    try:
        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
    except (ImportError, ValueError, TypeError):
        varlen_attn, params = None, {}
    if varlen_attn is not None and "is_causal" in params and "enable_gqa" in params:
        def attend(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
            return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=causal, scale=scale,
                               enable_gqa=True)
        attend.kind = "torch.nn.attention.varlen.varlen_attn"
        return attend
    op = getattr(torch.ops.aten, "_flash_attention_forward", None)
    if op is None:
        return None

    # The kernel under varlen_attn; it takes fewer key/value heads than query heads (GQA).
    def attend(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
        return op(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False, scale=scale)[0]
    attend.kind = "aten._flash_attention_forward"
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


def default_attention():
    """The attention for the compiled packed path: $CODESEARCH_ATTENTION=triton|flash, else
    ATTENTION_DEFAULT, falling back to flash where Triton is missing."""
    from . import gpu_kernels

    flash = _flash_varlen()
    choice = os.environ.get("CODESEARCH_ATTENTION", ATTENTION_DEFAULT)
    if flash is not None and choice == "triton" and gpu_kernels.available():
        return triton_varlen(flash)
    return flash


def varlen_supported(device: str) -> tuple[bool, str]:
    """Whether the packed path can run on `device`, and if not, why."""
    import torch

    if not device.startswith("cuda"):
        return False, "packed attention needs CUDA"
    if _flash_varlen() is None:
        return False, f"torch {torch.__version__} has no varlen flash attention"
    major, _ = torch.cuda.get_device_capability(torch.device(device))
    if major < 8:
        return False, "flash attention needs an Ampere or newer GPU"
    return True, ""


# -- layer arithmetic (mirrors transformers' Qwen3) -----------------------------------------

def _rms(x, w, eps: float):
    import torch

    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dtype)


def _rope(x, cos, sin):
    import torch

    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


def _fused_rms(x, w, eps: float):
    """Eager-mode RMSNorm in one kernel (fp32 inside); numerically within bf16 rounding of _rms."""
    import torch.nn.functional as F

    return F.rms_norm(x, (x.shape[-1],), w, eps)


def _make_layer_fns(eps: float, hq: int, hk: int, d: int, inter: int, qk_norm: bool, rms=_rms):
    """The two halves of a decoder layer around attention, cut so that each residual add sits
    next to the RMSNorm that reads it (one pass over the hidden state instead of two):

        pre_attn:  x += mlp_out_of_previous_layer; h = norm(x); q, k, v = proj(h); q/k norm; RoPE
        post_attn: x += o_proj(attn); h = norm(x); return x, down(silu(gate(h)) * up(h))
    """
    import torch.nn.functional as F

    def pre_attn(x, m, ln_w, wqkv, bqkv, qn_w, kn_w, cos, sin):
        x = x + m
        h = rms(x, ln_w, eps)
        qkv = F.linear(h, wqkv, bqkv)
        q, k, v = qkv.split([hq * d, hk * d, hk * d], dim=-1)
        q = q.reshape(-1, hq, d)
        k = k.reshape(-1, hk, d)
        if qk_norm:
            q = rms(q, qn_w, eps)
            k = rms(k, kn_w, eps)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        return x, _rope(q, c, s), _rope(k, c, s), v.reshape(-1, hk, d)

    def post_attn(x, o, wo, post_w, wgu, wd):
        x = x + F.linear(o.reshape(o.shape[0], hq * d), wo)
        h = rms(x, post_w, eps)
        g, u = F.linear(h, wgu).split([inter, inter], dim=-1)
        return x, F.linear(F.silu(g) * u, wd)

    def final(x, m, norm_w):
        return rms(x + m, norm_w, eps)

    return pre_attn, post_attn, final


def inductor_cache_dir() -> Path:
    from .paths import cache_dir

    return Path(cache_dir()) / "inductor"


class PackedDecoder:
    """The packed forward of a loaded transformers Qwen3Model / Qwen2Model."""

    def __init__(self, model, pooling: str = "last", attention=None):
        import torch

        cfg = model.config
        self.model = model
        self.pooling = pooling
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.hq = cfg.num_attention_heads
        self.hk = getattr(cfg, "num_key_value_heads", None) or self.hq
        self.d = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.hq
        self.inter = cfg.intermediate_size
        self.eps = cfg.rms_norm_eps
        self.scale = self.d ** -0.5
        self.max_pos = int(getattr(cfg, "max_position_embeddings", 32768))
        layers = model.layers
        attn0 = layers[0].self_attn
        self.qk_norm = hasattr(attn0, "q_norm")
        # eager (small jobs, no warm-up): torch's flash kernel, which needs no tuning;
        # compiled: the default attention, whose autotuning is part of the warm-up (chosen in
        # compile(), so that eager use never imports Triton)
        self._attend_eager = attention or _flash_varlen()
        self._attend_compiled = attention
        self.attend = self._attend_eager
        self.compiled = False
        self.prune_last = True  # last layer on the end rows only (see forward)
        self.params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)

        with torch.no_grad():
            self.layers = []
            for layer in layers:
                a, m = layer.self_attn, layer.mlp
                wqkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], dim=0).contiguous()
                bqkv = None
                if a.q_proj.bias is not None:
                    bqkv = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).contiguous()
                wgu = torch.cat([m.gate_proj.weight, m.up_proj.weight], dim=0).contiguous()
                # the modules keep working, as views into the merged matrices (no second copy)
                nq, nk = a.q_proj.weight.shape[0], a.k_proj.weight.shape[0]
                a.q_proj.weight = torch.nn.Parameter(wqkv[:nq], requires_grad=False)
                a.k_proj.weight = torch.nn.Parameter(wqkv[nq:nq + nk], requires_grad=False)
                a.v_proj.weight = torch.nn.Parameter(wqkv[nq + nk:], requires_grad=False)
                if bqkv is not None:
                    a.q_proj.bias = torch.nn.Parameter(bqkv[:nq], requires_grad=False)
                    a.k_proj.bias = torch.nn.Parameter(bqkv[nq:nq + nk], requires_grad=False)
                    a.v_proj.bias = torch.nn.Parameter(bqkv[nq + nk:], requires_grad=False)
                m.gate_proj.weight = torch.nn.Parameter(wgu[:self.inter], requires_grad=False)
                m.up_proj.weight = torch.nn.Parameter(wgu[self.inter:], requires_grad=False)
                self.layers.append((
                    layer.input_layernorm.weight, wqkv, bqkv,
                    a.q_norm.weight if self.qk_norm else None, a.k_norm.weight if self.qk_norm else None,
                    a.o_proj.weight, layer.post_attention_layernorm.weight, wgu, m.down_proj.weight))
            self.norm_w = model.norm.weight
            self.embed = model.embed_tokens.weight
            rot = model.rotary_emb
            inv_freq = rot.inv_freq.float().to(self.device)
            scaling = float(getattr(rot, "attention_scaling", 1.0))
            self._inv_freq, self._scaling = inv_freq, scaling
            self._cos = self._sin = None
            self._table_len = 0
        import torch.nn.functional as F

        shape = (self.eps, self.hq, self.hk, self.d, self.inter, self.qk_norm)
        # eager: fused RMSNorm kernels where torch has them; compiled: transformers' arithmetic
        self._eager = _make_layer_fns(*shape, rms=_fused_rms if hasattr(F, "rms_norm") else _rms)
        self._to_compile = _make_layer_fns(*shape)
        self.pre_attn, self.post_attn, self.final = self._eager
        self.inductor_options = dict(INDUCTOR_OPTIONS)
        self._graphs: dict[int, tuple] = {}  # CUDA graphs for short single inputs, by token bucket

    # cos/sin rows for positions 0..n-1, computed as transformers does (fp32, then model dtype)
    def _tables(self, n: int):
        import torch

        if n > self._table_len:
            size = max(n, 1024)
            pos = torch.arange(size, device=self.device, dtype=torch.float32)
            freqs = pos[:, None] * self._inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            self._cos = (emb.cos() * self._scaling).to(self.dtype)
            self._sin = (emb.sin() * self._scaling).to(self.dtype)
            self._table_len = size
        return self._cos, self._sin

    def compile(self, mode: str | None = None) -> float:
        """Route the layer pieces through torch.compile (dynamic token count); returns nothing
        compiled yet: compilation happens at the first call, see `warm_up`."""
        import torch

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache_dir()))
        os.environ.setdefault("TRITON_CACHE_DIR", str(inductor_cache_dir() / "triton-kernels"))
        opts = dict(dynamic=True, fullgraph=True)
        if mode:
            opts["mode"] = mode
        elif self.inductor_options:
            opts["options"] = dict(self.inductor_options)
        self.pre_attn, self.post_attn, self.final = (torch.compile(fn, **opts) for fn in self._to_compile)
        if self._attend_compiled is None:
            self._attend_compiled = default_attention()
        self.attend = self._attend_compiled
        self.compiled = True
        self._graphs.clear()
        return 0.0

    def uncompile(self) -> None:
        self.pre_attn, self.post_attn, self.final = self._eager
        self.attend = self._attend_eager
        self.compiled = False
        self._graphs.clear()

    def forward(self, ids, pos, cu, max_len: int, last):
        """ids, pos: [T] long on the device; cu: [N+1] int32; last: [N] long (end rows).
        Returns [N, hidden] in the model dtype (pooled, not normalised).

        With last-token pooling the final layer works on the end rows alone: every row's keys
        and values are still needed, but only the end rows' queries, attention output,
        o-projection, MLP and norm reach the result (the same numbers, ~2.6% less work)."""
        import torch

        cos_t, sin_t = self._tables(max_len)
        cos, sin = cos_t[pos], sin_t[pos]
        x = self.embed[ids]
        m = torch.zeros_like(x)
        # one row would make compiled code specialise on size 1 (a recompilation): skip then
        prune = self.pooling == "last" and self.prune_last and last.shape[0] > 1
        n_layers = len(self.layers)
        for i, (ln_w, wqkv, bqkv, qn_w, kn_w, wo, post_w, wgu, wd) in enumerate(self.layers):
            x, q, k, v = self.pre_attn(x, m, ln_w, wqkv, bqkv, qn_w, kn_w, cos, sin)
            if prune and i == n_layers - 1:
                n = last.shape[0]
                one = torch.arange(n + 1, device=x.device, dtype=torch.int32)
                o = self.attend(q[last], k, v, one, cu, 1, max_len, False, self.scale)
                x, m = self.post_attn(x[last], o, wo, post_w, wgu, wd)
                return self.final(x, m, self.norm_w)
            o = self.attend(q, k, v, cu, cu, max_len, max_len, True, self.scale)
            x, m = self.post_attn(x, o, wo, post_w, wgu, wd)
        x = self.final(x, m, self.norm_w)
        if self.pooling == "last":
            return x[last]
        n = last.shape[0]
        seg = torch.repeat_interleave(torch.arange(n, device=x.device), cu[1:] - cu[:-1])
        sums = torch.zeros((n, x.shape[1]), device=x.device, dtype=torch.float32)
        sums.index_add_(0, seg, x.float())
        if self.pooling == "mean":
            return sums / (cu[1:] - cu[:-1]).clamp(min=1).unsqueeze(1).float()
        return x[cu[:-1].long()]  # cls


GRAPH_BUCKETS = (32, 64, 128, 256, 512)


class GraphedShort:
    """One short input (a query) through a CUDA graph of the packed forward.

    Launching ~600 small kernels one by one from Python costs far more than running them;
    a graph replays them all at once. The input is padded to a bucket size by a second,
    separate sequence of pad tokens (causal varlen attention keeps the two apart), so one
    graph per bucket serves every length up to it."""

    def __init__(self, packed: PackedDecoder, bucket: int, pad_id: int):
        import torch

        dev = packed.device
        b = self.bucket = bucket
        # one static int64 buffer: ids[b], positions[b], cu_seqlens[3], end rows[2]
        init = [pad_id] * b + list(range(b)) + [0, b - 1, b] + [b - 2, b - 1]
        self.buf = torch.tensor(init, dtype=torch.long, device=dev)
        self.host = torch.empty(2 * b + 5, dtype=torch.long, pin_memory=True)
        self.pad_id = pad_id
        packed._tables(b)

        def run():
            buf = self.buf
            return packed.forward(buf[:b], buf[b:2 * b], buf[2 * b:2 * b + 3].to(torch.int32), b,
                                  buf[2 * b + 3:])

        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):  # warm the kernels (and any compilation) outside the capture
                run()
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.out = run()

    def __call__(self, seq: list[int]):
        n, b = len(seq), self.bucket
        row = list(seq) + [self.pad_id] * (b - n) + list(range(n)) + list(range(b - n)) + [0, n, b, n - 1, b - 1]
        self.host.copy_(torch_tensor(row))
        self.buf.copy_(self.host, non_blocking=True)
        self.graph.replay()
        return self.out[0:1]


def torch_tensor(values):
    import torch

    return torch.tensor(values, dtype=torch.long)


def pack_batches(lengths: list[int], token_budget: int, max_seqs: int = 4096) -> list[list[int]]:
    """Group indices (longest first) into batches whose REAL token count stays under the budget:
    with no padding, the only waste is the budget left unused at a batch's end."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i in order:
        if current and (total + lengths[i] > token_budget or len(current) >= max_seqs):
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += lengths[i]
    if current:
        batches.append(current)
    return batches


def _cache_record() -> Path:
    return inductor_cache_dir() / "codesearch-compiled.json"


def _compile_key(packed: PackedDecoder) -> str:
    import torch

    name = torch.cuda.get_device_name(packed.device) if packed.device.type == "cuda" else "cpu"
    opts = ",".join(f"{k}={v}" for k, v in sorted(packed.inductor_options.items()))
    return f"{torch.__version__}|{name}|{packed.hq}x{packed.hk}x{packed.d}|{packed.inter}|{packed.dtype}|{opts}"


_COMPILED_IN_PROCESS = False


class PackedRunner:
    """Drives PackedDecoder over a job: packs, pipelines host<->device copies, decides on
    compiling. Used by Embedder.embed_token_ids when the model and device allow it."""

    def __init__(self, embedder, packed: PackedDecoder, token_budget: int, compile: str = "auto"):
        self.emb = embedder
        self.packed = packed
        self.token_budget = token_budget
        self.compile_policy = compile  # "auto" | "always" | "never"
        self.warm_up_s = 0.0
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return "packed+compiled" if self.packed.compiled else "packed"

    # -- deciding on compilation ------------------------------------------------------------
    def _rates(self) -> tuple[float, float]:
        scale = REF_PARAMS / max(1.0, float(self.packed.params))
        return REF_EAGER_RATE * scale, REF_COMPILED_RATE * scale

    def _expected_compile_s(self) -> float:
        """Cold compilation the first time on a machine; a recorded time once inductor's cache
        holds this model's kernels (the first warm time is guessed from the cold one)."""
        try:
            rec = json.loads(_cache_record().read_text()).get(_compile_key(self.packed))
        except (OSError, ValueError, AttributeError):
            rec = None
        if isinstance(rec, dict):
            if "warm" in rec:
                return float(rec["warm"]) + 1.0
            if "cold" in rec:
                return max(WARM_COMPILE_S, float(rec["cold"]) / 3)
        return COLD_COMPILE_S

    def estimate_seconds(self, total_tokens: int) -> float:
        eager, fast = self._rates()
        rate = fast if self.packed.compiled else eager
        return total_tokens / rate

    def plan(self, total_tokens: int) -> str:
        """Decide whether to compile for a job of `total_tokens`; returns a line for the user."""
        if self.packed.compiled:
            return "packed batches, compiled model (already warm)"
        eager, fast = self._rates()
        warm = self._expected_compile_s()
        saved = total_tokens / eager - total_tokens / fast
        policy = os.environ.get("CODESEARCH_COMPILE", self.compile_policy)
        if policy in ("never", "0") or (policy == "auto" and saved <= warm):
            need = int(warm / (1 / eager - 1 / fast))
            why = "" if policy in ("never", "0") else \
                f" (job of {total_tokens:,} tokens: compiling, ~{warm:.0f} s, pays off above ~{need:,})"
            return f"packed batches, eager model{why}"
        t = self.warm_up()
        return (f"packed batches, compiled model: job of {total_tokens:,} tokens saves "
                f"~{saved:.0f} s, compilation took {t:.1f} s")

    def warm_up(self) -> float:
        """Compile now, on a small packed batch of two sequences, and record the time taken."""
        import torch

        global _COMPILED_IN_PROCESS
        with self._lock:
            if self.packed.compiled:
                return 0.0
            first_in_process = not _COMPILED_IN_PROCESS
            t0 = time.perf_counter()
            self.packed.compile()
            try:
                tune = getattr(self.packed.attend, "tune", None)
                if tune is not None:  # the Triton attention's autotuning, cached on disk after once
                    tune(self.packed.hq, self.packed.hk, self.packed.d, self.packed.dtype, self.packed.device)
                for n in (97, 389):  # two sizes: the dynamic-shape graph, not one specialised to a size
                    self._forward([[self.emb.pad_id] * (n - 40), [self.emb.pad_id] * 40])
                torch.cuda.synchronize(self.packed.device)
            except Exception as error:  # noqa: BLE001 - any compiler failure: stay eager
                log.warning("torch.compile failed (%s); using the eager packed path", error)
                self.packed.uncompile()
                return 0.0
            self.warm_up_s = time.perf_counter() - t0
            _COMPILED_IN_PROCESS = True
            if not first_in_process:  # in-process caches made it quick: says nothing of next time
                return self.warm_up_s
            try:
                path = _cache_record()
                path.parent.mkdir(parents=True, exist_ok=True)
                rec = json.loads(path.read_text()) if path.exists() else {}
                key = _compile_key(self.packed)
                entry = rec.get(key) if isinstance(rec.get(key), dict) else {}
                entry["warm" if "cold" in entry else "cold"] = round(self.warm_up_s, 2)
                rec[key] = entry
                path.write_text(json.dumps(rec, indent=1))
            except (OSError, ValueError):
                pass
            return self.warm_up_s

    # -- running ----------------------------------------------------------------------------
    def _host_batch(self, seqs: list[list[int]]):
        import torch

        lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        total = int(lens.sum())
        ids = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=total)
        cu = np.zeros(len(seqs) + 1, dtype=np.int32)
        np.cumsum(lens, out=cu[1:])
        pos = np.arange(total, dtype=np.int64) - np.repeat(cu[:-1].astype(np.int64), lens)
        pin = self.packed.device.type == "cuda"
        host = torch.from_numpy(np.concatenate([ids, pos, cu[1:].astype(np.int64) - 1]))
        cu_t = torch.from_numpy(cu)
        if pin:
            host, cu_t = host.pin_memory(), cu_t.pin_memory()
        return host, cu_t, total, int(lens.max())

    def _launch(self, host, cu_t, total: int, max_len: int):
        import torch

        dev = self.packed.device
        allv = host.to(dev, non_blocking=True)
        cu = cu_t.to(dev, non_blocking=True)
        ids, pos, last = allv[:total], allv[total:2 * total], allv[2 * total:]
        with torch.inference_mode():
            vec = self.packed.forward(ids, pos, cu, max_len, last)
            vec = self.emb.pool_vectors(vec)
        return vec

    def _forward(self, seqs: list[list[int]]):
        return self._launch(*self._host_batch(seqs)).cpu().numpy()

    def _short(self, seq: list[int]):
        """A single short input through a CUDA graph (queries); None when none applies."""
        import torch

        if self.packed.device.type != "cuda" or os.environ.get("CODESEARCH_CUDA_GRAPHS", "1") == "0":
            return None
        bucket = next((b for b in GRAPH_BUCKETS if b > len(seq)), None)
        if bucket is None:
            return None
        with self._lock:
            graph = self.packed._graphs.get(bucket)
            if graph is None:
                try:
                    graph = GraphedShort(self.packed, bucket, self.emb.pad_id)
                except Exception as error:  # noqa: BLE001 - no graphs: the ordinary path
                    log.info("CUDA graph capture failed (%s); queries run without graphs", error)
                    os.environ["CODESEARCH_CUDA_GRAPHS"] = "0"
                    return None
                self.packed._graphs[bucket] = graph
            with torch.inference_mode():
                return self.emb.pool_vectors(graph(seq)).cpu().numpy()

    def embed(self, token_ids: list[list[int]], progress=None) -> np.ndarray:
        out = np.zeros((len(token_ids), self.emb.dim), dtype=np.float32)
        for batch, vecs in self.stream(token_ids, progress):
            out[batch] = vecs
        return out

    def stream(self, token_ids: list[list[int]], progress=None):
        """Yield (indices, vectors) batch by batch, keeping one batch in flight on the GPU
        while the previous one's results are handed out."""
        import torch

        if not token_ids:
            return
        if len(token_ids) == 1:
            vec = self._short(token_ids[0])
            if vec is not None:
                if progress:
                    progress(1, len(token_ids[0]))
                yield [0], vec
                return
        batches = pack_batches([len(t) for t in token_ids], self.token_budget)
        cuda = self.packed.device.type == "cuda"
        pending = None  # (batch, host tensor, event, tokens): one batch in flight

        def finish(item):
            batch, host_out, event, ntok = item
            if event is not None:
                event.synchronize()
            if progress:
                progress(len(batch), ntok)
            return batch, host_out.numpy()

        for batch in batches:
            seqs = [token_ids[i] for i in batch]
            prepared = self._host_batch(seqs)  # CPU work while the GPU runs the previous batch
            vec = self._launch(*prepared)
            if cuda:
                host_out = torch.empty(vec.shape, dtype=torch.float32, pin_memory=True)
                host_out.copy_(vec, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
            else:
                host_out, event = vec, None
            item = (batch, host_out, event, prepared[2])
            if pending is not None:
                yield finish(pending)
            pending = item
        if pending is not None:
            yield finish(pending)


def make_packed_runner(embedder, attention=None, compile: str = "auto"):
    """A PackedRunner for this Embedder, or (None, why) when the model or device can't use one."""
    model = embedder.model
    mtype = getattr(model.config, "model_type", "")
    if mtype not in DECODER_TYPES:
        return None, f"packed path is for {'/'.join(DECODER_TYPES)} models, not {mtype or 'this model'}"
    if not hasattr(model, "layers") or not hasattr(model, "rotary_emb"):
        return None, "unexpected model layout"
    if attention is None:
        ok, why = varlen_supported(embedder.device)
        if not ok:
            return None, why
    rope_type = getattr(model.rotary_emb, "rope_type", "default")
    if rope_type not in ("default", None):
        return None, f"rope type {rope_type} is not handled by the packed path"
    packed = PackedDecoder(model, pooling=embedder.spec.pooling, attention=attention)
    budget = embedder.token_budget
    return PackedRunner(embedder, packed, budget, compile=compile), ""
