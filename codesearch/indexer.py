"""Build and update a repository's index, incrementally and safely.

An update:
1. lists the files (all of them, or only the paths a git hook names),
2. re-parses only files whose size, mtime or content hash changed (parsing.py),
3. embeds only texts whose hash has no stored vector (a one-line edit costs one unit),
4. swaps the file's units and chunks in one SQLite transaction (store.py),
5. updates the hnswlib graph in place (or rebuilds it from stored vectors) and saves it
   atomically.
Vectors are committed as they are computed, so an interrupted run loses no embedding
work and leaves the previous index fully usable; the lock keeps two writers apart.

The indexer decides what to embed, never how: `embedder_for(spec, texts)` (the application
layer, over embedders.factory) returns the backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ann import ANN_FILE, STAMP_FILE, AnnIndex
from .embedders import ModelSpec, models_match
from .embedders.spec import model_label
from .errors import CodesearchError, ModelMismatchError
from .chunking import FILE_AMPLIFICATION, PreparedUnit
from .extract import PARSE_BUDGET_S
from .files import DEFAULT_MAX_FILE_SIZE, discover
from .languages import query_files
from .parsing import parse_files
from .phases import phase
from .ranking import is_secondary_unit
from .search import measure_noise_floor, null_question_vectors
from .store import DB_NAME, Store, WriteLock

EMBED_GROUP = 16384  # pieces embedded as one sorted job while parsing goes on
EXTRACTOR_VERSION = "4"  # 2: CR-only line ends, UTF-16 sources, per-file piece budget; 3: C/C++ repairs (c_family.py);
# 4: methods' full-text rows carry their class's doc summary (extract.Unit.owner_doc), C# #if repairs
PREFETCH_MIN_FILES = 100  # new files: enough work that the model is loaded while they are parsed


class Prefetch:
    """Load the embedding model on a thread while the files are read and parsed: a cold index
    run otherwise pays the model's start-up (imports, weights, device) before any parsing."""

    def __init__(self, load):
        self._result = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), name="codesearch-model-load", daemon=True)
        self._thread.start()

    def _run(self, load) -> None:
        try:
            self._result = load()
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the model
            self._error = error

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


@dataclass
class IndexReport:
    files: int = 0
    files_parsed: int = 0
    files_removed: int = 0
    units: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    languages: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    whole_files: dict = field(default_factory=dict)  # path -> why it is one file-level unit (parse budget)
    capped: dict = field(default_factory=dict)  # path -> why some of its pieces were not embedded
    model: str = ""
    device: str = ""
    seconds: float = 0.0
    embed_seconds: float = 0.0
    tokens: int = 0


def extraction_fingerprint() -> str:
    """Changes whenever the grammars or the extractor change, so an upgrade re-extracts."""
    h = hashlib.sha1(EXTRACTOR_VERSION.encode())
    for name, text in query_files().items():
        h.update(name.encode() + text.encode("utf-8"))
    return h.hexdigest()[:16]


class Reporter:
    """Where the indexer reports; the CLI supplies one that draws a progress line."""

    def info(self, msg: str) -> None: ...
    def warn(self, msg: str) -> None: ...
    def start_embedding(self, total_chunks: int, total_tokens: int, device: str,
                        estimate_s: float | None = None) -> None: ...
    def embedded(self, n_chunks: int, n_tokens: int) -> None: ...
    def done_embedding(self) -> None: ...


