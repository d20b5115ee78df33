"""Embedding throughput of codesearch's own embedding path, against reference loops.

Measures, per strategy and batch size: real tokens/s, units/s, padding fraction, warm-up time,
peak GPU memory, and each row's cosine to the plain (reference) path. Writes JSON and, with
matplotlib installed (`pip install codesearch[bench]`), a PNG of throughput against batch tokens
with one line per strategy. Imports nothing that needs tree-sitter or hnswlib unless inputs come
from a repository (`--inputs repo:PATH`).

Models: a real model folder or name (`e5-small`, a path), or a random-weight model of a named
shape (`random:qwen3-0.6b`, `random:qwen3-tiny`); a random model borrows a tokenizer folder
(`--tokenizer`, e.g. one written by tests/qwen_tiny.py) only to satisfy the loader.

Strategies (`--strategies`, comma separated NAME:BUDGET[@UNITS]; BUDGET is tokens per batch;
@UNITS measures on the first UNITS inputs only, for slow loops):
  plain-unsorted  reference: inputs in arrival order, padded batches (the naive loop)
  plain           reference: codesearch's plain loop, length-sorted padded batches, stock model
  hf-compile      reference: the plain loop over torch.compile(model, dynamic=True)
  packed          codesearch fast GPU path, eager (no warm-up)
  packed-compiled codesearch fast GPU path, compiled pieces
  index-path      what `codesearch index` runs: the factory's backend for documents, plan(), then
                  the vectors consumed on another thread (as Indexer._embed does)
  pool-same-gpu   the multi-GPU pool's code path with two workers sharing cuda:0
  cpu:NAME        codesearch CPU path NAME (codesearch/embedders/cpu.py): cpu:fp32 (the plain loop),
                  cpu:bf16, cpu:int8, or cpu:auto / cpu:fast (the path codesearch picks on this CPU);
                  cpu:NAME/tN runs it on N threads
Examples (the commands behind docs/bench/*):
  python bench/embed_throughput.py --model random:qwen3-0.6b --tokenizer .bench_assets/qwen-tokenizer \\
      --device cuda --inputs synthetic:20000 --out docs/bench/gpu-h100.json
  python bench/embed_throughput.py --model e5-small --device cpu --inputs repo:/path/to/repo \\
      --max-tokens 192 --strategies plain:4096@200,cpu:fast:4096@200 --rounds 3 --out docs/bench/cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    # Qwen3-Embedding-0.6B
    "qwen3-0.6b": dict(vocab_size=151669, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                       max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       tie_word_embeddings=True),
    "qwen3-tiny": dict(vocab_size=151669, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       max_position_embeddings=1024),
}
DEFAULT_GPU = ("plain-unsorted:8192@4000,plain:65536@12000,plain:131072@12000,"
               "packed:16384,packed:32768,packed:65536,packed:131072,"
               "packed-compiled:16384,packed-compiled:32768,packed-compiled:65536,packed-compiled:131072,"
               "hf-compile:131072")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- models and inputs -----------------------------------------------------------------------

def random_model_folder(shape: str, tokenizer: str | None, dest: Path, dtype: str) -> Path:
    """Write a random-weight model of a named shape (plus a borrowed tokenizer) to `dest`."""
    import shutil

    import torch
    from transformers import Qwen3Config, Qwen3Model

    if (dest / "config.json").exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    cfg = Qwen3Config(**SHAPES[shape], pad_token_id=151643, eos_token_id=151643)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen3Model(cfg).to({"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]).eval()
    model.save_pretrained(dest)
    del model
    if tokenizer:
        for name in os.listdir(tokenizer):
            if name.startswith("tokenizer") or name.startswith("special_tokens"):
                shutil.copy(Path(tokenizer) / name, dest / name)
    return dest


def resolve_spec(model: str, tokenizer: str | None, workdir: Path, dtype: str):
    from codesearch.embedders.models import resolve_model, spec_from_folder

    if model.startswith("random:"):
        shape = model.split(":", 1)[1]
        folder = random_model_folder(shape, tokenizer, workdir / f"random-{shape}-{dtype}", dtype)
        return spec_from_folder(folder, model)
    return resolve_model(model, allow_download=False)


def synthetic_inputs(n: int, eos: int, seed: int = 0, median: int = 120, sigma: float = 0.8,
                     cap: int = 512, vocab: int = 151643) -> list[list[int]]:
    """Function-like token streams: lognormal lengths (median 120, capped), EOS last."""
    rng = np.random.default_rng(seed)
    lens = np.clip(np.round(np.exp(rng.normal(math.log(median), sigma, n))), 8, cap).astype(int)
    out = []
    for n_tok in lens:
        ids = rng.integers(100, vocab, n_tok - 1).tolist()
        out.append(ids + [eos])
    return out


def repo_texts(repo: str, limit: int) -> list[str]:
    """Pieces of functions of a real repository, as `codesearch index` would embed them."""
    from codesearch import chunking
    from codesearch.extract import extract_units
    from codesearch.files import discover, read_source

    texts: list[str] = []
    found = discover(Path(repo), 1_000_000)
    for f in sorted(found.files, key=lambda f: f.path):
        try:
            source, _ = read_source(Path(repo), f.path)
        except OSError:
            continue
        for unit in extract_units(f.path, source, f.language.name):
            texts.extend(chunking.unit_pieces(unit))
    # a spread sample, deterministic
    if len(texts) > limit:
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return texts


# -- strategies ------------------------------------------------------------------------------

def padded_tokens(batches, lengths) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def unsorted_batches(lengths, budget):
    batches, cur, longest = [], [], 0
    for i, n in enumerate(lengths):
        if cur and max(longest, n) * (len(cur) + 1) > budget:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches


def cpu_path_option(name: str) -> str:
    """The `cpu_path` setting behind a cpu:NAME strategy ("fast": the automatic choice, as before)."""
    return name if name in ("bf16", "int8", "fp32") else "auto"


class Bench:
    def __init__(self, args):
        self.args = args
        self.embedders = {}

    def embedder(self, key: str):
        """One loaded backend per key, each over its own copy of the model (the packed and CPU
        paths change the model they are given: merged weights, bf16 or int8 layers).

        plain:    TransformersEmbedder, the stock transformers model in padded batches
        packed:   PackedGpuEmbedder (compile and CUDA graphs left to the strategy)
        cpu:NAME: local.load_local on the CPU with cpu_path NAME, as the factory builds it
        """
        from codesearch.embedders.hf_model import HFModel

        if key not in self.embedders:
            t0 = time.perf_counter()
            args = self.args
            try:
                if key == "plain":
                    from codesearch.embedders.transformers_loop import TransformersEmbedder

                    emb = TransformersEmbedder(HFModel(self.spec, args.device, dtype=args.dtype,
                                                       threads=args.threads))
                elif key == "packed":
                    from codesearch.embedders.gpu import PackedGpuEmbedder

                    model = HFModel(self.spec, args.device, dtype=args.dtype, threads=args.threads)
                    try:
                        emb = PackedGpuEmbedder(model, None, attention=None, attention_choice="triton",
                                                compile="auto", cuda_graphs=True)
                    except ValueError as error:  # packed_unsupported's reason
                        raise RuntimeError(f"no packed path here: {error}") from None
                elif key.startswith("cpu:"):
                    from codesearch.embedders.local import LocalOptions, load_local

                    opts = LocalOptions(dtype=args.dtype, threads=args.threads,
                                        cpu_path=cpu_path_option(key.split(":", 1)[1]))
                    emb = load_local(self.spec, "cpu", opts)
                else:
                    raise ValueError(f"unknown embedder {key}")
            except Exception as error:  # noqa: BLE001 - remembered: a later round fails at once
                self.embedders[key] = error
                raise
            self.embedders[key] = emb
            if args.threads:  # HFModel sets one thread per usable core; the bench may want another count
                import torch

                torch.set_num_threads(args.threads)
            log(f"  loaded {key} in {time.perf_counter() - t0:.1f} s ({emb.path})")
        emb = self.embedders[key]
        if isinstance(emb, Exception):
            raise emb
        return emb

    def sync(self):
        if self.args.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def reset_peak(self):
        if self.args.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self):
        if self.args.device.startswith("cuda"):
            import torch

            return round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return None

    def run_strategy(self, name: str, budget: int, ids: list[list[int]]):
        """Returns (vectors, seconds, warm_up_seconds, padded_tokens, path) for one strategy."""
        import torch

        lengths = [len(t) for t in ids]
        warm = 0.0
        if name == "plain-unsorted":
            emb = self.embedder("plain")
            batches = unsorted_batches(lengths, budget)
            emb.model.forward_ids([ids[i] for i in batches[0]])  # CUDA context, cuBLAS handles
            self.sync()
            out = np.zeros((len(ids), emb.dim), dtype=np.float32)
            t0 = time.perf_counter()
            for b in batches:
                out[b] = emb.model.forward_ids([ids[i] for i in b])
            self.sync()
            return out, time.perf_counter() - t0, warm, padded_tokens(batches, lengths), "plain, arrival order"
        if name in ("plain", "hf-compile"):
            from codesearch.embedders.batching import group_by_budget

            emb = self.embedder("plain")
            emb.token_budget = budget
            batches = group_by_budget(lengths, budget, padded=True, max_items=256)  # what the loop runs
            hf = emb.model  # the HFModel; hf.model is the torch module its forward_ids runs
            original = hf.model
            if name == "hf-compile":
                hf.model = torch.compile(original, dynamic=True)
                t0 = time.perf_counter()
                emb.embed_token_ids(ids)  # compiles for every shape it meets
                self.sync()
                first = time.perf_counter() - t0
            else:
                emb.embed_token_ids(ids[:64])
            self.sync()
            try:
                t0 = time.perf_counter()
                out = emb.embed_token_ids(ids)
                self.sync()
                secs = time.perf_counter() - t0
            finally:
                hf.model = original
            if name == "hf-compile":
                warm = max(0.0, first - secs)
            return out, secs, warm, padded_tokens(batches, lengths), f"{name}, sorted"
        if name in ("packed", "packed-compiled"):
            runner = self.embedder("packed")  # a PackedGpuEmbedder (or "no packed path here")
            runner.token_budget = budget
            if name == "packed-compiled" and not runner.packed.compiled:
                t0 = time.perf_counter()
                runner.warm_up()
                warm = time.perf_counter() - t0
                self.compile_warm_up = warm
            elif name == "packed" and runner.packed.compiled:
                runner.packed.uncompile()
            elif name == "packed-compiled":
                warm = getattr(self, "compile_warm_up", 0.0)
            runner.embed_token_ids(ids[:64])
            self.sync()
            t0 = time.perf_counter()
            out = runner.embed_token_ids(ids)
            self.sync()
            secs = time.perf_counter() - t0
            return out, secs, warm, sum(lengths), runner.path
        if name in ("index-path", "pool-same-gpu"):
            # what `codesearch index` does: the factory's backend for a document job
            # (embedders.factory.make_embedder, "documents": several GPUs -> MultiGpuEmbedder,
            # else load_local's fastest path), plan() for the job's token count (compiles when
            # that pays off), then the batches streamed on a producer thread while the consumer
            # takes the vectors (Indexer._embed's shape). Indexer._embed runs
            # `job = emb.document_job(texts); job.plan(); job.stream()`; this bench feeds token
            # ids rather than texts, so it calls what that job wraps: plan(tokens), then
            # stream_token_ids(ids).
            import dataclasses
            import queue
            import threading

            from codesearch.embedders.factory import local_options, make_embedder
            from codesearch.embedders.multigpu import MultiGpuEmbedder
            from codesearch.settings import load_settings

            # the settings `codesearch index` would have (the user's config and CODESEARCH_*
            # environment variables), with the bench's device and batch size
            settings = dataclasses.replace(load_settings(), device=self.args.device, batch_tokens=budget)
            t0 = time.perf_counter()
            if name == "pool-same-gpu":  # the pool's code path: 2 workers sharing GPU 0
                emb = MultiGpuEmbedder(self.spec, ["cuda:0", "cuda:0"], local_options(settings), min_tokens=0)
            else:
                emb = make_embedder(self.spec, settings, "documents", None)
            note = emb.plan(sum(lengths))
            warm = time.perf_counter() - t0
            log(f"  {name}: plan -> {note}")
            self.notes.append(f"{name} plan for {sum(lengths)} tokens: {note}")
            out = np.zeros((len(ids), emb.dim), dtype=np.float32)
            done: queue.Queue = queue.Queue(maxsize=16)

            def produce():
                for item in emb.stream_token_ids(ids):
                    done.put(item)
                done.put(None)

            t0 = time.perf_counter()
            threading.Thread(target=produce, daemon=True).start()
            while (item := done.get()) is not None:
                out[item[0]] = item[1]
            self.sync()
            secs = time.perf_counter() - t0
            emb.close()
            return out, secs, warm, sum(lengths), emb.path
        if name.startswith("cpu:"):
            path = name.split(":", 1)[1]
            threads = None
            if "/t" in path:  # cpu:bf16/t2: this strategy on 2 threads
                path, threads = path.split("/t")
            emb = self.embedder(name.split("/t")[0])  # CpuEmbedder, or the plain loop for fp32
            torch.set_num_threads(int(threads or self.args.threads or torch.get_num_threads()))
            emb.token_budget = budget
            t0 = time.perf_counter()
            emb.embed_token_ids(ids[:8])
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = emb.embed_token_ids(ids)
            secs = time.perf_counter() - t0
            from codesearch.embedders.batching import group_by_budget

            batches = group_by_budget(lengths, budget, padded=True, max_items=256)  # as the CPU loops batch
            return (out, secs, warm, padded_tokens(batches, lengths),
                    f"{emb.path}, {torch.get_num_threads()} thread(s)")
        raise ValueError(f"unknown strategy {name}")

    def latency(self, key: str, query_ids: list[int], compiled: bool | None, reps: int = 50):
        import torch

        emb = self.embedder(key)  # "plain" or "packed"
        if compiled is not None and hasattr(emb, "packed"):
            if compiled and not emb.packed.compiled:
                emb.warm_up()
            if not compiled and emb.packed.compiled:
                emb.packed.uncompile()
        for _ in range(5):
            emb.embed_token_ids([query_ids])
        times = []
        for _ in range(reps):
            self.sync()
            t0 = time.perf_counter()
            emb.embed_token_ids([query_ids])  # returns numpy: includes the copy back
            times.append(time.perf_counter() - t0)
        del torch
        return statistics.median(times) * 1000

    def main(self):
        args = self.args
        import torch

        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.spec = resolve_spec(args.model, args.tokenizer, workdir, args.dtype)
        if args.max_tokens:
            self.spec.max_tokens = args.max_tokens
        result = {
            "command": " ".join([Path(sys.executable).name] + sys.argv),
            "model": args.model, "device": args.device, "dtype": args.dtype,
            "device_name": (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                            else platform.processor() or platform.machine()),
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads() if not args.device.startswith("cuda") else None,
            "inputs": args.inputs, "rounds": args.rounds, "results": [], "latency_ms": {}, "notes": [],
        }
        self.notes = result["notes"]
        try:
            import transformers

            result["transformers"] = transformers.__version__
        except ImportError:
            pass
        if args.threads:
            torch.set_num_threads(args.threads)
            result["threads"] = args.threads
        base = self.embedder("plain")
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.inputs.startswith("synthetic:"):
            n = int(args.inputs.split(":", 1)[1])
            hf = base.model  # the HFModel: tokenizer, ids, and the torch module as .model
            eos = hf.eos_id if hf.eos_id is not None else (hf.tokenizer.sep_token_id or 2)
            vocab = min(int(hf.model.config.vocab_size), 151643) - 1
            ids = synthetic_inputs(n, eos, vocab=vocab, cap=min(512, self.spec.max_tokens))
        elif args.inputs.startswith("repo:"):
            texts = repo_texts(args.inputs.split(":", 1)[1], args.units)
            ids = base.tokenize([self.spec.document_prompt + t for t in texts])
        else:
            raise SystemExit("--inputs synthetic:N or repo:PATH")
        lengths = [len(t) for t in ids]
        result["units"] = len(ids)
        result["tokens"] = int(sum(lengths))
        result["length_median"] = float(np.median(lengths))
        result["length_mean"] = float(np.mean(lengths))
        log(f"{len(ids)} inputs, {sum(lengths)} tokens, median {np.median(lengths):.0f}, "
            f"max {max(lengths)}; device {result['device_name']}")
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)

        strategies = []
        for item in args.strategies.split(","):
            item = item.strip()
            units = len(ids)
            if "@" in item:
                item, u = item.rsplit("@", 1)
                units = min(units, int(u))
            name, budget = item.rsplit(":", 1)
            strategies.append((name, int(budget), units))

        refs: dict[str, np.ndarray] = {}

        def reference(units: int) -> np.ndarray:
            """The plain path's vectors (stock transformers forward, padded), once for all inputs."""
            if "all" not in refs:
                ref_emb = self.embedder("plain")
                ref_emb.token_budget = 32768 if args.device.startswith("cuda") else 4096
                most = max(u for _, _, u in strategies)
                refs["all"] = ref_emb.embed_token_ids(ids[:most])
            return refs["all"][:units]

        rows: dict[tuple, list] = {}
        for rnd in range(args.rounds):
            for name, budget, units in strategies:
                sub = ids[:units]
                tokens = sum(len(t) for t in sub)
                self.reset_peak()
                try:
                    vecs, secs, warm, padded, path = self.run_strategy(name, budget, sub)
                except Exception as error:  # noqa: BLE001 - record and go on
                    log(f"  {name}:{budget} failed: {type(error).__name__}: {error}")
                    result["notes"].append(f"{name}:{budget}: {type(error).__name__}: {error}")
                    continue
                cos = (vecs * reference(units)).sum(axis=1)
                row = dict(strategy=name, path=path, batch_tokens=budget, round=rnd, units=units,
                           tokens=tokens, seconds=round(secs, 4),
                           tokens_per_s=round(tokens / secs, 1), units_per_s=round(units / secs, 2),
                           padding=round(1 - tokens / max(1, padded), 4), warm_up_s=round(warm, 2),
                           peak_gib=self.peak_gib(), min_cos=round(float(cos.min()), 6),
                           mean_cos=round(float(cos.mean()), 6))
                rows.setdefault((name, budget), []).append(row)
                result["results"].append(row)
                log(f"  r{rnd} {name:16s} {budget:>7d}  {row['tokens_per_s']:>10,.0f} tok/s  "
                    f"{row['units_per_s']:>8,.1f} units/s  pad {row['padding']:.1%}  warm {warm:.1f} s  "
                    f"peak {row['peak_gib']} GiB  min cos {row['min_cos']:.5f}")
                out_path.write_text(json.dumps(result, indent=1))
        # medians over rounds
        summary = []
        for (name, budget), rs in rows.items():
            summary.append(dict(strategy=name, batch_tokens=budget, path=rs[0]["path"],
                                tokens_per_s=statistics.median(r["tokens_per_s"] for r in rs),
                                units_per_s=statistics.median(r["units_per_s"] for r in rs),
                                padding=rs[0]["padding"], warm_up_s=max(r["warm_up_s"] for r in rs),
                                peak_gib=rs[0]["peak_gib"], min_cos=min(r["min_cos"] for r in rs),
                                rounds=len(rs)))
        result["summary"] = summary

        if args.latency:
            q = ids[0][: max(8, min(len(ids[0]), 32))]
            if args.device.startswith("cuda"):
                for key, compiled in (("plain", None), ("packed", False), ("packed", True)):
                    label = key if compiled is None else ("packed-compiled" if compiled else "packed")
                    try:
                        result["latency_ms"][label] = round(self.latency(key, q, compiled), 3)
                        log(f"  batch-1 latency {label}: {result['latency_ms'][label]:.2f} ms ({len(q)} tokens)")
                    except Exception as error:  # noqa: BLE001
                        result["notes"].append(f"latency {label}: {error}")
            result["latency_query_tokens"] = len(q)
        out_path.write_text(json.dumps(result, indent=1))
        log(f"wrote {out_path}")
        table(result)
        if args.plot:
            plot(result, Path(args.plot))
        return result


