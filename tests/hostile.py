"""Hostile repositories and damaged indexes, each with the outcome codesearch must reach.

One generator for the robustness tests (tests/test_robustness.py) and the long runs in bench/
(bench/hostile_repos.py prints the table in docs/reliability.md). Every case found by trying
codesearch as a hostile user would (issue 11) is here, so none can come back unnoticed.

`REPO_CASES`: files that one repository holds at once. `build_hostile_repo(folder)` writes them
all into a git repository; after `codesearch index --json`, each case's `check(outcome)` says
whether codesearch did what `expect` says (it raises AssertionError otherwise). Everything is
seeded: the same bytes every run.

`DAMAGES`: ways an index on disk gets damaged, each a function of the index folder, with what
`query`, `status` and `index` must do then.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DATA = Path(__file__).resolve().parent / "data"
ESC = "\x1b"
# terminal control sequences a hostile doc comment or file name may carry
OSC52 = ESC + "]52;c;" + "ZWNobyBwd25lZA==" + "\x07"  # write "echo pwned" to the clipboard
TITLE = ESC + "]0;you have been pwned" + "\x07"
CLEAR = ESC + "[2J" + ESC + "[H"
BIDI = "\u202e"  # right-to-left override ("Trojan Source")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True).stdout.decode()


def index_contents(repo: Path) -> list[tuple]:
    """Every piece of `repo`'s index (path, qualname, lines, part, text hash), sorted: two
    indexes of the same files hold the same, however they got there (kill -9 convergence)."""
    conn = sqlite3.connect(repo / ".codesearch" / "index.db")
    try:
        return sorted(conn.execute("SELECT u.path, u.qualname, u.start_line, u.end_line, c.part, c.text_hash "
                                   "FROM units u JOIN chunks c ON c.unit_id = u.id"))
    finally:
        conn.close()


@dataclass
class Outcome:
    """What one `codesearch index --json` run of the hostile repository gave."""

    report: dict  # the summary (IndexReport as JSON)
    units: dict[str, list[tuple]]  # path -> [(kind, qualname, start_line, end_line)]
    chunks: dict[str, int]  # path -> pieces embedded for it

    def unit_names(self, path: str) -> list[str]:
        return [u[1] for u in self.units.get(path, [])]


@dataclass
class Case:
    name: str
    what: str  # the hostile input, in words
    expect: str  # what codesearch must do, in words
    files: Callable[[Path], None]  # writes the case's files into the repository
    check: Callable[[Outcome], None] = field(default=lambda outcome: None)


def _write(repo: Path, rel: str, data: bytes | str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


# -- the cases --------------------------------------------------------------------------------

def _non_utf8_name(repo: Path) -> None:
    (repo / os.fsdecode(b"x_\xe9.py")).write_text("def latin1_named():\n    return 1\n")


def _check_non_utf8_name(o: Outcome) -> None:
    reasons = [r for p, r in o.report["skipped"].items() if p == "x_\\xe9.py"]
    assert reasons and "not UTF-8" in reasons[0], o.report["skipped"]
    assert "ok.py" in o.units  # the rest of the repository is indexed


def _many_functions(repo: Path) -> None:
    _write(repo, "gen/many.py", "".join(f"def generated_{i}(x):\n    return x + {i}\n\n" for i in range(40)))


def _check_many_functions(o: Outcome) -> None:
    names = o.unit_names("gen/many.py")
    assert len(names) == 40 and names[0] == "generated_0" and names[-1] == "generated_39"


def _nested(repo: Path) -> None:
    _write(repo, "gen/nested.js", "".join("function level%d(x) {\n" % i for i in range(300)) + "}" * 300 + "\n")


def _check_nested(o: Outcome) -> None:
    assert "gen/nested.js" in o.report["capped"], o.report["capped"]
    assert o.chunks["gen/nested.js"] < 80, o.chunks["gen/nested.js"]  # not hundreds of pieces
    assert len(o.units["gen/nested.js"]) == 300  # every unit is still found by its words


def _stall(repo: Path) -> None:
    _write(repo, "src/Stall.kt", (DATA / "kotlin_parser_stall.kt").read_bytes())


def _check_stall(o: Outcome) -> None:
    assert "src/Stall.kt" in o.report["whole_files"], o.report["whole_files"]
    assert o.units["src/Stall.kt"] == [("file", "Stall.kt", 1, o.units["src/Stall.kt"][0][3])]


def _cr_only(repo: Path) -> None:
    _write(repo, "mac.py", b"def first():\r    return 1\r\r\rdef second():\r    return 2\r")


def _check_cr_only(o: Outcome) -> None:
    assert sorted(o.units["mac.py"]) == [("function", "first", 1, 2), ("function", "second", 5, 6)]


def _utf16(repo: Path) -> None:
    _write(repo, "wide_le.py", "def wide_little():\n    return 'é'\n".encode("utf-16"))  # BOM + LE
    _write(repo, "wide_be.py", b"\xfe\xff" + "def wide_big():\n    return 1\n".encode("utf-16-be"))


def _check_utf16(o: Outcome) -> None:
    assert o.unit_names("wide_le.py") == ["wide_little"] and o.unit_names("wide_be.py") == ["wide_big"]


def _noise(repo: Path) -> None:
    rng = random.Random(11)
    _write(repo, "noise.c", bytes(b for b in rng.randbytes(6000) if b))


def _check_noise(o: Outcome) -> None:
    assert o.report["skipped"].get("noise.c") == "binary", o.report["skipped"].get("noise.c")


def _long_path(repo: Path) -> None:
    # a path longer than PATH_MAX in git's index (a crafted tree can hold one; no checkout can)
    long_rel = "/".join(f"d{i:02d}" + "x" * 200 for i in range(21)) + "/deep.py"
    proc = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"def deep():\n    pass\n",
                          capture_output=True, check=True)
    sha = proc.stdout.decode().strip()
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{sha},{long_rel}")


def _check_long_path(o: Outcome) -> None:
    reasons = [r for p, r in o.report["skipped"].items() if p.endswith("/deep.py")]
    assert reasons and reasons[0].startswith("path too long"), o.report["skipped"]


def _escapes(repo: Path) -> None:
    doc = f"Looks harmless.{OSC52}{TITLE}{CLEAR} {BIDI}gnirts desrever"
    _write(repo, "docs_attack.py", f'def terminal_attack():\n    """{doc}"""\n    return 1\n')
    _write(repo, f"name{ESC}[31mred.py", "def red_named_file():\n    return 2\n")


def _check_escapes(o: Outcome) -> None:
    assert o.unit_names("docs_attack.py") == ["terminal_attack"]
    assert o.unit_names(f"name{ESC}[31mred.py") == ["red_named_file"]  # indexed as is, shown escaped


def _plain(repo: Path) -> None:
    _write(repo, "ok.py", 'def read_csv_sorted(path):\n    """Read a CSV file and sort its rows."""\n'
                          '    return sorted(open(path))\n')


def _check_plain(o: Outcome) -> None:
    assert o.unit_names("ok.py") == ["read_csv_sorted"]


def _empty_and_odd(repo: Path) -> None:
    _write(repo, "empty.py", b"")
    _write(repo, "bom_only.py", b"\xef\xbb\xbf")
    _write(repo, "one_line.js", "var a=" + "[" * 5000 + "]" * 5000 + ";\n")  # deep nesting, one line
    _write(repo, "huge_line.py", "x = '" + "a" * 200_000 + "'\n")


def _check_empty_and_odd(o: Outcome) -> None:
    for path in ("bom_only.py", "one_line.js", "huge_line.py"):
        assert path in o.units, path  # each is indexed (as a file unit), none stops the run
    assert o.chunks["huge_line.py"] <= 16


REPO_CASES: list[Case] = [
    Case("plain", "an ordinary function next to the hostile files", "indexed and found", _plain, _check_plain),
    Case("non_utf8_name", "a file name that is not UTF-8 (x_\\xe9.py)",
         "skipped with the reason 'file name is not UTF-8'; the rest is indexed (was: the whole run failed)",
         _non_utf8_name, _check_non_utf8_name),
    Case("many_functions", "40 functions in one file (the bench extracts 10,000)",
         "every function extracted, in linear time", _many_functions, _check_many_functions),
    Case("nested", "300 nested JavaScript functions", "the file's pieces are capped at 4x its size "
         "(counted under 'capped'); every function is still a unit", _nested, _check_nested),
    Case("parser_stall", "a 1.4 KB mutated Kotlin file that keeps tree-sitter busy 85 s",
         "parsing stops at the parse_timeout; indexed as one file unit (counted under 'whole_files')",
         _stall, _check_stall),
    Case("cr_only", "CR-only line endings", "line numbers as an editor shows them", _cr_only, _check_cr_only),
    Case("utf16", "UTF-16 sources with a byte order mark (LE and BE)", "decoded and indexed", _utf16, _check_utf16),
    Case("noise", "random bytes without a NUL, named noise.c", "skipped as binary (was: indexed as C)",
         _noise, _check_noise),
    Case("long_path", "a path of 4,300 bytes in git's index", "skipped with the reason 'path too long'",
         _long_path, _check_long_path),
    Case("terminal_escapes", "OSC 52 / OSC 0 / CSI 2J / U+202E in a docstring and ESC in a file name",
         "indexed; human output shows them escaped, JSON keeps them exact", _escapes, _check_escapes),
    Case("odd_files", "an empty file, a BOM alone, 5,000 nested brackets on one line, a 200 KB line",
         "each indexed, none stops the run", _empty_and_odd, _check_empty_and_odd),
]


def build_hostile_repo(folder: Path) -> Path:
    """A git repository holding every case of REPO_CASES (the long path only in git's index)."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", "-b", "main")
    for case in REPO_CASES:
        if case.name != "long_path":
            case.files(folder)
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "hostile")
    _long_path(folder)
    return folder