class Indexer:
    def __init__(self, repo: Path, index_dir: Path, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                 reporter: Reporter | None = None, parse_workers: int = 8,
                 parse_budget_s: float | None = PARSE_BUDGET_S):
        self.repo = repo
        self.index_dir = index_dir
        self.max_file_size = max_file_size
        self.reporter = reporter or Reporter()
        self.parse_workers = parse_workers
        self.parse_budget_s = parse_budget_s

    def run(self, spec_for, embedder_for, rebuild: bool = False, only: list[str] | None = None,
            model_requested: bool = False, meta_for=None) -> IndexReport:
        """Index the repository.

        `spec_for(recorded_model_id_or_None)` returns the ModelSpec to use;
        `embedder_for(spec, texts)` returns the backend for those documents (called only when
        something must be embedded); `meta_for(spec)`, more metadata to record with the model's
        (the embedding servers used), in the same transaction.
        """
        t0 = time.perf_counter()
        with WriteLock(self.index_dir):
            target = self.index_dir
            if rebuild:
                target = self.index_dir / "rebuild.tmp"
                shutil.rmtree(target, ignore_errors=True)
            store = Store(target)
            fresh = not store.exists()
            with phase("index open"):
                store.open(create=True)
            try:
                if not fresh and only is None and not rebuild:
                    store.check(full=True)  # never write into a damaged index (hooks: the open's check)
                recorded = store.get_meta("model")
                previous, reusable = self._previous_model() if rebuild else (None, False)
                keep = recorded or previous  # a rebuild without --model keeps the index's model
                with phase("model spec"):
                    spec = spec_for(None if (model_requested or keep is None) else keep["id"])
                if previous is not None and reusable and models_match(spec, previous):
                    self._reuse_vectors(store, previous.get("dim"))
                if recorded is not None and not models_match(spec, recorded):
                    raise ModelMismatchError(
                        f"this index was built with model {model_label(recorded)}, not "
                        f"{model_label(spec.index_meta())}; "
                        f"run `codesearch index --rebuild --model {spec.id}` to start over with it")
                report = self._update(store, spec, embedder_for, only, fresh, meta_for(spec) if meta_for else {})
            finally:
                store.close()
            if rebuild:
                self._swap_in(target)
        report.seconds = time.perf_counter() - t0
        return report

    def _previous_model(self) -> tuple[dict | None, bool]:
        """The live index's model record (when it can still be read: a rebuild may be fixing a
        damaged index, and keeps its model) and whether its vectors may be reused (only when
        the index passes the full check: a damaged one's vectors may be damaged too)."""
        old = Store(self.index_dir)
        if not old.exists():
            return None, False
        model = None
        try:
            old.open()
            model = old.get_meta("model")
            old.check(full=True)
            return model, True
        except (CodesearchError, sqlite3.DatabaseError) as error:
            if model is None:
                model = _salvage_model_record(self.index_dir / DB_NAME)
            why = getattr(error, "problem", None) or str(error)
            self.reporter.warn(f"warning: the old index is damaged ({why}); none of its vectors are reused")
            return model, False
        finally:
            old.close()

    def _reuse_vectors(self, store: Store, dim: int | None) -> None:
        """Copy the live index's vectors into a rebuild with the same model: nothing is embedded twice."""
        try:
            store.copy_vectors_from(self.index_dir / DB_NAME, dim)
        except Exception as error:  # noqa: BLE001 - a damaged old index only means re-embedding
            self.reporter.warn(f"warning: could not reuse vectors of the old index ({error}); re-embedding")

    def _swap_in(self, built: Path) -> None:
        """Replace the live index files with a completed rebuild."""
        for name in (DB_NAME + "-wal", DB_NAME + "-shm"):
            (self.index_dir / name).unlink(missing_ok=True)
        for name in (DB_NAME, ANN_FILE, STAMP_FILE):
            if (built / name).exists():
                os.replace(built / name, self.index_dir / name)
        shutil.rmtree(built, ignore_errors=True)

    def _plan_reads(self, store: Store, found, only) -> tuple[list, list[str]]:
        """(path, language, old digest) of the files to read, and the indexed paths now gone."""
        known = store.file_states()
        scope = set(only) if only is not None else None
        current = {f.path for f in found.files}
        deleted = [p for p in known if p not in current and (scope is None or p in scope)]
        reextract = store.get_meta("extraction") != extraction_fingerprint()
        to_read = []
        for f in found.files:
            old = None if reextract else known.get(f.path)  # grammars changed: read every file again
            if old is not None and old[3] != f.language.name:
                old = None  # the file's language changed (e.g. a .h header found to be C++)
            if old is not None and old[1] == f.size and old[2] == f.mtime_ns:
                continue  # same size and mtime: not even read
            to_read.append((f.path, f.language.name, old[0] if old else None))
        return to_read, deleted

    def _update(self, store: Store, spec: ModelSpec, embedder_for, only, fresh: bool, extra_meta: dict) -> IndexReport:
        report = IndexReport(model=spec.id)
        with phase("discover"):
            found = discover(self.repo, self.max_file_size, only=only)
        report.skipped = found.skipped
        if only is None and not found.files:
            why = f" ({len(found.skipped)} skipped: binary, too large or symlinks)" if found.skipped else ""
            raise CodesearchError(f"no source files in a supported language under {self.repo}{why}; "
                                  f"nothing to index (see `codesearch index --help` for the languages)")
        with phase("compare with the index"):
            to_read, deleted = self._plan_reads(store, found, only)

        # Read and parse (in worker processes for big jobs, which keep parsing ahead while this
        # process embeds), and embed in groups as pieces accumulate.
        changed: dict[str, tuple[str, list[PreparedUnit] | None]] = {}
        pieces: dict[str, str] = {}
        pending: list[str] = []
        embedder = None
        prefetch = None
        if sum(1 for _p, _l, old in to_read if old is None) >= PREFETCH_MIN_FILES and not store.stored_dim():
            prefetch = Prefetch(lambda: embedder_for(spec, None))  # a first index: embedding is certain

        def model(texts):
            return prefetch.result() if prefetch is not None else embedder_for(spec, texts)

        parsed = parse_files(self.repo, to_read, self.parse_workers, self.parse_budget_s)
        with contextlib.closing(parsed):  # on Ctrl-C the parse workers are shut down here, not at exit
            for path, digest, units, error, note, capped in parsed:
                if error:
                    report.skipped[path] = error
                    continue
                changed[path] = (digest, units)
                if units is None:
                    continue  # touched, same content: refresh mtime only
                if note:
                    report.whole_files[path] = note
                if capped:
                    report.capped[path] = (f"its functions' pieces exceeded {FILE_AMPLIFICATION}x the file's size; "
                                           f"some were not embedded (still found by words)")
                fresh_hashes = []
                for prepared in units:
                    for h, t in zip(prepared.hashes, prepared.texts):
                        if h not in pieces:
                            pieces[h] = t
                            fresh_hashes.append(h)
                new = sorted(set(fresh_hashes) - store.known_vectors(fresh_hashes))
                report.chunks_reused += len(fresh_hashes) - len(new)
                pending.extend(new)
                if len(pending) >= EMBED_GROUP:
                    embedder = embedder or model(None)
                    self._record_model(store, spec, embedder, extra_meta)
                    self._embed(store, embedder, pending, pieces, report)
                    pending = []
        report.files_parsed = sum(1 for v in changed.values() if v[1] is not None)
        if pending:
            embedder = embedder or model([pieces[h] for h in pending])
            self._record_model(store, spec, embedder, extra_meta)
            self._embed(store, embedder, pending, pieces, report)
        elif prefetch is not None and embedder is None:
            embedder = prefetch.result()  # loaded for nothing after all (every vector was known)
        dim = embedder.dim if embedder is not None else (store.get_meta("model") or {}).get("dim")
        if dim is None:  # nothing embedded now: a rebuild that reused every vector knows its size
            dim = store.stored_dim()
        if dim is None:  # nothing to embed and no model recorded yet
            dim = embedder_for(spec, []).dim

        ann = AnnIndex(store.dir, dim)
        with phase("ann load"):
            ann_ok = not fresh and ann.load(store.live_label_stamp())
        removed_chunks: list[int] = []
        added_chunks: list[int] = []
        with phase("store units"), store.transaction():
            for path in deleted + [p for p, v in changed.items() if v[1] is not None]:
                removed_chunks.extend(store.remove_path(path))
            now = time.time()
            files = {f.path: f for f in found.files}
            for path, (digest, units) in changed.items():
                f = files[path]
                store.put_file(path, f.language.name, digest, f.size, f.mtime_ns, now)
                for prepared in units or []:
                    secondary = is_secondary_unit(path, f.language.name, prepared.unit.qualname)
                    added_chunks.extend(store.add_unit(prepared.unit, secondary, prepared.lexical, prepared.hashes))
            meta = spec.index_meta()
            meta["dim"] = dim
            store.set_meta("model", meta)
            for key, value in extra_meta.items():
                store.set_meta(key, value)
            store.set_meta("updated_at", time.time())
            store.set_meta("extraction", extraction_fingerprint())
            store.set_meta("repo", str(self.repo))
            store.collect_garbage()

        stamp = store.live_label_stamp()
        with phase("ann update"):
            if not (ann_ok and ann.update(removed_chunks, *store.vectors_for_chunks(added_chunks))):
                ann.build(*store.vectors_for_chunks())
            ann.save(stamp)
        if embedder is not None and report.chunks_embedded:
            with phase("noise floor"):  # where "no answer" sits: queries calibrate their scores with it
                store.set_meta("noise_floor", measure_noise_floor(embedder, ann, null_question_vectors(store, embedder)))

        stats = store.stats()
        report.files = stats["files"]
        report.units = stats["units"]
        report.languages = stats["languages"]
        report.files_removed = len(deleted)
        return report

    @staticmethod
    def _record_model(store: Store, spec: ModelSpec, embedder, extra_meta: dict) -> None:
        """Before a new index's first vectors are stored, say which model (and servers) make
        them: an interrupted first run then resumes with the same ones, and a re-run with another
        model is refused instead of mixing vectors of two models."""
        if store.get_meta("model") is not None:
            return
        meta = spec.index_meta()
        meta["dim"] = embedder.dim
        with store.transaction():
            store.set_meta("model", meta)
            for key, value in extra_meta.items():
                store.set_meta(key, value)

    def _embed(self, store: Store, embedder, missing: list[str], pieces: dict[str, str],
               report: IndexReport) -> None:
        """Say how long it should take, then embed on a background thread while this thread
        commits each finished batch's vectors (a crash keeps them): the model never waits for
        SQLite, and SQLite stays on the thread that opened it."""
        rep = self.reporter
        with phase("tokenize"):
            job = embedder.document_job([pieces[h] for h in missing])
        report.device = embedder.device
        rep.start_embedding(job.count, job.tokens, embedder.device, estimate_s=job.estimate_s)
        with phase("plan (compile?)"):
            line = job.plan()  # may compile the model when the job is big enough
        if line:
            rep.info(line)
        t0 = time.perf_counter()
        done: queue.Queue = queue.Queue(maxsize=16)
        stop = threading.Event()

        def hand_over(item) -> bool:
            while not stop.is_set():
                try:
                    done.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for item in job.stream(rep.embedded):
                    if not hand_over(item):
                        return
                hand_over(None)
            except BaseException as error:  # noqa: BLE001 - handed to the committing thread
                hand_over(error)

        worker = threading.Thread(target=produce, name="codesearch-embed", daemon=True)
        try:
            worker.start()  # inside the try: Ctrl-C may land while start() waits for the thread
            with phase("embed"):
                while True:
                    item = done.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    sel, vecs = item
                    store.put_vectors([missing[i] for i in sel], vecs)
        except BaseException:
            # Ctrl-C (or a failed commit): let the batch in flight finish before leaving. A
            # daemon thread still inside torch when the interpreter exits is ended with
            # pthread_exit, which C++ turns into std::terminate: the process died of SIGABRT
            # ("terminate called without an active exception") after saying "interrupted".
            stop.set()
            while worker.ident is not None and worker.is_alive():
                worker.join(0.1)
            raise
        worker.join()
        rep.done_embedding()
        report.embed_seconds += time.perf_counter() - t0
        report.chunks_embedded += len(missing)
        report.tokens += job.tokens


def _salvage_model_record(db: Path) -> dict | None:
    """The model record of an index too damaged for Store.open (a missing table, say)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        finally:
            conn.close()
        value = json.loads(row[0]) if row else None
        return value if isinstance(value, dict) and isinstance(value.get("id"), str) else None
    except (sqlite3.Error, ValueError):
        return None


def check_index_dir_writable(index_dir: Path) -> None:
    parent = index_dir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the first existing folder is where the index folder will be made
    if not os.access(parent, os.W_OK):
        raise CodesearchError(f"cannot write the index in {parent}; use --index-dir DIR "
                              f"(or $CODESEARCH_INDEX_DIR) to put it somewhere writable")
