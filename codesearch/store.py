"""The index on disk: one SQLite database per repository, plus the hnswlib graph beside it.

SQLite holds the truth: files (with content hashes), units (functions with their lines,
doc and code), chunks (the embedded pieces of units, whose ids are the ANN labels), the
vectors themselves keyed by the hash of the text they embed, a full-text index for
lexical search, and metadata (model, dimension, pooling, prompts, schema version).
Because the vectors live here, the hnswlib file is only a cache that can always be
rebuilt without re-embedding, and identical text is never embedded twice.

Writers hold an exclusive lock file, so two indexers never write at once; the database
runs in WAL mode so queries read a consistent snapshot while an update is written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import CorruptIndexError, IndexBusyError, NoIndexError

SCHEMA_VERSION = 1
DB_NAME = "index.db"
LOCK_NAME = "lock"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, language TEXT NOT NULL, hash TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, language TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, qualname TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    signature TEXT NOT NULL, doc TEXT NOT NULL, code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS units_path ON units(path);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, unit_id INTEGER NOT NULL, part INTEGER NOT NULL,
    text_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_unit ON chunks(unit_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(text_hash);
CREATE TABLE IF NOT EXISTS vectors (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS units_fts USING fts5(
    names, path, doc, code, tokenize = 'unicode61 remove_diacritics 2');
"""


class Store:
    """Access to one repository's index folder."""

    def __init__(self, index_dir: Path):
        self.dir = Path(index_dir)
        self.db_path = self.dir / DB_NAME
        self._conn: sqlite3.Connection | None = None

    # -- opening ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.db_path.exists()

    def open(self, create: bool = False) -> "Store":
        if not create and not self.exists():
            raise NoIndexError(f"no index at {self.dir}; run `codesearch index` in the repository first")
        if create:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise IndexBusyError(f"cannot create the index folder {self.dir}: {error.strerror}; "
                                     f"use --index-dir to put the index somewhere writable") from None
            gitignore = self.dir / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# created by codesearch: the index is never committed\n*\n")
        try:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                conn.executescript(SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as error:
            raise CorruptIndexError(f"the index at {self.dir} is unreadable ({error}); "
                                    f"run `codesearch index --rebuild`") from None
        if version is None and create:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version is None or int(version[0]) != SCHEMA_VERSION:
            raise CorruptIndexError(f"the index at {self.dir} was made by another codesearch version; "
                                    f"run `codesearch index --rebuild`")
        self._conn = conn
        return self

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not opened"
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # -- metadata -----------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- files / units ------------------------------------------------------------------
    def file_hashes(self) -> dict[str, tuple[str, int, int]]:
        """path -> (hash, size, mtime_ns) of every indexed file."""
        return {p: (h, s, m) for p, h, s, m in
                self.conn.execute("SELECT path, hash, size, mtime_ns FROM files")}

    def known_vectors(self, hashes: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            q = "SELECT text_hash FROM vectors WHERE text_hash IN (%s)" % ",".join("?" * len(part))
            found.update(h for (h,) in self.conn.execute(q, part))
        return found

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Store embeddings; committed at once so an interrupted run keeps them."""
        rows = [(h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def vectors_for_chunks(self, chunk_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, matrix) for all chunks or the given ones."""
        q = "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.text_hash = c.text_hash"
        rows = []
        if chunk_ids is None:
            rows = self.conn.execute(q + " ORDER BY c.id").fetchall()
        else:
            for i in range(0, len(chunk_ids), 500):
                part = chunk_ids[i:i + 500]
                rows += self.conn.execute(q + " WHERE c.id IN (%s)" % ",".join("?" * len(part)), part).fetchall()
        dim = self.get_meta("model", {}).get("dim", 0)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, mat

    def live_label_stamp(self) -> tuple[int, int]:
        """(count, sum) of chunk ids: what the ANN file must contain to be current."""
        n, s = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(id), 0) FROM chunks").fetchone()
        return int(n), int(s)

    def stats(self) -> dict:
        c = self.conn
        langs = dict(c.execute("SELECT language, COUNT(*) FROM files GROUP BY language ORDER BY 2 DESC"))
        return {
            "files": c.execute("SELECT COUNT(*) FROM files").fetchone()[0],
            "units": c.execute("SELECT COUNT(*) FROM units").fetchone()[0],
            "chunks": c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "vectors": c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0],
            "languages": langs,
        }


class WriteLock:
    """An exclusive, non-blocking lock on the index folder (released if the process dies)."""

    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        if not self.acquire():
            raise IndexBusyError(f"another codesearch process (pid {self.holder()}) is updating this index; "
                                 f"wait for it to finish and run the command again")
        return self

    def __exit__(self, *exc):
        self.release()