def read_outcome(report: dict, index_dir: Path) -> Outcome:
    """The units and piece counts per path of an index, with the run's summary."""
    conn = sqlite3.connect(index_dir / "index.db")
    try:
        units: dict[str, list[tuple]] = {}
        for path, kind, qualname, start, end in conn.execute(
                "SELECT path, kind, qualname, start_line, end_line FROM units ORDER BY id"):
            units.setdefault(path, []).append((kind, qualname, start, end))
        chunks = dict(conn.execute("SELECT u.path, COUNT(c.id) FROM units u LEFT JOIN chunks c "
                                   "ON c.unit_id = u.id GROUP BY u.path"))
    finally:
        conn.close()
    return Outcome(report, units, chunks)


# -- damaged indexes ----------------------------------------------------------------------------

@dataclass
class Damage:
    name: str
    what: str
    apply: Callable[[Path], None]  # of the index folder
    query_code: int | None  # exit code of `codesearch query` afterwards (0: it repairs itself or is
    # unaffected; None: 0 or 6, depending on whether the question reads a damaged page)
    status_code: int  # exit code of `codesearch status`
    model_readable: bool = True  # the model record survives: `index --rebuild` keeps the model


def _sql(statement: str) -> Callable[[Path], None]:
    def apply(index_dir: Path) -> None:
        conn = sqlite3.connect(index_dir / "index.db")
        conn.execute(statement)
        conn.commit()
        conn.close()
    return apply


