"""What a model is and how it wants to be used, independent of where it runs.

A `ModelSpec` travels everywhere an embedding is made or checked: the backends read the
pooling, padding side, prompts and limits from it, and the index records `index_meta()` so a
question is never embedded differently from the code it is compared with. A remote server
only runs the model: the prompts and the normalisation are still ours (see remote.py).

No heavy imports here: the query and hook paths read specs without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# the fields that decide what a vector means; two specs that agree on them are interchangeable
MEANING = ("id", "pooling", "query_prompt", "document_prompt", "append_eos", "dims")


@dataclass
class ModelSpec:
    """Everything needed to load a model and use it the way it was trained."""

    id: str  # name recorded in the index: hub id, "e5-small-code", "e5-small", or a folder path
    source: str  # what from_pretrained loads: a local folder or a hub id
    pooling: str = "mean"  # "last" | "mean" | "cls"
    query_prompt: str = ""
    document_prompt: str = ""
    append_eos: bool = False
    padding_side: str = "right"
    max_tokens: int = 512
    dims: int | None = None  # Matryoshka: keep the first `dims` dimensions

    def index_meta(self) -> dict:
        """What the index records, to refuse queries embedded differently."""
        d = asdict(self)
        d.pop("source")
        return d


def models_match(spec: ModelSpec, recorded: dict) -> bool:
    mine = spec.index_meta()
    return all(mine.get(k) == recorded.get(k) for k in MEANING)
