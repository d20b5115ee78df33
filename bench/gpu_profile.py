"""Where the packed GPU path's time goes, and what each of its options is worth.

Runs on a CUDA machine, in one process:
  1. variants of the compiled packed forward, alternating over rounds on the same inputs
     (real tokens/s, min cosine to the plain transformers forward on a subset):
       base        every layer on every row, cuBLAS gate/up product + compiled SwiGLU
       prune       the last layer on the end rows only (PackedDecoder.prune_last)
       prune+tattn plus our Triton varlen attention kernel (codesearch/embedders/gpu_kernels.py) in place
                   of torch's flash-attention 2 (tuned during the warm-up; a name ending in
                   `-live` forgets that tuning and tunes on the real batches, to compare)
     then, per --phases, everything recompiled with other inductor settings (PHASES), the last two again;
  2. a kernel-time breakdown of a few batches (torch.profiler): matrix products, attention,
     inductor's elementwise kernels, the rest;
  3. the matrix products alone at the model's shapes (TFLOP/s), and the attention kernels
     alone on a batch of long and a batch of typical sequences.

    python bench/gpu_profile.py --tokenizer .bench_assets/qwen-tokenizer --first plain --phases cdt --out gpu-profile.json
"""

from __future__ import annotations

import argparse
import os
import json
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_throughput import resolve_spec, synthetic_inputs  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(runner, ids, sync):
    sync()
    t0 = time.perf_counter()
    out = runner.embed_token_ids(ids)
    sync()
    return time.perf_counter() - t0, out


def category(name: str) -> str:
    low = name.lower()
    if "varlen_causal" in low:
        return "attention (our Triton kernel)"
    if "flash" in low or "fmha" in low:
        return "attention"
    if any(s in low for s in ("gemm", "xmma", "cutlass", "nvjet", "cublas", "sm90", "sm80")):
        return "matrix products (cuBLAS)"
    if low.startswith("triton"):
        return "elementwise (inductor)"
    return "other"


def profile(runner, ids, args) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile as tprofile

    sub = ids[: args.profile_inputs]
    runner.embed_token_ids(sub)
    torch.cuda.synchronize()
    with tprofile(activities=[ProfilerActivity.CUDA]) as prof:
        runner.embed_token_ids(sub)
        torch.cuda.synchronize()
    kernels: dict[str, float] = {}
    for evt in prof.key_averages():
        cuda_us = getattr(evt, "device_time_total", None) or getattr(evt, "cuda_time_total", 0)
        if cuda_us and evt.key and not evt.key.startswith("ProfilerStep"):
            kernels[evt.key] = kernels.get(evt.key, 0.0) + cuda_us
    # keep kernels only (the aten ops wrapping them would count twice)
    launched = {k: v for k, v in kernels.items() if not k.startswith("aten::") and "Memcpy" not in k
                and "Memset" not in k}
    total = sum(launched.values()) or 1.0
    cats: dict[str, float] = {}
    for k, v in launched.items():
        cats[category(k)] = cats.get(category(k), 0.0) + v
    top = sorted(launched.items(), key=lambda kv: -kv[1])[:15]
    return dict(total_ms=round(total / 1000, 2),
                share={c: round(v / total, 4) for c, v in sorted(cats.items(), key=lambda kv: -kv[1])},
                top=[(k[:110], round(v / total, 4)) for k, v in top])


def gemm_table(packed, m: int) -> list[dict]:
    import torch
    import torch.nn.functional as F

    dev, dt = packed.device, packed.dtype
    _, wqkv, _, _, _, wo, _, wgu, wd = packed.layers[0]
    rows = []
    for name, w in (("qkv", wqkv), ("o", wo), ("gate_up", wgu), ("down", wd)):
        x = torch.randn(m, w.shape[1], device=dev, dtype=dt)
        for _ in range(3):
            F.linear(x, w)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            F.linear(x, w)
        torch.cuda.synchronize()
        secs = (time.perf_counter() - t0) / reps
        rows.append(dict(product=name, m=m, n=w.shape[0], k=w.shape[1], ms=round(secs * 1000, 3),
                         tflops=round(2 * m * w.shape[0] * w.shape[1] / secs / 1e12, 1)))
    return rows