def _scribble(name: str, seed: int, runs: int, width: int, skip: int = 0) -> Callable[[Path], None]:
    """Damage that overwrites `runs` random places of index file `name` with `width` random
    bytes each, past its first `skip` bytes (seeded: the same damage every time)."""
    def apply(index_dir: Path) -> None:
        path = index_dir / name
        data = bytearray(path.read_bytes())
        rng = random.Random(seed)
        for _ in range(runs):
            i = rng.randrange(skip, len(data) - width)
            data[i:i + width] = rng.randbytes(width)
        path.write_bytes(bytes(data))
    return apply


_random_pages = _scribble("index.db", 5, 20, 64, skip=4096)  # past the header page, which SQLite checks first
_ann_random_bytes = _scribble("vectors.hnsw", 9, 50, 16)


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def apply(index_dir: Path) -> None:
        path = index_dir / name
        os.truncate(path, int(path.stat().st_size * keep))
    return apply


def _garbage(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda index_dir: (index_dir / name).write_bytes(data)


DAMAGES: list[Damage] = [
    Damage("random_pages", "20 runs of 64 random bytes written into index.db's pages", _random_pages, None, 6),
    Damage("dropped_fts", "the full-text table dropped", _sql("DROP TABLE units_fts"), 6, 6),
    Damage("changed_dim", "the model record says 512 dimensions, the vectors have 384",
           _sql("UPDATE meta SET value = json_set(value, '$.dim', 512) WHERE key = 'model'"), 6, 6),
    Damage("truncated_vectors", "a third of the vector rows cut to 100 bytes",
           _sql("UPDATE vectors SET vector = substr(vector, 1, 100) WHERE rowid % 3 = 0"), 6, 6),
    Damage("truncated_db", "index.db cut to half its size", _truncate("index.db", 0.5), 6, 6, False),
    Damage("not_sqlite", "index.db replaced by text", _garbage("index.db", b"this is not sqlite\n" * 200), 6, 6,
           False),
    Damage("ann_random_bytes", "random bytes in the hnswlib graph (hnswlib then crashed the process)",
           _ann_random_bytes, 0, 0),
    Damage("ann_truncated", "the hnswlib graph cut to half", _truncate("vectors.hnsw", 0.5), 0, 0),
    Damage("ann_stamp_garbage", "the graph's stamp file is not JSON", _garbage("vectors.json", b"{nope"), 0, 0),
]


def damage_index(index_dir: Path, damage: Damage) -> None:
    """Apply one damage to a closed index (its WAL folded in first, so the damage is on disk)."""
    conn = sqlite3.connect(index_dir / "index.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for name in ("index.db-wal", "index.db-shm"):
        (index_dir / name).unlink(missing_ok=True)
    damage.apply(index_dir)


def summary_json(stdout: str) -> dict:
    """The JSON summary printed by `codesearch index --json` (the last JSON object of stdout)."""
    start = stdout.index("{")
    return json.loads(stdout[start:])
