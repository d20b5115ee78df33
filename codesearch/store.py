"""The index on disk: one SQLite database per repository, plus the hnswlib graph beside it.

SQLite holds the truth: files (with content hashes), units (functions with their lines,
doc and code), chunks (the embedded pieces of units, whose ids are the ANN labels), the
vectors themselves keyed by the hash of the text they embed, a full-text index for
lexical search, and metadata (model, dimension, pooling, prompts). Because the vectors live
here, the hnswlib file is only a cache that can always be rebuilt without re-embedding,
and identical text is never embedded twice.

Every SQL statement of codesearch is in this class (the schema itself in
store_migrations.py, as numbered migrations), so a schema change is one migration plus the
methods here. Writers hold an exclusive lock file, so two indexers never write at once;
the database runs in WAL mode so queries read a consistent snapshot while an update is
written.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np

from . import store_migrations
from .errors import CorruptIndexError, IndexBusyError, NoIndexError, database_error
from .fsutil import FileLock
from .paths import INDEX_DB

DB_NAME = INDEX_DB
LOCK_NAME = "lock"
TABLES = ("meta", "files", "units", "chunks", "vectors", "units_fts")
REBUILD = "run `codesearch index --rebuild`"
_PARAMS = 500  # ids per IN (...) list, well under SQLite's variable limit


def _chunks(items: list, size: int = _PARAMS):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def fts_match(terms: Iterable[str]) -> str:
    """An FTS5 MATCH expression: any of the terms, each quoted (so no term is an operator)."""
    return " OR ".join('"%s"' % t.replace('"', '""') for t in terms)


# bm25() column weights for (names, path, doc, code): a name match counts most
BM25_WEIGHTS = (10.0, 2.0, 4.0, 1.0)


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
                gitignore = self.dir / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text("# created by codesearch: the index is never committed\n*\n")
            except OSError as error:
                raise IndexBusyError(f"cannot create the index folder {self.dir}: {error.strerror}; "
                                     f"use --index-dir to put the index somewhere writable") from None
        try:
            # check_same_thread off: a hybrid search runs its full-text query in a second
            # thread while the question is embedded (search.Searcher.candidates), one user of
            # the connection at a time
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
            self._upgrade(create)
            problem = self.consistency_problem()
            if problem:
                raise CorruptIndexError(f"the index at {self.dir} is damaged: {problem}; {REBUILD}", problem)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:  # a damaged header can fail to decode
            self.close()
            raise database_error(error, self.dir) from None
        except BaseException:
            self.close()
            raise
        return self

    # -- integrity ----------------------------------------------------------------------
    def consistency_problem(self) -> str | None:
        """What is wrong with the index that a few reads can tell, or None (run on every open).

        Every table is there, the model record names a dimension, and the first and last
        stored vectors have that size. Milliseconds whatever the index's size (see
        bench/integrity_check.py); a damaged page elsewhere surfaces as a DatabaseError when
        read, and `integrity_problem` looks at everything.
        """
        c = self.conn
        present = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        missing = [t for t in TABLES if t not in present]
        if missing:
            return f"table {missing[0]} is missing"
        row = c.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None:
            has_data = c.execute("SELECT 1 FROM units LIMIT 1").fetchone()
            return "it has units but no model record" if has_data else None
        try:
            dim = json.loads(row[0]).get("dim")
        except (ValueError, AttributeError):
            return "its model record is unreadable"
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            return f"its model record gives no valid dimension ({dim!r})"
        for order in ("ASC", "DESC"):
            got = c.execute(f"SELECT length(vector) FROM vectors ORDER BY rowid {order} LIMIT 1").fetchone()
            if got is not None and got[0] != 4 * dim:
                return f"a stored vector has {got[0]} bytes where the model record says {dim} dimensions"
        return None

    def integrity_problem(self, rows: bool = True) -> str | None:
        """Everything `consistency_problem` checks, plus SQLite's `quick_check` of every page,
        the full-text index's own check, the size of every vector (what `index` runs first)
        and, with `rows`, every cell of every row (what `status` adds; see bench/integrity_check.py
        for what each costs)."""
        problem = self.consistency_problem()
        if problem:
            return problem
        rows = [r[0] for r in self.conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            return f"SQLite finds damaged pages ({' '.join(rows[0].split())})"  # its report has line breaks
        try:
            self.conn.execute("INSERT INTO units_fts(units_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as error:
            return f"the full-text index is damaged ({error})"
        dim = (self.get_meta("model") or {}).get("dim")
        if dim:
            bad = self.conn.execute("SELECT COUNT(*) FROM vectors WHERE length(vector) != ?", (4 * dim,)).fetchone()[0]
            if bad:
                return f"{bad} stored vectors have the wrong size"
        return self._rows_problem() if rows else None

    # (table, text columns, integer columns) that _rows_problem reads
    _CELLS = (("files", ("path", "language", "hash"), ("size", "mtime_ns")),
              ("units", ("path", "language", "kind", "name", "qualname", "signature", "doc", "code"),
               ("start_line", "end_line", "secondary")),
              ("chunks", ("text_hash",), ("unit_id", "part")))

    def _rows_problem(self) -> str | None:
        """Cells SQLite's checks cannot judge: text that is not UTF-8, numbers that are not
        integers (random bytes in a page that leave its structure valid). Reads every row once."""
        c = self.conn
        old = c.text_factory
        c.text_factory = bytes
        try:
            for table, texts, numbers in self._CELLS:
                columns = ", ".join(texts + tuple(f"typeof({n})" for n in numbers))
                for row in c.execute(f"SELECT {columns} FROM {table}"):
                    if any(kind != b"integer" for kind in row[len(texts):]):
                        return f"a row of {table} holds a number that is not an integer"
                    try:
                        for cell in row[:len(texts)]:
                            if cell is not None:
                                cell.decode("utf-8")
                    except (UnicodeDecodeError, AttributeError):
                        return f"a row of {table} holds text that is not UTF-8"
        finally:
            c.text_factory = old
        return None

    def check(self, full: bool = False) -> None:
        """Raise CorruptIndexError when the index is damaged (see the two checks above)."""
        try:
            problem = self.integrity_problem(rows=False) if full else self.consistency_problem()
        except sqlite3.DatabaseError as error:
            problem = str(error)
        if problem:
            raise CorruptIndexError(f"the index at {self.dir} is damaged: {problem}; {REBUILD}", problem)

    def _upgrade(self, create: bool) -> None:
        """Bring the schema up to date (a new index runs every migration)."""
        c = self.conn
        tables = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "_migrations" not in tables:
            if "meta" in tables:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None or row[0] != store_migrations.LEGACY_SCHEMA:
                    raise CorruptIndexError(f"the index at {self.dir} was made by another codesearch version; "
                                            f"run `codesearch index --rebuild`")
                store_migrations.adopt_legacy(c)
            elif not create:
                raise CorruptIndexError(f"the index at {self.dir} has no tables; run `codesearch index --rebuild`")
        newer = store_migrations.unknown(c)
        if newer:
            raise CorruptIndexError(f"the index at {self.dir} was made by a newer codesearch (schema step "
                                    f"{newer[-1]}); upgrade codesearch or run `codesearch index --rebuild`")
        store_migrations.migrate(c)

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
            yield self
        except BaseException as error:
            # SQLite itself rolls back after SQLITE_FULL or an I/O error: a second ROLLBACK would
            # fail ("no transaction is active") and hide the error that matters
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.ProgrammingError):
                raise database_error(error, self.dir) from error  # says where, and whether the disk is full
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as error:
                if self.conn.in_transaction:
                    try:
                        self.conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise database_error(error, self.dir) from error

    def schema_steps(self) -> list[str]:
        return store_migrations.applied(self.conn)

    # -- metadata -----------------------------------------------------------------------
    def data_version(self) -> int:
        """SQLite's counter of commits made by *other* connections since this one opened: a
        reader that keeps its connection learns of an indexer's writes without a file stat
        (the WAL file's own mtime changes whenever a connection opens or closes it)."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            raise CorruptIndexError(f"the index at {self.dir} is damaged: its {key!r} record is unreadable; {REBUILD}",
                                    f"its {key!r} record is unreadable") from None

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- files --------------------------------------------------------------------------
    def file_states(self) -> dict[str, tuple[str, int, int, str]]:
        """path -> (content hash, size, mtime_ns, language) of every indexed file."""
        return {p: (h, s, m, lang) for p, h, s, m, lang in
                self.conn.execute("SELECT path, hash, size, mtime_ns, language FROM files")}

    def put_file(self, path: str, language: str, digest: str, size: int, mtime_ns: int, now: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                          (path, language, digest, size, mtime_ns, now))

    def remove_path(self, path: str) -> list[int]:
        """Delete a file's row, units, full-text rows and chunks; returns the removed chunk ids."""
        c = self.conn
        ids = [r[0] for r in c.execute(
            "SELECT c.id FROM chunks c JOIN units u ON u.id = c.unit_id WHERE u.path = ?", (path,))]
        c.execute("DELETE FROM chunks WHERE unit_id IN (SELECT id FROM units WHERE path = ?)", (path,))
        c.execute("DELETE FROM units_fts WHERE rowid IN (SELECT id FROM units WHERE path = ?)", (path,))
        c.execute("DELETE FROM units WHERE path = ?", (path,))
        c.execute("DELETE FROM files WHERE path = ?", (path,))
        return ids

    def add_unit(self, unit, secondary: bool, lexical: tuple[str, str, str, str],
                 hashes: list[str]) -> list[int]:
        """Insert one unit with its full-text row and its chunks; returns the new chunk ids."""
        c = self.conn
        uid = c.execute(
            "INSERT INTO units (path, language, kind, name, qualname, start_line, end_line, signature, doc, "
            "code, secondary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (unit.path, unit.language, unit.kind, unit.name, unit.qualname, unit.start_line, unit.end_line,
             unit.signature, unit.doc, unit.code, int(secondary))).lastrowid
        c.execute("INSERT INTO units_fts (rowid, names, path, doc, code) VALUES (?, ?, ?, ?, ?)", (uid, *lexical))
        return [c.execute("INSERT INTO chunks (unit_id, part, text_hash) VALUES (?, ?, ?)",
                          (uid, part, h)).lastrowid for part, h in enumerate(hashes)]

    # -- vectors ------------------------------------------------------------------------
    def known_vectors(self, hashes: list[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(hashes):
            q = "SELECT text_hash FROM vectors WHERE text_hash IN (%s)" % ",".join("?" * len(part))
            found.update(h for (h,) in self.conn.execute(q, part))
        return found

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Store embeddings; committed at once so an interrupted run keeps them."""
        rows = [(h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def stored_dim(self) -> int | None:
        """The size of the stored vectors (from one row), when the metadata does not say."""
        row = self.conn.execute("SELECT vector FROM vectors LIMIT 1").fetchone()
        return len(row[0]) // 4 if row else None

    def copy_vectors_from(self, other_db: Path, dim: int | None = None) -> None:
        """Copy another index's vectors in (a rebuild with the same model re-embeds nothing);
        with `dim`, only vectors of that size."""
        self.conn.execute("ATTACH DATABASE ? AS old", (str(other_db),))
        try:
            with self.transaction():
                self.conn.execute("INSERT OR IGNORE INTO vectors SELECT text_hash, vector FROM old.vectors "
                                  "WHERE ? IS NULL OR length(vector) = 4 * ?", (dim, dim))
        finally:
            self.conn.execute("DETACH DATABASE old")

    def vectors_for_chunks(self, chunk_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, matrix) for all chunks or the given ones."""
        q = "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.text_hash = c.text_hash"
        rows = []
        if chunk_ids is None:
            rows = self.conn.execute(q + " ORDER BY c.id").fetchall()
        else:
            for part in _chunks(list(chunk_ids)):
                rows += self.conn.execute(q + " WHERE c.id IN (%s)" % ",".join("?" * len(part)), part).fetchall()
        dim = (self.get_meta("model") or {}).get("dim", 0)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        size = 4 * dim if dim else len(rows[0][1])
        if any(len(r[1]) != size for r in rows):
            raise CorruptIndexError(f"the index at {self.dir} is damaged: stored vectors of the wrong size; {REBUILD}")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, mat

    def collect_garbage(self) -> None:
        """Drop cached vectors no chunk uses once they outnumber the used ones."""
        c = self.conn
        used = c.execute("SELECT COUNT(DISTINCT text_hash) FROM chunks").fetchone()[0]
        total = c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        if total > 2 * used + 1000:
            c.execute("DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)")

    def live_label_stamp(self) -> tuple[int, int]:
        """(count, sum) of chunk ids: what the ANN file must contain to be current."""
        n, s = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(id), 0) FROM chunks").fetchone()
        return int(n), int(s)

    # -- what search reads --------------------------------------------------------------
    def chunk_units(self) -> dict[int, int]:
        """chunk id -> unit id, for every chunk."""
        return dict(self.conn.execute("SELECT id, unit_id FROM chunks"))

    def unit_locations(self) -> list[tuple[int, str, str]]:
        """(unit id, path, language) of every unit, for filters."""
        return self.conn.execute("SELECT id, path, language FROM units").fetchall()

    def unit_roles(self) -> list[tuple[int, str, str, str, str, str]]:
        """(unit id, kind, language, name, qualname, signature) of every unit, for ranking priors."""
        return self.conn.execute("SELECT id, kind, language, name, qualname, signature FROM units").fetchall()

    def secondary_units(self) -> set[int]:
        return {uid for (uid,) in self.conn.execute("SELECT id FROM units WHERE secondary = 1")}

    def lexical_search(self, terms: list[str], limit: int) -> list[tuple[int, float]]:
        """Best units by BM25 (higher is better), at most `limit`."""
        sql = ("SELECT rowid, bm25(units_fts, ?, ?, ?, ?) AS s FROM units_fts WHERE units_fts MATCH ? "
               "ORDER BY s LIMIT ?")
        return [(uid, -s) for uid, s in self.conn.execute(sql, (*BM25_WEIGHTS, fts_match(terms), limit))]

    def lexical_all(self, terms: list[str]) -> dict[int, float]:
        """BM25 (higher is better) of every unit that matches any term. One pass: FTS5 scores
        every match to sort them anyway, so a hybrid search that needs the top units *and* the
        scores of the semantic candidates asks once (a second MATCH restricted to the
        candidates' rowids cost more than the first on a 55,000-unit index,
        bench/union_latency.py)."""
        sql = "SELECT rowid, bm25(units_fts, ?, ?, ?, ?) FROM units_fts WHERE units_fts MATCH ?"
        return {uid: -s for uid, s in self.conn.execute(sql, (*BM25_WEIGHTS, fts_match(terms)))}

    def docs_by_id(self, unit_ids: list[int]) -> dict[int, str]:
        """id -> doc comment, for the units that have one."""
        out = {}
        for part in _chunks(list(unit_ids)):
            q = "SELECT id, doc FROM units WHERE doc != '' AND id IN (%s)" % ",".join("?" * len(part))
            out.update(self.conn.execute(q, part))
        return out

    def units_by_id(self, unit_ids: list[int]) -> dict[int, tuple]:
        """id -> (id, path, start_line, end_line, name, qualname, language, kind, signature, doc, code)."""
        out = {}
        for part in _chunks(list(unit_ids)):
            q = ("SELECT id, path, start_line, end_line, name, qualname, language, kind, signature, doc, code "
                 "FROM units WHERE id IN (%s)" % ",".join("?" * len(part)))
            out.update((r[0], r) for r in self.conn.execute(q, part))
        return out

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
    """The index folder's writer lock: one indexer at a time (released if the process dies)."""

    def __init__(self, index_dir: Path, name: str = LOCK_NAME):
        self._lock = FileLock(Path(index_dir) / name)

    def acquire(self, wait: float = 0.0) -> bool:
        return self._lock.acquire(wait)

    def release(self) -> None:
        self._lock.release()

    def held_elsewhere(self) -> bool:
        return self._lock.held_elsewhere()

    def holder(self) -> str:
        pid = self._lock.holder()
        return str(pid) if pid else "?"

    def __enter__(self):
        if not self.acquire():
            raise IndexBusyError(f"another codesearch process (pid {self.holder()}) is updating this index; "
                                 f"wait for it to finish and run the command again")
        return self

    def __exit__(self, *exc):
        self.release()
