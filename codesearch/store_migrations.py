"""The index schema as numbered migrations, so a codesearch upgrade keeps the stored vectors.

Each migration is a function of a sqlite3 connection, applied once, in order, inside one
transaction with the record of it in `_migrations`; an index therefore moves forward
step by step instead of being rebuilt (re-embedding a large repository costs hours on a
CPU). The idea and the shape follow simonw/llm's `embeddings_migrations.py`.

Rules for a new migration: append it (never edit or reorder an applied one), keep vectors,
and make anything derived (the full-text index, the ANN graph) rebuildable from the tables.

Indexes written before migrations existed carry `meta.schema_version = 1`: their tables
are exactly m001's, which is then recorded as applied. Every migrated index carries
`schema_version = 2`, which releases from before migrations refuse ("made by another
codesearch version") instead of writing rows that miss the newer columns.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []
LEGACY_SCHEMA = "1"  # meta.schema_version of indexes from before migrations
MIGRATED_SCHEMA = "2"  # what every migrated index says, so that those releases keep out


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    # one statement at a time: executescript() would commit the migration's transaction
    for statement in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE files (path TEXT PRIMARY KEY, language TEXT NOT NULL, hash TEXT NOT NULL, "
        "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, indexed_at REAL NOT NULL)",
        "CREATE TABLE units (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, "
        "language TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, qualname TEXT NOT NULL, "
        "start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT NOT NULL, "
        "doc TEXT NOT NULL, code TEXT NOT NULL)",
        "CREATE INDEX units_path ON units(path)",
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, unit_id INTEGER NOT NULL, "
        "part INTEGER NOT NULL, text_hash TEXT NOT NULL)",
        "CREATE INDEX chunks_unit ON chunks(unit_id)",
        "CREATE INDEX chunks_hash ON chunks(text_hash)",
        "CREATE TABLE vectors (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL)",
        "CREATE VIRTUAL TABLE units_fts USING fts5(names, path, doc, code, "
        "tokenize = 'unicode61 remove_diacritics 2')",
    ):
        db.execute(statement)


@migration
def m002_secondary_flag(db: sqlite3.Connection) -> None:
    """Whether a unit lies in tests, examples, vendored or generated code, decided once at
    index time (it was re-derived from every unit's path at every query)."""
    from .ranking import is_secondary_path

    db.execute("ALTER TABLE units ADD COLUMN secondary INTEGER NOT NULL DEFAULT 0")
    rows = db.execute("SELECT id, path FROM units").fetchall()
    db.executemany("UPDATE units SET secondary = 1 WHERE id = ?",
                   [(uid,) for uid, path in rows if is_secondary_path(path)])


@migration
def m003_stemmed_full_text(db: sqlite3.Connection) -> None:
    """The full-text index stems English words (FTS5's porter tokenizer over unicode61), so
    "parsing", "parses" and "parser" meet "parse" and a question's tense no longer matters.
    On the development benchmark, with the lexical weight raised to match, every field gained
    (docs/quality.md, "The second step"). The stored texts are re-read from the old table:
    no file is parsed and nothing is embedded again (Newtonsoft.Json's 7,901 units: 0.24 s)."""
    db.execute("CREATE VIRTUAL TABLE units_fts_stemmed USING fts5(names, path, doc, code, "
               "tokenize = 'porter unicode61 remove_diacritics 2')")
    db.execute("INSERT INTO units_fts_stemmed (rowid, names, path, doc, code) "
               "SELECT rowid, names, path, doc, code FROM units_fts")
    db.execute("DROP TABLE units_fts")
    db.execute("ALTER TABLE units_fts_stemmed RENAME TO units_fts")


@migration
def m004_chinese_character_pairs(db: sqlite3.Connection) -> None:
    """Chinese text in the full-text index as overlapping character pairs (text.cjk_bigrams):
    unicode61 kept a whole Chinese clause as one token, so a Chinese question never matched
    a Chinese comment word for word. Only rows with CJK text are rewritten, from their own
    stored text (a second application changes nothing: a pair is its own only pair)."""
    from .text import cjk_bigrams, has_cjk

    rows = [row for row in db.execute("SELECT rowid, names, path, doc, code FROM units_fts")
            if any(has_cjk(col) for col in row[1:])]
    db.executemany("UPDATE units_fts SET names = ?, path = ?, doc = ?, code = ? WHERE rowid = ?",
                   [(*(cjk_bigrams(col) for col in row[1:]), row[0]) for row in rows])


@migration
def m005_secondary_flag_rejudged(db: sqlite3.Connection) -> None:
    """Judge every unit again after `ranking.is_secondary_unit` learnt more names of test
    files (`test.c`, `tests.rs`, `conftest.py`, `*_spec.rb`) and Rust's in-file `mod tests`:
    the flag is decided at index time, so without this an existing index would keep ranking
    hiredis's test.c as library code until each file changed. Only the flag is rewritten;
    nothing is parsed or embedded."""
    from .ranking import is_secondary_unit

    rows = db.execute("SELECT id, path, language, qualname, secondary FROM units").fetchall()
    db.executemany("UPDATE units SET secondary = ? WHERE id = ?",
                   [(int(now), uid) for uid, path, language, qualname, was in rows
                    if (now := is_secondary_unit(path, language, qualname)) != bool(was)])


def applied(db: sqlite3.Connection) -> list[str]:
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").fetchone()
    if not has_table:
        return []
    return [name for (name,) in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def pending(db: sqlite3.Connection) -> list[Migration]:
    done = set(applied(db))
    return [m for m in MIGRATIONS if m.__name__ not in done]


def unknown(db: sqlite3.Connection) -> list[str]:
    """Migrations recorded in the index that this codesearch does not have (a newer version's)."""
    known = {m.__name__ for m in MIGRATIONS}
    return [name for name in applied(db) if name not in known]


def adopt_legacy(db: sqlite3.Connection) -> None:
    """Record m001 for an index from before migrations (schema_version 1, no _migrations)."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    db.execute("INSERT OR IGNORE INTO _migrations VALUES (?, ?)", (m001_initial.__name__, time.time()))


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns their names."""
    done = []
    for m in pending(db):
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            m(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (m.__name__, time.time()))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (MIGRATED_SCHEMA,))
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back itself (disk full)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        done.append(m.__name__)
    return done
