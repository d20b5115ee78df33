"""Numbered schema migrations: an index from before migrations moves forward and keeps its
vectors; a new index runs them all; an index from a newer codesearch is refused."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from codesearch import store_migrations
from codesearch.errors import CorruptIndexError
from codesearch.store import DB_NAME, Store

# the schema of the releases before migrations (schema_version 1), as they wrote it
LEGACY = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, language TEXT NOT NULL, hash TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE units (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, language TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, qualname TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, signature TEXT NOT NULL, doc TEXT NOT NULL, code TEXT NOT NULL);
CREATE INDEX units_path ON units(path);
CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, unit_id INTEGER NOT NULL, part INTEGER NOT NULL,
    text_hash TEXT NOT NULL);
CREATE TABLE vectors (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE units_fts USING fts5(names, path, doc, code, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO meta VALUES ('model', '{"id": "e5-small", "dim": 4}');
"""


def legacy_index(folder, paths):
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript(LEGACY)
    for i, path in enumerate(paths, 1):
        db.execute("INSERT INTO units VALUES (?, ?, 'python', 'function', ?, ?, 1, 2, '', '', 'pass')",
                   (i, path, f"f{i}", f"f{i}"))
        db.execute("INSERT INTO chunks VALUES (?, ?, 0, ?)", (i, i, f"h{i}"))
        db.execute("INSERT INTO vectors VALUES (?, ?)", (f"h{i}", np.full(4, i, np.float32).tobytes()))
    db.commit()
    db.close()


def legacy_full_text(folder, rows):
    """A legacy index whose units carry these (names, path, doc, code) full-text rows, as the
    releases before m003/m004 wrote them."""
    legacy_index(folder, [path for _, path, _, _ in rows])
    db = sqlite3.connect(folder / DB_NAME)
    db.executemany("INSERT INTO units_fts (rowid, names, path, doc, code) VALUES (?, ?, ?, ?, ?)",
                   [(i, *row) for i, row in enumerate(rows, 1)])
    db.commit()
    db.close()


def matches(folder, expression):
    """Row ids the full-text table gives for a MATCH expression, read without migrating."""
    db = sqlite3.connect(folder / DB_NAME)
    try:
        return [r for (r,) in db.execute("SELECT rowid FROM units_fts WHERE units_fts MATCH ?", (expression,))]
    finally:
        db.close()


def test_legacy_index_moves_forward_and_keeps_its_vectors(tmp_path):
    legacy_index(tmp_path / "idx", ["src/app.py", "tests/test_app.py", "vendor/lib.py"])
    store = Store(tmp_path / "idx").open()
    try:
        assert store.schema_steps() == [m.__name__ for m in store_migrations.MIGRATIONS]
        assert store.secondary_units() == {2, 3}  # m002 judged the existing units by their paths
        assert store.known_vectors(["h1", "h2", "h3"]) == {"h1", "h2", "h3"}
        assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    finally:
        store.close()
    again = Store(tmp_path / "idx").open()  # nothing left to do the second time
    assert store_migrations.pending(again.conn) == []
    again.close()


def test_new_index_runs_every_migration(tmp_path):
    store = Store(tmp_path / "idx").open(create=True)
    try:
        assert store.schema_steps() == [m.__name__ for m in store_migrations.MIGRATIONS]
    finally:
        store.close()


def test_a_failed_migration_changes_nothing(tmp_path, monkeypatch):
    legacy_index(tmp_path / "idx", ["a.py"])

    def broken(db):
        db.execute("ALTER TABLE units ADD COLUMN half_done INTEGER")
        raise RuntimeError("disk trouble")
    broken.__name__ = "m999_broken"
    real = [m.__name__ for m in store_migrations.MIGRATIONS]
    monkeypatch.setattr(store_migrations, "MIGRATIONS", [*store_migrations.MIGRATIONS, broken])
    with pytest.raises(RuntimeError):
        Store(tmp_path / "idx").open()
    db = sqlite3.connect(tmp_path / "idx" / DB_NAME)
    columns = [r[1] for r in db.execute("PRAGMA table_info(units)")]
    assert "half_done" not in columns and "secondary" in columns  # m002 kept, m999 rolled back
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == real  # every real step kept, m999 not


def test_stemmed_full_text_keeps_every_row_and_meets_other_word_forms(tmp_path):
    """m003 re-reads the full-text rows into a porter-stemmed table: "parsing" finds a unit that
    says "parses", which the unstemmed table could not; the rows and their ids are unchanged."""
    legacy_full_text(tmp_path / "idx", [("load_conf load conf", "src/conf.py", "Parses the configuration file.", "pass"),
                                         ("other", "src/other.py", "Something else.", "pass")])
    assert matches(tmp_path / "idx", "parsing") == []
    store = Store(tmp_path / "idx").open()
    try:
        assert set(store.lexical_all(["parsing"])) == {1}
        assert set(store.lexical_all(["configurations"])) == {1}
        assert store.conn.execute("SELECT COUNT(*) FROM units_fts").fetchone()[0] == 2
        assert store.integrity_problem() is None
    finally:
        store.close()


def test_chinese_full_text_rows_become_character_pairs(tmp_path):
    """m004 rewrites the rows that hold Chinese, from their own text, as character pairs: a
    word of a Chinese comment becomes a term a question can meet; other rows stay as they were."""
    legacy_full_text(tmp_path / "idx", [("f1", "src/sum.py", "计算数据的校验和，用于检测传输错误。", "return sum(data)"),
                                         ("f2", "src/other.py", "Something else.", "pass")])
    assert matches(tmp_path / "idx", '"校验"') == []
    store = Store(tmp_path / "idx").open()
    try:
        assert set(store.lexical_all(["校验", "传输"])) == {1}
        assert store.conn.execute("SELECT doc FROM units_fts WHERE rowid = 2").fetchone()[0] == "Something else."
        assert store.integrity_problem() is None
    finally:
        store.close()


def test_secondary_flag_is_judged_again_for_new_test_file_names(tmp_path):
    """m005 judges every unit again: an index that took a top-level test.c, or a Rust function
    in its file's `mod tests`, for library code flags them, and leaves the other flags alone."""
    legacy_index(tmp_path / "idx", ["src/net.c", "test.c", "tests/test_net.py", "src/lib.rs", "src/lib.rs"])
    Store(tmp_path / "idx").open().close()
    db = sqlite3.connect(tmp_path / "idx" / DB_NAME)  # as the releases before m005 left it
    db.execute("UPDATE units SET language = 'rust', qualname = 'tests.parses_levels' WHERE id = 4")
    db.execute("UPDATE units SET language = 'rust', qualname = 'Level.from_str' WHERE id = 5")
    db.execute("UPDATE units SET secondary = 0 WHERE path IN ('test.c', 'src/lib.rs')")
    db.execute("DELETE FROM _migrations WHERE name = 'm005_secondary_flag_rejudged'")
    db.commit()
    db.close()
    store = Store(tmp_path / "idx").open()
    try:
        assert store.secondary_units() == {2, 3, 4}
        assert store.schema_steps() == [m.__name__ for m in store_migrations.MIGRATIONS]
    finally:
        store.close()


def test_index_from_a_newer_codesearch_is_refused(tmp_path):
    Store(tmp_path / "idx").open(create=True).close()
    db = sqlite3.connect(tmp_path / "idx" / DB_NAME)
    db.execute("INSERT INTO _migrations VALUES ('m050_from_the_future', 0)")
    db.commit()
    db.close()
    with pytest.raises(CorruptIndexError, match="newer codesearch"):
        Store(tmp_path / "idx").open()
