"""The packed GPU backend: Qwen3-family models on CUDA without padding, compiled when it pays.

It drives gpu_packed.PackedDecoder over a job: packs sequences into batches of real tokens,
pipelines the copies (token ids through pinned memory with non-blocking copies, the next
batch prepared on the CPU while the GPU works, results back the same way), runs a single
short input (a question) through a CUDA graph, and decides whether compiling pays off.

The compile decision: compiling costs ~35 s the first time on a machine and ~8 s once
inductor's and Triton's caches (in codesearch's cache folder) hold the kernels, and roughly
doubles the speed (REF_* rates below, measured on an H100, docs/embedding.md). `plan()`
compiles only when the job's token count wins the warm-up back, and says so in one line.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np

from .base import Batches, Progress
from .batching import group_by_budget
from .cuda_graphs import GRAPH_BUCKETS, GraphedShort
from .gpu_attention import reference_varlen, varlen_supported
from .gpu_packed import DECODER_TYPES, PackedDecoder, from_transformers, inductor_cache_dir
from .hf_model import HFModel, TokenEmbedder

log = logging.getLogger(__name__)

# Measured on one H100 (docs/embedding.md), Qwen3-Embedding-0.6B shape, real tokens/s.
# Used only to decide whether compiling pays off; scaled by the model's size.
REF_PARAMS = 0.44e9
REF_EAGER_RATE = 250_000.0  # packed, eager (flash attention): 257-267k measured
REF_COMPILED_RATE = 480_000.0  # packed, compiled, Triton attention: 479-505k measured
COLD_COMPILE_S = 35.0  # first compilation + attention tuning on a machine (32-36 s measured)
WARM_COMPILE_S = 8.0  # with inductor's and Triton's caches filled (7.4 s measured)
MAX_SEQS = 4096  # sequences per packed batch
COMPILE_CHOICES = ("auto", "always", "never")

_compiled_in_process = False  # a second compilation in one process is quick: it says nothing


def packed_unsupported(model: HFModel, reference_attention: bool = False) -> str:
    """Why the packed path cannot run this model here ("" when it can)."""
    net = model.model
    mtype = getattr(net.config, "model_type", "")
    if mtype not in DECODER_TYPES:
        return f"packed path is for {'/'.join(DECODER_TYPES)} models, not {mtype or 'this model'}"
    if not hasattr(net, "layers") or not hasattr(net, "rotary_emb"):
        return "unexpected model layout"
    if not reference_attention:
        ok, why = varlen_supported(model.device)
        if not ok:
            return why
    rope_type = getattr(net.rotary_emb, "rope_type", "default")
    if rope_type not in ("default", None):
        return f"rope type {rope_type} is not handled by the packed path"
    return ""


def _cache_record():
    return inductor_cache_dir() / "codesearch-compiled.json"


def _compile_key(packed: PackedDecoder) -> str:
    import torch

    name = torch.cuda.get_device_name(packed.device) if packed.device.type == "cuda" else "cpu"
    opts = ",".join(f"{k}={v}" for k, v in sorted(packed.inductor_options.items()))
    return f"{torch.__version__}|{name}|{packed.hq}x{packed.hk}x{packed.d}|{packed.inter}|{packed.dtype}|{opts}"


class PackedGpuEmbedder(TokenEmbedder):
    """The packed forward over an HFModel (a loaded transformers model) or a
    qwen3_native.NativeDecoderModel (weights straight from the checkpoint).

    `attention`: an attention function to use instead of the flash kernel (the CPU tests pass
    gpu_attention.reference_varlen; a native model on the CPU uses it for questions);
    `attention_choice`: the compiled path's ("triton"|"flash"); `compile`: "auto" | "always" |
    "never"; `cuda_graphs`: single short inputs through graphs."""

    def __init__(self, model, token_budget: int | None = None, attention=None,
                 attention_choice: str = "triton", compile: str = "auto", cuda_graphs: bool = True):
        super().__init__(model)
        if isinstance(model, HFModel):
            why = packed_unsupported(model, reference_attention=attention is not None)
            if why:
                raise ValueError(why)
            weights = from_transformers(model.model)
        else:  # qwen3_native.NativeDecoderModel: the checkpoint's weights, no transformers
            weights = model.weights
            if attention is None and model.device == "cpu":
                attention = reference_varlen
        self.packed = PackedDecoder(weights, pooling=model.spec.pooling, attention=attention,
                                    attention_choice=attention_choice)
        self.token_budget = token_budget or 65536
        self.compile_policy = compile
        self.cuda_graphs = cuda_graphs and self.packed.device.type == "cuda"
        self.warm_up_s = 0.0
        self._short_seen: dict[int, int] = {}  # short single inputs per graph bucket so far
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
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
        return total_tokens / (fast if self.packed.compiled else eager)

    def plan(self, total_tokens: int) -> str:
        """Decide whether to compile for a job of `total_tokens`; returns a line for the user."""
        if self.packed.compiled:
            return "packed batches, compiled model (already warm)"
        eager, fast = self._rates()
        warm = self._expected_compile_s()
        saved = total_tokens / eager - total_tokens / fast
        policy = self.compile_policy
        if policy == "never" or (policy == "auto" and saved <= warm):
            need = int(warm / (1 / eager - 1 / fast))
            why = "" if policy == "never" else \
                f" (job of {total_tokens:,} tokens: compiling, ~{warm:.0f} s, pays off above ~{need:,})"
            return f"packed batches, eager model{why}"
        t = self.warm_up()
        return (f"packed batches, compiled model: job of {total_tokens:,} tokens saves "
                f"~{saved:.0f} s, compilation took {t:.1f} s")

    def warm_up(self) -> float:
        """Compile now, on a small packed batch of two sequences, and record the time taken."""
        import torch

        global _compiled_in_process
        with self._lock:
            if self.packed.compiled:
                return 0.0
            first_in_process = not _compiled_in_process
            t0 = time.perf_counter()
            self.packed.compile()
            try:
                tune = getattr(self.packed.attend, "tune", None)
                if tune is not None:  # the Triton attention's autotuning, cached on disk after once
                    tune(self.packed.hq, self.packed.hk, self.packed.d, self.packed.dtype, self.packed.device)
                pad = self.model.pad_id
                for n in (97, 389):  # two sizes: the dynamic-shape graph, not one specialised to a size
                    self._forward([[pad] * (n - 40), [pad] * 40])
                torch.cuda.synchronize(self.packed.device)
            except Exception as error:  # noqa: BLE001 - any compiler failure: stay eager
                log.warning("torch.compile failed (%s); using the eager packed path", error)
                self.packed.uncompile()
                return 0.0
            self.warm_up_s = time.perf_counter() - t0
            _compiled_in_process = True
            if first_in_process:
                self._record_compile_time()
            return self.warm_up_s

    def _record_compile_time(self) -> None:
        from ..fsutil import atomic_write

        try:
            path = _cache_record()
            path.parent.mkdir(parents=True, exist_ok=True)
            rec = json.loads(path.read_text()) if path.exists() else {}
            key = _compile_key(self.packed)
            entry = rec.get(key) if isinstance(rec.get(key), dict) else {}
            entry["warm" if "cold" in entry else "cold"] = round(self.warm_up_s, 2)
            rec[key] = entry
            atomic_write(path, json.dumps(rec, indent=1))
        except (OSError, ValueError):
            pass

    # -- running ----------------------------------------------------------------------------
    def _host_batch(self, seqs: list[list[int]]):
        import torch

        lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        total = int(lens.sum())
        ids = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=total)
        cu = np.zeros(len(seqs) + 1, dtype=np.int32)
        np.cumsum(lens, out=cu[1:])
        pos = np.arange(total, dtype=np.int64) - np.repeat(cu[:-1].astype(np.int64), lens)
        host = torch.from_numpy(np.concatenate([ids, pos, cu[1:].astype(np.int64) - 1]))
        cu_t = torch.from_numpy(cu)
        if self.packed.device.type == "cuda":
            host, cu_t = host.pin_memory(), cu_t.pin_memory()
        return host, cu_t, total, int(lens.max())

    def _launch(self, host, cu_t, total: int, max_len: int):
        import torch

        dev = self.packed.device
        allv = host.to(dev, non_blocking=True)
        cu = cu_t.to(dev, non_blocking=True)
        ids, pos, last = allv[:total], allv[total:2 * total], allv[2 * total:]
        with torch.inference_mode():
            return self.model.pool_vectors(self.packed.forward(ids, pos, cu, max_len, last))

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        return self._launch(*self._host_batch(seqs)).cpu().numpy()

    def _short(self, seq: list[int]) -> np.ndarray | None:
        """A single short input through a CUDA graph (queries); None when none applies."""
        import torch

        if not self.cuda_graphs:
            return None
        bucket = next((b for b in GRAPH_BUCKETS if b > len(seq)), None)
        if bucket is None:
            return None
        with self._lock:
            graph = self.packed.graphs.get(bucket)
            if graph is None:
                # capturing costs ~0.3 s and a replay saves milliseconds: worth it from a bucket's
                # second question on (a daemon, the MCP server), never in a one-question process
                self._short_seen[bucket] = self._short_seen.get(bucket, 0) + 1
                if self._short_seen[bucket] < 2:
                    return None
                from ..phases import phase

                try:
                    with phase("cuda graph capture"):
                        graph = GraphedShort(self.packed, bucket, self.model.pad_id)
                except Exception as error:  # noqa: BLE001 - no graphs: the ordinary path
                    log.info("CUDA graph capture failed (%s); queries run without graphs", error)
                    self.cuda_graphs = False
                    return None
                self.packed.graphs[bucket] = graph
            with torch.inference_mode():
                return self.model.pool_vectors(graph(seq)).cpu().numpy()

    def stream_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> Batches:
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
        batches = group_by_budget([len(t) for t in token_ids], self.token_budget, padded=False, max_items=MAX_SEQS)
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
            prepared = self._host_batch([token_ids[i] for i in batch])  # CPU work while the GPU runs
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
