"""Throughput through `codesearch serve` against the same model in process, in the same run.

Measures end-to-end real tokens/s and units/s of one document job of code pieces:
- in process: the factory's local backend for documents on the device (document_job: tokenize,
  plan (compiles on CUDA), embed), as `codesearch index` runs it without a server;
- through R local `codesearch serve` replicas (R from --replicas), driven by codesearch's own
  client (embedders/remote.py) with --clients requests in flight in all, over loopback HTTP:
  the client sends text, each server tokenizes, batches the concurrent requests and embeds.
  Tokens are the servers' own counts (usage.prompt_tokens), so both sides count real tokens.
On a CPU machine the replicas share the cores (each gets cores / R threads), so 2 replicas show
the HTTP and batching overhead rather than a speed-up; on one GPU, one replica is the
configuration that matters. Writes JSON; the commands behind docs/bench/remote-*.json:

  python bench/remote_throughput.py --model e5-small --device cpu --inputs stdlib:1500 \\
      --replicas 1,2 --out docs/bench/remote-cpu.json
  python bench/remote_throughput.py --model random:qwen3-0.6b --tokenizer .bench_assets/qwen-tokenizer \\
      --device cuda --inputs stdlib:40000 --replicas 1 --clients 16,32 --out docs/bench/remote-gpu-h200.json

Inputs `stdlib:N`: N pieces of real code, runs of 4-60 lines (lognormal, seeded) cut from the
Python standard library's own .py files on this machine, in sorted order (no tree-sitter needed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stdlib_pieces(n: int, seed: int = 0) -> list[str]:
    """N runs of code lines from the standard library's .py files, deterministic."""
    rng = np.random.default_rng(seed)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    out: list[str] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        rel = path.name
        i = 0
        while i < len(lines) and len(out) < n:
            k = int(np.clip(round(math.exp(rng.normal(math.log(14), 0.7))), 4, 60))
            body = "\n".join(lines[i:i + k]).strip()
            if len(body) > 40:
                out.append(f"{rel}\n{body[:1500]}")
            i += k
        if len(out) >= n:
            break
    while len(out) < n:  # a small stdlib: go round again
        out.append(out[len(out) % max(1, len(out))])
    return out


def resolve(args):
    if args.model.startswith("random:"):
        from embed_throughput import random_model_folder

        from codesearch.embedders.models import spec_from_folder

        shape = args.model.split(":", 1)[1]
        folder = random_model_folder(shape, args.tokenizer, Path(args.workdir) / f"random-{shape}-bf16", "bf16")
        return spec_from_folder(folder, str(folder)), str(folder)
    from codesearch.embedders.models import resolve_model

    spec = resolve_model(args.model, allow_download=False)
    return spec, args.model


def in_process(spec, texts, device: str, threads: int | None) -> dict:
    """The local backend the factory picks for a big document job, warmed up, then timed."""
    from codesearch.embedders.local import LocalOptions, load_local

    t0 = time.perf_counter()
    emb = load_local(spec, device, LocalOptions(threads=threads, compile="always" if device == "cuda" else "auto"))
    load_s = time.perf_counter() - t0
    plan = emb.plan(10 ** 12)
    emb.embed_documents(texts[: min(len(texts), 256)])  # warm: kernels, autotuning, allocator
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    job = emb.document_job(texts)
    tokenize_s = time.perf_counter() - t0
    n = 0
    for indices, _vectors in job.stream():
        n += len(indices)
    total = time.perf_counter() - t0
    assert n == len(texts)
    emb.close()
    return {"what": "in-process", "path": emb.path, "plan": plan, "load_s": round(load_s, 2),
            "units": len(texts), "tokens": job.tokens, "tokenize_s": round(tokenize_s, 3), "seconds": round(total, 3),
            "tokens_per_s": round(job.tokens / total), "units_per_s": round(len(texts) / total, 1),
            "embed_only_tokens_per_s": round(job.tokens / max(1e-9, total - tokenize_s))}


