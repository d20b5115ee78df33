"""Spread one embedding job over every visible GPU: one worker per device.

The first device runs in this process (it also serves small jobs and queries, with no
start-up cost); each other device gets a worker process (spawned, so each owns its CUDA
context) that loads the model once (local.load_local, as the first device does) and then
pulls tasks from a shared queue. A task is a run of length-sorted inputs of about
`task_tokens` tokens; results come back tagged with their task, and are merged by input
index, so the output order never depends on which device finished first. Pulling tasks
(rather than splitting the job in N equal parts up front) keeps fast and slow devices equally
busy, and lets the local device start before the workers have loaded the model.

Jobs under `min_tokens` stay on the first device: starting workers and loading the model on
each costs seconds. Works for any number of devices; the splitting and merging run on CPU
devices in tests (tests/test_embed_fast.py).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import asdict

import numpy as np

from .base import Batches, DocumentJob, Embedder, Progress
from .batching import group_by_budget
from .local import LocalOptions, load_local
from .spec import ModelSpec

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def split_work(lengths: list[int], task_tokens: int) -> list[list[int]]:
    """Indices in tasks of about `task_tokens` real tokens, longest inputs first. Every index
    appears in exactly one task; a task holds at least one input."""
    return group_by_budget(lengths, task_tokens, padded=False)


def merge_results(n: int, dim: int, results) -> np.ndarray:
    """Put (indices, vectors) pieces, in any order, back into one [n, dim] array."""
    out = np.zeros((n, dim), dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    for indices, vecs in results:
        if seen[indices].any():
            raise ValueError("an input was embedded twice")
        out[indices] = vecs
        seen[indices] = True
    if not seen.all():
        raise ValueError(f"{int((~seen).sum())} inputs were never embedded")
    return out


def _worker_main(spec_fields: dict, device: str, options: LocalOptions, plan_tokens: int, tasks, results) -> None:
    """One device's worker process: load the model, then embed tasks until told to stop."""
    try:
        emb = load_local(ModelSpec(**spec_fields), device, options)
        note = emb.plan(plan_tokens) if plan_tokens else emb.path
        results.put(("ready", device, note))
    except Exception as error:  # noqa: BLE001 - reported to the parent
        results.put(("error", device, f"{type(error).__name__}: {error}"))
        return
    while True:
        item = tasks.get()
        if item is None:
            return
        task_id, token_ids = item
        try:
            vecs = emb.embed_token_ids(token_ids)
            results.put(("done", task_id, vecs, sum(len(t) for t in token_ids), device))
        except Exception as error:  # noqa: BLE001
            results.put(("failed", task_id, f"{device}: {type(error).__name__}: {error}", device))