PHASES = {
    "plain": {},
    "cdt": {"coordinate_descent_tuning": True},
    "cdt+pw": {"coordinate_descent_tuning": True, "max_autotune_pointwise": True},
}


def attention_compare(packed, ids, budget: int) -> dict:
    """Flash-attention 2's varlen kernel against ours, alone, on two packed batches of the real
    lengths: the first (the longest sequences) and the middle one (typical lengths)."""
    import torch

    from codesearch.embedders.batching import group_by_budget
    from codesearch.embedders.gpu import MAX_SEQS
    from codesearch.embedders.gpu_attention import flash_varlen, triton_varlen
    from codesearch.embedders.gpu_kernels import available

    lengths = [len(t) for t in ids]
    batches = group_by_budget(lengths, budget, padded=False, max_items=MAX_SEQS)  # as the packed path packs
    flash = flash_varlen()
    fns = {"flash-attention 2 varlen": flash}
    if available():
        fns["our Triton kernel"] = triton_varlen(flash)
    out = {}
    for label, batch in (("longest", batches[0]), ("typical", batches[len(batches) // 2])):
        lens = torch.tensor([lengths[i] for i in batch])
        cu = torch.zeros(len(batch) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(lens, 0)
        cu = cu.cuda()
        t, mx = int(lens.sum()), int(lens.max())
        dev, dt = packed.device, packed.dtype
        qkv = torch.randn(t, (packed.hq + 2 * packed.hk) * packed.d, device=dev, dtype=dt)
        q = qkv[:, :packed.hq * packed.d].view(t, packed.hq, packed.d)
        k = qkv[:, packed.hq * packed.d:(packed.hq + packed.hk) * packed.d].view(t, packed.hk, packed.d)
        v = qkv[:, (packed.hq + packed.hk) * packed.d:].view(t, packed.hk, packed.d)
        flops = sum(4 * packed.hq * packed.d * n * (n + 1) / 2 for n in lens.tolist())
        row, ref = dict(tokens=t, sequences=len(batch), median_len=int(lens.median())), None
        for name, fn in fns.items():
            def call():
                return fn(q, k, v, cu, cu, mx, mx, True, packed.scale)
            res = call()
            for _ in range(3):
                call()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                call()
            torch.cuda.synchronize()
            secs = (time.perf_counter() - t0) / 20
            ref = res if ref is None else ref
            row[name] = dict(ms=round(secs * 1000, 3), tflops=round(flops / secs / 1e12, 1),
                             max_abs_diff_to_flash=round(float((res.float() - ref.float()).abs().max()), 5))
        out[label] = row
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random:qwen3-0.6b")
    p.add_argument("--tokenizer")
    p.add_argument("--inputs", type=int, default=20000)
    p.add_argument("--budget", type=int, default=65536)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--check-inputs", type=int, default=2000, help="inputs compared with the plain forward")
    p.add_argument("--profile-inputs", type=int, default=2000)
    p.add_argument("--first", default="", help=f"inductor settings of the first phase: one of {list(PHASES)}")
    p.add_argument("--variants", default="", help="comma separated, instead of base,prune,prune+tattn")
    p.add_argument("--phases", default="", help=f"later phases, comma separated, from {list(PHASES)}")
    p.add_argument("--workdir", default="/tmp/codesearch-bench")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from codesearch.embedders.gpu import PackedGpuEmbedder
    from codesearch.embedders.gpu_attention import flash_varlen, triton_varlen
    from codesearch.embedders.gpu_kernels import available
    from codesearch.embedders.hf_model import HFModel
    from codesearch.embedders.transformers_loop import TransformersEmbedder

    spec = resolve_spec(args.model, args.tokenizer, Path(args.workdir), "bf16")
    plain = TransformersEmbedder(HFModel(spec, "cuda"))  # the reference: stock model, padded batches
    ids = synthetic_inputs(args.inputs, plain.model.eos_id or 151643)
    tokens = sum(len(t) for t in ids)
    check = ids[: args.check_inputs]
    ref = plain.embed_token_ids(check)
    del plain
    torch.cuda.empty_cache()

    # the packed path on its own copy of the model (it merges the model's weights in place)
    runner = PackedGpuEmbedder(HFModel(spec, "cuda"), args.budget, attention=None, attention_choice="triton",
                               compile="auto", cuda_graphs=True)
    packed = runner.packed
    runner.token_budget = args.budget
    packed.inductor_options = dict(PHASES[args.first]) if args.first else packed.inductor_options
    flash = flash_varlen()
    tattn = triton_varlen(flash) if available() else None
    t0 = time.perf_counter()
    runner.warm_up()
    result = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, inputs=len(ids), tokens=tokens,
                  batch_tokens=args.budget, warm_up_s=round(time.perf_counter() - t0, 1),
                  command="python " + " ".join([sys.argv[0]] + sys.argv[1:]), runs=[], summary=[])
    log(f"{result['device']}: {len(ids)} inputs, {tokens:,} tokens, warm-up {result['warm_up_s']} s")

    live = {}

    def setup(name):
        packed.prune_last = "prune" in name
        packed.attend = tattn if "tattn" in name else flash
        if name.endswith("-live") and name not in live:  # forget the warm-up's tuning and
            import tempfile                                  # tune on the real batches instead

            from codesearch.embedders import gpu_kernels

            os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()
            gpu_kernels._kernel.cache_clear()
            packed.attend = triton_varlen(flash)
            runner.embed_token_ids(ids)
            live[name] = packed.attend
        elif name in live:
            packed.attend = live[name]

    def run_round(names, rnd, tag=""):
        for name in names:
            setup(name)
            runner.embed_token_ids(ids[:256])
            secs, out = timed(runner, ids, torch.cuda.synchronize)
            cos = float((out[: len(check)] * ref).sum(axis=1).min())
            row = dict(variant=name + tag, round=rnd, tokens_per_s=round(tokens / secs), min_cos=round(cos, 5))
            result["runs"].append(row)
            log(f"  round {rnd} {name + tag:18s} {row['tokens_per_s']:>9,} tok/s  min cos {cos:.5f}")

    names = ["base", "prune"] + (["prune+tattn"] if tattn else [])
    if args.variants:
        names = args.variants.split(",")
    for rnd in range(args.rounds):
        run_round(names, rnd)

    result["profile"] = {}
    for name in names:
        setup(name)
        result["profile"][name] = profile(runner, ids, args)
        log(f"  profile {name}: {json.dumps(result['profile'][name]['share'])}")
    result["gemm"] = gemm_table(packed, args.budget)
    for row in result["gemm"]:
        log(f"  {row}")

    result["attention"] = attention_compare(packed, ids, args.budget)
    log(f"  attention: {result['attention']}")

    # later phases: everything recompiled with other inductor settings
    import torch._dynamo

    for phase in [p for p in args.phases.split(",") if p]:
        torch._dynamo.reset()
        packed.inductor_options = dict(PHASES[phase])
        packed.uncompile()
        t0 = time.perf_counter()
        runner.warm_up()
        result[f"warm_up_s[{phase}]"] = round(time.perf_counter() - t0, 1)
        for rnd in range(args.rounds):
            run_round(names[1:], rnd, f"+{phase}")

    by: dict[str, list] = {}
    for r in result["runs"]:
        by.setdefault(r["variant"], []).append(r)
    for name, rs in by.items():
        result["summary"].append(dict(variant=name, median_tokens_per_s=round(statistics.median(r["tokens_per_s"] for r in rs)),
                                      rounds=[r["tokens_per_s"] for r in rs], min_cos=min(r["min_cos"] for r in rs)))
    for s in result["summary"]:
        print(f"{s['variant']:20s} {s['median_tokens_per_s']:>9,} tok/s  rounds {s['rounds']}  min cos {s['min_cos']}")
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