def start_servers(model: str, device: str, replicas: int, threads: int | None, job_tokens: int | None) -> list:
    procs = []
    for r in range(replicas):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        if threads:
            env["CODESEARCH_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "codesearch", "serve", "--model", model, "--device", device, "--port", "0"]
        if job_tokens:
            cmd += ["--batch-tokens", str(job_tokens)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append([proc, None, []])
    for entry in procs:  # read each one's stderr until it says where it listens
        proc, _, lines = entry
        for line in proc.stderr:
            lines.append(line.rstrip())
            if " at http://" in line and line.startswith("serving"):
                entry[1] = line.split(" at ", 1)[1].split(" ", 1)[0]
                break
        if entry[1] is None:
            raise RuntimeError("serve did not start:\n" + "\n".join(lines[-20:]))
        threading.Thread(target=lambda s=proc.stderr: [None for _ in s], daemon=True).start()
        log(f"  replica at {entry[1]}: {' | '.join(l for l in lines if l.startswith('model '))}")
    return procs


def through_servers(spec, texts, urls: list[str], clients: int, request_tokens: int) -> dict:
    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    per = max(1, clients // len(urls))
    emb = RemoteEmbedder(spec, make_endpoints(spec, tuple(urls), None, None), in_flight=per,
                         request_tokens=request_tokens)
    emb.embed_documents(texts[: min(len(texts), 512)])  # warm: connections, the servers' first shapes
    counted = [0]

    def progress(n, tokens):
        counted[0] += tokens

    t0 = time.perf_counter()
    job = emb.document_job(texts)
    prepare_s = time.perf_counter() - t0  # the client counts tokens (and cuts long texts) first
    n = 0
    for indices, _vectors in job.stream(progress):
        n += len(indices)
    total = time.perf_counter() - t0
    assert n == len(texts)
    emb.close()
    return {"what": f"{len(urls)} x serve", "replicas": len(urls), "clients": per * len(urls),
            "request_tokens": request_tokens, "units": len(texts), "tokens": counted[0],
            "client_token_count": job.tokens, "client_prepare_s": round(prepare_s, 3), "seconds": round(total, 3), "tokens_per_s": round(counted[0] / total),
            "units_per_s": round(len(texts) / total, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder for random:SHAPE models")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--inputs", default="stdlib:1500")
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--clients", default="8", help="requests in flight in all (comma separated: several runs)")
    ap.add_argument("--request-tokens", type=int, default=8192)
    ap.add_argument("--job-tokens", type=int, default=None, help="the servers' --batch-tokens")
    ap.add_argument("--workdir", default=str(ROOT / ".bench_assets"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    kind, _, count = args.inputs.partition(":")
    if kind != "stdlib":
        raise SystemExit("--inputs must be stdlib:N")
    texts = stdlib_pieces(int(count))
    spec, served = resolve(args)
    cores = len(os.sched_getaffinity(0))
    log(f"{len(texts)} pieces of code; model {spec.id} on {args.device}; {cores} cores")
    rows = [in_process(spec, texts, args.device, None)]
    log(f"in process: {rows[0]['tokens_per_s']:,} tokens/s ({rows[0]['path']})")
    for replicas in [int(r) for r in args.replicas.split(",")]:
        threads = max(1, cores // replicas) if args.device == "cpu" else None
        procs = start_servers(served, args.device, replicas, threads, args.job_tokens)
        try:
            for clients in [int(c) for c in args.clients.split(",")]:
                row = through_servers(spec, texts, [p[1] for p in procs], max(clients, replicas), args.request_tokens)
                row["threads_per_replica"] = threads
                row["vs_in_process"] = round(row["tokens_per_s"] / rows[0]["tokens_per_s"], 3)
                row["vs_in_process_embed_only"] = round(row["tokens_per_s"] / rows[0]["embed_only_tokens_per_s"], 3)
                rows.append(row)
                log(f"{row['what']}, {row['clients']} in flight: {row['tokens_per_s']:,} tokens/s "
                    f"({row['vs_in_process']:.0%} of in process)")
        finally:
            for proc, _url, _lines in procs:
                proc.send_signal(signal.SIGINT)
            for proc, _url, _lines in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    result = {"bench": "remote_throughput", "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "model": args.model, "device": args.device, "inputs": args.inputs, "machine": machine(args.device),
              "results": rows}
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def machine(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cores": len(os.sched_getaffinity(0))}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info


if __name__ == "__main__":
    sys.exit(main())
