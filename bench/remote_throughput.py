"""Throughput through `codesearch serve` against the same model in process, in the same run.

Measures end-to-end real tokens/s and units/s of one document job of code pieces:
- in process: the factory's local backend for documents on the device (document_job: tokenize,
  plan (compiles on CUDA), embed), as `codesearch index` runs it without a server;
- through R local `codesearch serve` replicas (R from --replicas), driven by codesearch's own
  client (embedders/remote.py) with --clients requests in flight in all, over loopback HTTP:
  the client sends text, each server tokenizes, batches the concurrent requests and embeds.
  Tokens are the servers' own counts (usage.prompt_tokens), so both sides count real tokens.
On a CPU machine the replicas share the cores (each gets cores / R threads), so 2 replicas show
the HTTP and batching overhead rather than a speed-up, and tokens per CPU-second (every process
involved: client, servers) is the figure that other load on a shared machine disturbs least; on
one GPU, one replica is the configuration that matters. Writes JSON; the commands behind docs/bench/remote-*.json:

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
import statistics
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


class InProcess:
    """The local backend the factory picks for a big document job, loaded and warmed once."""

    def __init__(self, spec, texts, device: str):
        from codesearch.embedders.local import LocalOptions, load_local

        t0 = time.perf_counter()
        self.emb = load_local(spec, device, LocalOptions(compile="always" if device == "cuda" else "auto"))
        self.load_s = time.perf_counter() - t0
        self.plan = self.emb.plan(10 ** 12)
        self.emb.embed_documents(texts[: min(len(texts), 256)])  # warm: kernels, autotuning, allocator
        self.device = device

    def measure(self, texts) -> dict:
        """One job, embedded on a background thread as the indexer does (Indexer._embed): on the
        CPU that matters, torch's OpenMP pool runs differently off the main thread."""
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        job = self.emb.document_job(texts)
        tokenize_s = time.perf_counter() - t0
        done = []
        worker = threading.Thread(target=lambda: done.extend(i for b, _v in job.stream() for i in b))
        worker.start()
        worker.join()
        total = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n = len(done)
        assert n == len(texts)
        return {"what": "in-process", "path": self.emb.path, "plan": self.plan, "load_s": round(self.load_s, 2),
                "units": len(texts), "tokens": job.tokens, "tokenize_s": round(tokenize_s, 3),
                "seconds": round(total, 3), "tokens_per_s": round(job.tokens / total),
                "units_per_s": round(len(texts) / total, 1),
                "embed_only_tokens_per_s": round(job.tokens / max(1e-9, total - tokenize_s)),
                "cpu_s": round(cpu, 2), "tokens_per_cpu_s": round(job.tokens / max(1e-9, cpu))}


def cpu_seconds(pids) -> float:
    """CPU time (user + system) the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def start_servers(model: str, device: str, replicas: int, threads: int | None, job_tokens: int | None) -> list:
    procs = []
    for r in range(replicas):
        path = [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
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


def through_servers(spec, texts, urls: list[str], clients: int, request_tokens: int, pids=()) -> dict:
    from codesearch.embedders.remote import RemoteEmbedder, make_endpoints

    per = max(1, clients // len(urls))
    emb = RemoteEmbedder(spec, make_endpoints(spec, tuple(urls), None, None), in_flight=per,
                         request_tokens=request_tokens)
    emb.embed_documents(texts[: min(len(texts), 512)])  # warm: connections, the servers' first shapes
    counted = [0]

    def progress(n, tokens):
        counted[0] += tokens

    t0, c0, s0 = time.perf_counter(), time.process_time(), cpu_seconds(pids)
    job = emb.document_job(texts)
    prepare_s = time.perf_counter() - t0  # the client counts tokens (and cuts long texts) first
    n = 0
    for indices, _vectors in job.stream(progress):
        n += len(indices)
    total = time.perf_counter() - t0
    client_cpu, server_cpu = time.process_time() - c0, cpu_seconds(pids) - s0
    assert n == len(texts)
    emb.close()
    return {"what": f"{len(urls)} x serve", "client_cpu_s": round(client_cpu, 2), "server_cpu_s": round(server_cpu, 2),
            "tokens_per_cpu_s": round(counted[0] / max(1e-9, client_cpu + server_cpu)), "replicas": len(urls),
            "clients": per * len(urls), "request_tokens": request_tokens, "units": len(texts), "tokens": counted[0],
            "client_token_count": job.tokens, "client_prepare_s": round(prepare_s, 3), "seconds": round(total, 3),
            "tokens_per_s": round(counted[0] / total), "units_per_s": round(len(texts) / total, 1)}


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
    ap.add_argument("--rounds", type=int, default=1, help="alternate the configurations this many times")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    kind, _, count = args.inputs.partition(":")
    if kind != "stdlib":
        raise SystemExit("--inputs must be stdlib:N")
    texts = stdlib_pieces(int(count))
    spec, served = resolve(args)
    cores = len(os.sched_getaffinity(0))
    log(f"{len(texts)} pieces of code; model {spec.id} on {args.device}; {cores} cores; {args.rounds} round(s)")
    local = InProcess(spec, texts, args.device)
    sets = {}  # replicas -> server processes, all started up front so the rounds can alternate
    rows = []
    try:
        for replicas in [int(r) for r in args.replicas.split(",")]:
            threads = max(1, cores // replicas) if args.device == "cpu" else None
            sets[replicas] = (threads, start_servers(served, args.device, replicas, threads, args.job_tokens))
        for round_no in range(args.rounds):  # alternate: a noisy machine hits every configuration alike
            base = local.measure(texts)
            base["round"] = round_no
            rows.append(base)
            log(f"round {round_no}: in process {base['tokens_per_s']:,} tokens/s ({base['path']}), "
                f"{base['tokens_per_cpu_s']:,} per CPU-s")
            for replicas, (threads, procs) in sets.items():
                for clients in [int(c) for c in args.clients.split(",")]:
                    row = through_servers(spec, texts, [p[1] for p in procs], max(clients, replicas),
                                          args.request_tokens, [p[0].pid for p in procs])
                    row.update(round=round_no, threads_per_replica=threads,
                               vs_in_process=round(row["tokens_per_s"] / base["tokens_per_s"], 3),
                               vs_in_process_embed_only=round(row["tokens_per_s"] / base["embed_only_tokens_per_s"], 3))
                    rows.append(row)
                    log(f"round {round_no}: {row['what']}, {row['clients']} in flight: {row['tokens_per_s']:,} "
                        f"tokens/s ({row['vs_in_process']:.0%} of in process), {row['tokens_per_cpu_s']:,} per CPU-s")
    finally:
        for _threads, procs in sets.values():
            for proc, _url, _lines in procs:
                proc.send_signal(signal.SIGINT)
            for proc, _url, _lines in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    summary = {}
    for row in rows:
        key = row["what"] + (f", {row['clients']} in flight" if "clients" in row else "")
        summary.setdefault(key, []).append((row["tokens_per_s"], row["tokens_per_cpu_s"]))
    summary = {k: {"median_tokens_per_s": round(statistics.median(a for a, _b in v)),
                   "median_tokens_per_cpu_s": round(statistics.median(b for _a, b in v)),
                   "rounds_tokens_per_s": [a for a, _b in v]} for k, v in summary.items()}
    result = {"bench": "remote_throughput", "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "model": args.model, "device": args.device, "inputs": args.inputs, "machine": machine(args.device),
              "summary": summary, "results": rows}
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
