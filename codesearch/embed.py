"""Turn texts into unit vectors with a transformers model.

One loop serves every model; a `ModelSpec` says how the model wants to be used:
pooling (`last` token for Qwen3-Embedding, `mean` for e5/MiniLM, `cls`), which side to
pad on, whether an end-of-text token must close every input, and the prompts for
queries and documents. Qwen3-Embedding is used as its model card says: left padding,
`<|endoftext|>` at the end, last-token pooling, `Instruct: ...\\nQuery:` on queries only,
optional Matryoshka truncation, then L2 normalisation.

Batches are built by token budget over length-sorted inputs, so padding stays small.
torch and transformers are imported lazily: commands that need no model stay fast.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class ModelSpec:
    """Everything needed to load a model and use it the way it was trained."""

    id: str  # name recorded in the index: hub id, "e5-small", or a folder path
    source: str  # what from_pretrained loads: a local folder or a hub id
    pooling: str = "mean"  # "last" | "mean" | "cls"
    query_prompt: str = ""
    document_prompt: str = ""
    append_eos: bool = False
    padding_side: str = "right"
    max_tokens: int = 512
    dims: int | None = None  # Matryoshka: keep the first `dims` dimensions
    notes: dict = field(default_factory=dict)

    def index_meta(self) -> dict:
        """What the index records, to refuse queries embedded differently."""
        d = asdict(self)
        d.pop("source")
        d.pop("notes")
        return d


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def usable_cpus() -> int:
    """Cores this process may run on. More torch threads than cores is much slower."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    env = os.environ.get("CODESEARCH_THREADS")
    return max(1, int(env)) if env else max(1, n)


