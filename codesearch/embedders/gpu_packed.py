"""Padding-free ("packed") forward for Qwen3/Qwen2-style embedding models, made for CUDA.

The plain loop pads every batch to its longest row and runs the stock transformers
modules. Here the batch is one 1-D stream of tokens, sequences laid end to end, described by
`cu_seqlens` (the offsets where each sequence starts):

- attention is variable-length causal attention over that stream (gpu_attention.py), so no
  token attends across a sequence border and no padding is computed at all;
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
- compiled (`compile()`): the two pieces of a layer around attention (norm, projections,
  q/k norm, RoPE; then output projection, residual, norm, MLP) go through `torch.compile`
  with a dynamic token count and coordinate-descent tuning, so one compilation serves every
  batch and all 28 layers; attention becomes our Triton kernel (gpu_kernels.py). Whether to
  compile is the backend's decision (gpu.py).

With last-token pooling the last layer runs on the end rows only (see `forward`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .gpu_attention import compiled_attention, flash_varlen

DECODER_TYPES = ("qwen3", "qwen2")
# Inductor settings for the compiled pieces. Coordinate-descent tuning of the generated
# elementwise/norm kernels measured +2-9% tokens/s on H100s (docs/embedding.md).
INDUCTOR_OPTIONS = {"coordinate_descent_tuning": True}


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
    from ..paths import cache_dir

    return Path(cache_dir()) / "inductor"


@dataclass
class DecoderWeights:
    """A Qwen3/Qwen2 decoder in the packed path's layout: q/k/v and gate/up merged into one
    matrix each, per layer (ln_w, wqkv, bqkv, qn_w, kn_w, wo, post_w, wgu, wd), and its shape.
    Built from a loaded transformers model (`from_transformers`) or straight from the
    checkpoint's safetensors (qwen3_native.py)."""

    hq: int
    hk: int
    d: int
    inter: int
    eps: float
    qk_norm: bool
    layers: list
    norm_w: object
    embed: object
    inv_freq: object  # float32 RoPE frequencies on the device
    scaling: float = 1.0
    max_pos: int = 32768

    @property
    def device(self):
        return self.embed.device

    @property
    def dtype(self):
        return self.embed.dtype

    @property
    def params(self) -> int:
        """Parameters outside the token embedding (what a token's forward multiplies with)."""
        return sum(t.numel() for layer in self.layers for t in layer if t is not None) + self.norm_w.numel()


def rope_frequencies(head_dim: int, theta: float, device):
    """RoPE inverse frequencies as transformers computes them for the default rope type."""
    import torch

    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float32) / head_dim
    return 1.0 / (theta ** exponent)


def merge_layer(ln_w, q, k, v, qb, kb, vb, qn_w, kn_w, wo, post_w, gate, up, wd):
    """One layer's tensors in DecoderWeights' layout (q/k/v and gate/up concatenated)."""
    import torch

    wqkv = torch.cat([q, k, v], dim=0).contiguous()
    bqkv = torch.cat([qb, kb, vb]).contiguous() if qb is not None else None
    wgu = torch.cat([gate, up], dim=0).contiguous()
    return (ln_w, wqkv, bqkv, qn_w, kn_w, wo, post_w, wgu, wd)


