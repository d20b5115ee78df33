"""The plain backend: length-sorted padded batches through the stock transformers model.

It runs every model on every device, and it is the reference the fast paths are tested
against (tests/test_embed_fast.py). Also the path for MPS and for models the packed GPU
path does not know.
"""

from __future__ import annotations

from .base import Batches, Progress
from .batching import group_by_budget
from .hf_model import HFModel, TokenEmbedder


class TransformersEmbedder(TokenEmbedder):
    path = "plain"
    note = ""  # why no faster path runs here, for the plan line

    def __init__(self, model: HFModel, token_budget: int | None = None):
        super().__init__(model)
        self.token_budget = token_budget or (65536 if self.device.startswith("cuda") else 4096)

    def plan(self, total_tokens: int) -> str:
        return "plain loop" + (f" ({self.note})" if self.note else "")

    def estimate_seconds(self, total_tokens: int) -> float | None:
        if self.device != "cpu":
            return None
        from .cpu import estimate_cpu_rate

        return total_tokens / estimate_cpu_rate(self.model.model, "fp32")

    def stream_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> Batches:
        lengths = [len(t) for t in token_ids]
        for batch in group_by_budget(lengths, self.token_budget, padded=True, max_items=256):
            vectors = self.model.forward_ids([token_ids[i] for i in batch])
            if progress:
                progress(len(batch), sum(lengths[i] for i in batch))
            yield batch, vectors