def plan_batches(lengths: list[int], token_budget: int, max_batch: int = 256) -> list[list[int]]:
    """Group input indices into batches of similar length under a padded-token budget.

    Inputs are sorted longest first, so each batch's padded size (count x longest) is
    known when it is closed and the first batch shows the worst-case memory at once.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, lengths[i]) if current else lengths[i]
        if current and (longest_if_added * (len(current) + 1) > token_budget or len(current) >= max_batch):
            batches.append(current)
            current, longest = [], 0
            longest_if_added = lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


class Embedder:
    """A loaded model plus its spec. `embed_documents` and `embed_queries` return float32
    arrays of unit rows."""

    def __init__(self, spec: ModelSpec, device: str = "auto", token_budget: int | None = None,
                 dtype: str | None = None, fast: str | bool = "auto"):
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.spec = spec
        self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(usable_cpus())
        self.token_budget = token_budget or (65536 if self.device.startswith("cuda") else 4096)
        self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
        torch_dtype = self._dtype(dtype)
        model = AutoModel.from_pretrained(spec.source, dtype=torch_dtype)
        self.model = model.to(self.device).eval()
        self.dtype = torch_dtype
        self.eos_id = self.tokenizer.convert_tokens_to_ids("<|endoftext|>") if spec.append_eos else None
        if spec.append_eos and (self.eos_id is None or self.eos_id == self.tokenizer.unk_token_id):
            self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_id if self.eos_id is not None else 0
        self.dim = spec.dims or int(getattr(model.config, "hidden_size"))
        self.fast = None  # a faster runner for embed_token_ids, when one applies
        self.path = "plain"  # what embed_token_ids runs: "plain", "packed", "packed+compiled", "cpu-..."
        self.fast_note = ""
        self._choose_fast_path(fast)

    def _choose_fast_path(self, fast) -> None:
        """Pick the fastest path this model and device allow; the plain loop stays the fallback.

        fast: "auto" (default), False/"never" (plain loop only), or a path name to insist on.
        $CODESEARCH_FAST=0 turns every fast path off."""
        if fast in (False, "never", "plain") or os.environ.get("CODESEARCH_FAST", "1") in ("0", "no", "false"):
            return
        try:
            if self.device.startswith("cuda"):
                from .embed_gpu import make_packed_runner

                runner, why = make_packed_runner(self)
            elif self.device == "cpu":
                from .embed_cpu import make_cpu_runner

                runner, why = make_cpu_runner(self, fast)
            else:
                runner, why = None, f"no fast path for {self.device}"
        except Exception as error:  # noqa: BLE001 - a fast path must never stop indexing
            runner, why = None, f"fast path unavailable ({type(error).__name__}: {error})"
        if runner is None:
            self.fast_note = why
            if fast not in ("auto", True):
                raise ValueError(f"fast path {fast!r} is not available here: {why}")
            log.info("plain embedding loop: %s", why)
            return
        self.fast = runner
        self.path = runner.kind

    def _dtype(self, dtype: str | None):
        import torch

        if dtype:
            return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        if self.device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device == "mps":
            return torch.float16
        return torch.float32  # bf16 on CPUs without native support is several times slower

    # -- tokenisation -------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's limit, EOS appended where the model needs it."""
        limit = self.spec.max_tokens - (1 if self.spec.append_eos else 0)
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=limit,
                             padding=False)["input_ids"]
        if self.spec.append_eos:
            enc = [ids if ids and ids[-1] == self.eos_id else ids + [self.eos_id] for ids in enc]
        return enc

    def pad(self, batch: list[list[int]]):
        """Pad one batch on the model's padding side; returns (input_ids, attention_mask) tensors."""
        import torch

        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            if self.spec.padding_side == "left":
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            else:
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
        return ids, mask

    def pool(self, hidden, mask):
        """Pool token states into one vector per row, truncate (Matryoshka) and normalise."""
        import torch

        if self.spec.pooling == "last":
            if self.spec.padding_side == "left":
                vec = hidden[:, -1]
            else:
                last = mask.sum(dim=1) - 1
                vec = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        elif self.spec.pooling == "cls":
            vec = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        return self.pool_vectors(vec)

    def pool_vectors(self, vec):
        """One pooled row per input -> float32, Matryoshka-truncated, unit length."""
        import torch

        vec = vec.float()
        if self.spec.dims:
            vec = vec[:, : self.spec.dims]
        return torch.nn.functional.normalize(vec, p=2, dim=1)

    def forward_ids(self, batch: list[list[int]]):
        """The plain (reference) path: pad, run the stock transformers model, pool."""
        import torch

        ids, mask = self.pad(batch)
        if self.device.startswith("cuda"):
            ids, mask = ids.pin_memory(), mask.pin_memory()
        with torch.inference_mode():
            ids = ids.to(self.device, non_blocking=True)
            mask = mask.to(self.device, non_blocking=True)
            out = self.model(input_ids=ids, attention_mask=mask)
            return self.pool(out.last_hidden_state, mask).cpu().numpy()

    def plain_embed_token_ids(self, token_ids: list[list[int]], progress=None) -> np.ndarray:
        """The reference loop: length-sorted padded batches through the stock model."""
        out = np.zeros((len(token_ids), self.dim), dtype=np.float32)
        for batch in plan_batches([len(t) for t in token_ids], self.token_budget):
            out[batch] = self.forward_ids([token_ids[i] for i in batch])
            if progress:
                progress(len(batch), sum(len(token_ids[i]) for i in batch))
        return out

    # -- public ------------------------------------------------------------------------
    def embed_token_ids(self, token_ids: list[list[int]], progress=None) -> np.ndarray:
        if self.fast is not None:
            return self.fast.embed(token_ids, progress)
        return self.plain_embed_token_ids(token_ids, progress)

    def embed_stream(self, token_ids: list[list[int]], progress=None, slice_tokens: int = 262144):
        """Yield (indices into token_ids, vectors) as they are computed, so a caller can store
        them while the model works on the next ones. Same vectors as embed_token_ids."""
        if self.fast is not None and hasattr(self.fast, "stream"):
            yield from self.fast.stream(token_ids, progress)
            return
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        start = 0
        while start < len(order):
            end, tokens = start, 0
            while end < len(order) and (tokens < slice_tokens or end == start):
                tokens += len(token_ids[order[end]])
                end += 1
            sel = order[start:end]
            yield sel, self.embed_token_ids([token_ids[i] for i in sel], progress)
            start = end

    def plan(self, total_tokens: int) -> str:
        """Get ready for a job of about `total_tokens` (e.g. compile when that pays off) and
        say in one line how it will run."""
        if self.fast is not None and hasattr(self.fast, "plan"):
            return self.fast.plan(total_tokens)
        return f"{self.path} loop" + (f" ({self.fast_note})" if self.fast_note else "")

    def estimate_seconds(self, total_tokens: int) -> float | None:
        """Rough time to embed `total_tokens` on this device, before starting; None if unknown."""
        if self.fast is not None and hasattr(self.fast, "estimate_seconds"):
            return self.fast.estimate_seconds(total_tokens)
        if self.device == "cpu":
            from .embed_cpu import estimate_cpu_rate

            return total_tokens / estimate_cpu_rate(self)
        return None

    def embed_documents(self, texts: list[str], progress=None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [self.spec.document_prompt + t for t in texts]
        return self.embed_token_ids(self.tokenize(texts), progress)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_token_ids(self.tokenize([self.spec.query_prompt + t for t in texts]))