def table(result: dict) -> None:
    print(f"\n{result['device_name']}  {result['model']}  {result['units']} units, {result['tokens']} tokens")
    print(f"{'strategy':17s} {'batch':>7s} {'tok/s':>10s} {'units/s':>9s} {'pad':>6s} {'warm s':>7s} "
          f"{'GiB':>6s} {'min cos':>8s}")
    for r in result.get("summary", []):
        print(f"{r['strategy']:17s} {r['batch_tokens']:>7d} {r['tokens_per_s']:>10,.0f} {r['units_per_s']:>9,.1f} "
              f"{r['padding']:>6.1%} {r['warm_up_s']:>7.1f} {str(r['peak_gib']):>6s} {r['min_cos']:>8.5f}")
    for k, v in result.get("latency_ms", {}).items():
        print(f"batch-1 latency {k}: {v:.2f} ms")


def plot(result: dict, path: Path, limit: float | None = None) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install codesearch[bench]); no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    by: dict[str, list] = {}
    for r in result.get("summary", []):
        by.setdefault(r["strategy"], []).append((r["batch_tokens"], r["tokens_per_s"]))
    for name, pts in sorted(by.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if limit:
        ax.axhline(limit, color="grey", linestyle="--", label=f"bf16 peak limit ~{limit:,.0f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per batch")
    ax.set_ylabel("real tokens/s")
    ax.set_title(f"{result['model']} on {result['device_name']} ({result['units']} inputs)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random:qwen3-0.6b")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder for random:* models")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default=None, help="bf16 | fp16 | fp32 (default: the device's)")
    p.add_argument("--inputs", default="synthetic:20000", help="synthetic:N or repo:PATH")
    p.add_argument("--units", type=int, default=2000, help="most inputs taken from a repository")
    p.add_argument("--max-tokens", type=int, default=None, help="cut inputs at this many tokens")
    p.add_argument("--strategies", default=DEFAULT_GPU)
    p.add_argument("--rounds", type=int, default=1, help="alternate the strategies this many times")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--latency", action="store_true", help="also time batch-1 queries")
    p.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/codesearch-bench")
    p.add_argument("--out", default="embed_throughput.json")
    p.add_argument("--plot", default=None, help="PNG path")
    p.add_argument("--plot-only", action="store_true", help="redraw --plot from an existing --out JSON")
    p.add_argument("--limit", type=float, default=None, help="draw this tokens/s ceiling on the plot")
    args = p.parse_args(argv)
    if args.plot_only:
        result = json.loads(Path(args.out).read_text())
        table(result)
        plot(result, Path(args.plot), args.limit)
        return
    if args.dtype is None:
        args.dtype = "bf16" if args.device.startswith("cuda") else "fp32"
    Bench(args).main()


if __name__ == "__main__":
    main()
