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
MEANING = ("id", "pooling", "query_prompt", "document_prompt", "append_eos", "dims", "revision")
# `revision` came with the second e5-small-code weights: an index recorded before then holds
# the first ones, and every other model's index the weights its name alone says
FIRST_REVISIONS = {"e5-small-code": "1"}


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
    # which weights, for a model whose name stays while its weights change (the bundled
    # e5-small-code: offline_model.cache.CODE_PAYLOAD_VERSION); "" for every other model
    revision: str = ""

    def index_meta(self) -> dict:
        """What the index records, to refuse queries embedded differently."""
        d = asdict(self)
        d.pop("source")
        return d


def models_match(spec: ModelSpec, recorded: dict) -> bool:
    mine = spec.index_meta()
    theirs = dict(recorded, revision=recorded_revision(recorded))
    return all(mine.get(k) == theirs.get(k) for k in MEANING)


def recorded_revision(meta: dict) -> str:
    """The weights' revision an index (or a spec's index_meta) records."""
    if meta.get("revision") is not None:
        return str(meta["revision"])
    return FIRST_REVISIONS.get(str(meta.get("id")), "")


def same_weights(spec: ModelSpec, recorded: dict) -> bool:
    """Whether the index's vectors came from the weights this spec loads: the check a query
    makes (the rest of MEANING follows from the recorded id, or from settings such as `dims`
    that the index carries itself)."""
    return spec.revision == recorded_revision(recorded)


def model_label(meta: dict) -> str:
    """A model as messages name it: its id, and its weights' revision where it has one."""
    revision = recorded_revision(meta)
    return f"{meta.get('id')} (weights {revision})" if revision else str(meta.get("id"))