def from_transformers(model) -> DecoderWeights:
    """The weights of a loaded transformers Qwen3Model / Qwen2Model. The modules keep working,
    as views into the merged matrices (no second copy)."""
    import torch

    cfg = model.config
    hq = cfg.num_attention_heads
    inter = cfg.intermediate_size
    qk_norm = hasattr(model.layers[0].self_attn, "q_norm")
    layers = []
    with torch.no_grad():
        for layer in model.layers:
            a, m = layer.self_attn, layer.mlp
            bias = a.q_proj.bias is not None
            merged = merge_layer(layer.input_layernorm.weight, a.q_proj.weight, a.k_proj.weight, a.v_proj.weight,
                                 a.q_proj.bias if bias else None, a.k_proj.bias if bias else None,
                                 a.v_proj.bias if bias else None,
                                 a.q_norm.weight if qk_norm else None, a.k_norm.weight if qk_norm else None,
                                 a.o_proj.weight, layer.post_attention_layernorm.weight, m.gate_proj.weight,
                                 m.up_proj.weight, m.down_proj.weight)
            _, wqkv, bqkv, *_rest = merged
            wgu = merged[7]
            nq, nk = a.q_proj.weight.shape[0], a.k_proj.weight.shape[0]
            a.q_proj.weight = torch.nn.Parameter(wqkv[:nq], requires_grad=False)
            a.k_proj.weight = torch.nn.Parameter(wqkv[nq:nq + nk], requires_grad=False)
            a.v_proj.weight = torch.nn.Parameter(wqkv[nq + nk:], requires_grad=False)
            if bqkv is not None:
                a.q_proj.bias = torch.nn.Parameter(bqkv[:nq], requires_grad=False)
                a.k_proj.bias = torch.nn.Parameter(bqkv[nq:nq + nk], requires_grad=False)
                a.v_proj.bias = torch.nn.Parameter(bqkv[nq + nk:], requires_grad=False)
            m.gate_proj.weight = torch.nn.Parameter(wgu[:inter], requires_grad=False)
            m.up_proj.weight = torch.nn.Parameter(wgu[inter:], requires_grad=False)
            layers.append(merged)
        rot = model.rotary_emb
        device = model.embed_tokens.weight.device
        return DecoderWeights(
            hq=hq, hk=getattr(cfg, "num_key_value_heads", None) or hq,
            d=getattr(cfg, "head_dim", None) or cfg.hidden_size // hq, inter=inter, eps=cfg.rms_norm_eps,
            qk_norm=qk_norm, layers=layers, norm_w=model.norm.weight, embed=model.embed_tokens.weight,
            inv_freq=rot.inv_freq.float().to(device), scaling=float(getattr(rot, "attention_scaling", 1.0)),
            max_pos=int(getattr(cfg, "max_position_embeddings", 32768)))


class PackedDecoder:
    """The packed forward over a decoder's weights (DecoderWeights)."""

    def __init__(self, weights: DecoderWeights, pooling: str = "last", attention=None,
                 attention_choice: str = "triton"):
        w = weights
        self.pooling = pooling
        self.device = w.device
        self.dtype = w.dtype
        self.hq, self.hk, self.d, self.inter, self.eps, self.qk_norm = w.hq, w.hk, w.d, w.inter, w.eps, w.qk_norm
        self.scale = self.d ** -0.5
        self.max_pos = w.max_pos
        # eager (small jobs, no warm-up): torch's flash kernel, which needs no tuning;
        # compiled: the default attention, whose autotuning is part of the warm-up (chosen in
        # compile(), so that eager use never imports Triton)
        self._attend_eager = attention or flash_varlen()
        self._attend_compiled = attention
        self.attention_choice = attention_choice
        self.attend = self._attend_eager
        self.compiled = False
        self.prune_last = True  # last layer on the end rows only (see forward)
        self.params = w.params
        self.layers = w.layers
        self.norm_w = w.norm_w
        self.embed = w.embed
        self._inv_freq, self._scaling = w.inv_freq, w.scaling
        self._cos = self._sin = None
        self._table_len = 0
        import torch.nn.functional as F

        shape = (self.eps, self.hq, self.hk, self.d, self.inter, self.qk_norm)
        # eager: fused RMSNorm kernels where torch has them; compiled: transformers' arithmetic
        self._eager = _make_layer_fns(*shape, rms=_fused_rms if hasattr(F, "rms_norm") else _rms)
        self._to_compile = _make_layer_fns(*shape)
        self.pre_attn, self.post_attn, self.final = self._eager
        self.inductor_options = dict(INDUCTOR_OPTIONS)
        self.graphs: dict[int, tuple] = {}  # CUDA graphs for short single inputs, by token bucket

    # cos/sin rows for positions 0..n-1, computed as transformers does (fp32, then model dtype)
    def tables(self, n: int):
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
            self._attend_compiled = compiled_attention(self.attention_choice)
        self.attend = self._attend_compiled
        self.compiled = True
        self.graphs.clear()
        return 0.0

    def uncompile(self) -> None:
        self.pre_attn, self.post_attn, self.final = self._eager
        self.attend = self._attend_eager
        self.compiled = False
        self.graphs.clear()

    def forward(self, ids, pos, cu, max_len: int, last):
        """ids, pos: [T] long on the device; cu: [N+1] int32; last: [N] long (end rows).
        Returns [N, hidden] in the model dtype (pooled, not normalised).

        With last-token pooling the final layer works on the end rows alone: every row's keys
        and values are still needed, but only the end rows' queries, attention output,
        o-projection, MLP and norm reach the result (the same numbers, ~2.6% less work)."""
        import torch

        cos_t, sin_t = self.tables(max_len)
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