class MultiGpuEmbedder(Embedder):
    def __init__(self, spec: ModelSpec, devices: list[str], options: LocalOptions | None = None,
                 min_tokens: int = 2_000_000, task_tokens: int | None = None, notice=None):
        if not devices:
            raise ValueError("no devices")
        self.spec = spec
        self.devices = list(devices)
        self.options = options or LocalOptions()
        self.local = load_local(spec, self.devices[0], self.options)
        self.device = f"{len(self.devices)} x {self.devices[0].split(':')[0]}" if len(self.devices) > 1 \
            else self.devices[0]
        self.dim = self.local.dim
        self.min_tokens = min_tokens
        self.task_tokens = task_tokens or 4 * getattr(self.local, "token_budget", 65536)
        self.notice = notice
        self._procs = []
        self._tasks = None
        self._results = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return f"{self.local.path} x {len(self.devices)} devices"

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.local.embed_queries(texts)

    def query_tokens(self, text: str) -> int | None:
        return self.local.query_tokens(text)

    def estimate_seconds(self, total_tokens: int):
        return self.local.estimate_seconds(total_tokens / len(self.devices))

    def embed_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> np.ndarray:
        return merge_results(len(token_ids), self.dim, self.stream_token_ids(token_ids, progress))

    def stream_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> Batches:
        total = sum(len(t) for t in token_ids)
        if len(self.devices) == 1 or total < self.min_tokens or len(token_ids) < 2:
            yield from self.local.stream_token_ids(token_ids, progress)
            return
        yield from self._spread(token_ids, progress, total)

    def plan(self, total_tokens: int) -> str:
        if len(self.devices) == 1 or total_tokens < self.min_tokens:
            return self.local.plan(total_tokens)
        share = total_tokens // len(self.devices)
        self._start(share)
        return f"spread over {len(self.devices)} devices ({', '.join(self.devices)}); " + self.local.plan(share)

    def document_job(self, texts: list[str]) -> DocumentJob:
        token_ids = self.local.tokenize([self.spec.document_prompt + t for t in texts])
        tokens = sum(len(t) for t in token_ids)
        return DocumentJob(count=len(texts), tokens=tokens, estimate_s=self.estimate_seconds(tokens),
                           run=lambda progress: self.stream_token_ids(token_ids, progress),
                           decide=lambda: self.plan(tokens))

    # -- the pool ---------------------------------------------------------------------------
    def _start(self, plan_tokens: int) -> None:
        import multiprocessing as mp

        with self._lock:
            if self._procs:
                return
            ctx = mp.get_context("spawn")
            self._tasks, self._results = ctx.Queue(), ctx.Queue()
            fields = asdict(self.spec)
            for device in self.devices[1:]:
                p = ctx.Process(target=_worker_main, daemon=True, name=f"codesearch-embed-{device}",
                                args=(fields, device, self.options, plan_tokens, self._tasks, self._results))
                p.start()
                self._procs.append(p)
            atexit.register(self.close)

    def _spread(self, token_ids, progress, total):
        self._start(total // len(self.devices))
        tasks = split_work([len(t) for t in token_ids], self.task_tokens)
        pending = set(range(len(tasks)))
        for task_id, sel in enumerate(tasks):
            self._tasks.put((task_id, [token_ids[i] for i in sel]))
        stop_local = threading.Event()

        def local_worker():  # the first device pulls from the same queue, in this process
            while not stop_local.is_set():
                try:
                    item = self._tasks.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:  # a stop meant for a worker process: put it back
                    self._tasks.put(None)
                    return
                task_id, ids = item
                try:
                    vecs = self.local.embed_token_ids(ids)
                    self._results.put(("done", task_id, vecs, sum(len(t) for t in ids), self.devices[0]))
                except Exception as error:  # noqa: BLE001
                    self._results.put(("failed", task_id, f"{self.devices[0]}: {error}", self.devices[0]))
                    return

        thread = threading.Thread(target=local_worker, daemon=True, name="codesearch-embed-local")
        thread.start()
        start_errors = []
        try:
            while pending:
                try:
                    msg = self._results.get(timeout=1.0)
                except queue.Empty:
                    if not thread.is_alive() and not any(p.is_alive() for p in self._procs):
                        raise RuntimeError("every embedding worker stopped: " + "; ".join(start_errors))
                    continue
                kind = msg[0]
                if kind == "ready":
                    if self.notice:
                        self.notice(f"{msg[1]} ready: {msg[2]}")
                elif kind == "error":
                    start_errors.append(f"{msg[1]}: {msg[2]}")
                    log.warning("embedding worker on %s failed to start: %s", msg[1], msg[2])
                elif kind == "failed":
                    raise RuntimeError(f"embedding failed on {msg[2]}")
                elif kind == "done":
                    _, task_id, vecs, ntok, _device = msg
                    if task_id in pending:
                        pending.discard(task_id)
                        if progress:
                            progress(len(tasks[task_id]), ntok)
                        yield tasks[task_id], vecs
        finally:
            stop_local.set()
            thread.join(timeout=60)

    def close(self) -> None:
        if not self._procs:
            return
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        self._procs = []
