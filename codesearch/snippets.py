"""The lines shown with a hit: where it points (`path:line:col`) and which lines surround it.

A hit is a whole function; the line it points at is the one that names it (after any
decorators), the column is where the name starts, counted in bytes from 1 as vim's quickfix
and ripgrep's `--vimgrep` count. Without context flags a hit shows the first lines of its
function; `-B N` / `-A N` / `-C N` show N lines before / after the named line, as grep does
around a matching line, past the ends of the function if asked.

The index keeps every function's first lines (search.SNIPPET_LINES); other lines come from
the file in the repository, and only while it still holds the indexed text at the hit's
lines (after an edit, only the indexed lines are shown, marked stale). The file is read
through files.read_source (the same decoding as indexing), never through a symlink and never
outside the repository.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .files import read_source


@dataclass
class Excerpt:
    first_line: int  # the line number of lines[0]
    lines: list[str]
    cut_before: tuple[int, int] | None  # lines of the function above the excerpt, not shown
    cut_after: tuple[int, int] | None  # lines of the function below it, not shown
    stale: bool = False  # the file changed since it was indexed: only indexed lines are shown


def _name_pattern(name: str) -> re.Pattern:
    return re.compile(r"(?<![\w$])" + re.escape(name) + r"(?![\w$])")


def anchor(hit: dict) -> tuple[int, int]:
    """(line, column) the hit points at: its name in its first lines, else its first non-blank line."""
    lines = (hit.get("snippet") or "").split("\n")
    start = hit["start_line"]
    name = hit.get("name") or ""
    if hit.get("kind") != "file" and name:
        names = [name] + [n for n in re.split(r"::|\.|->|#", name)[-1:] if n and n != name]
        for candidate in names:
            pattern = _name_pattern(candidate)
            for i, line in enumerate(lines):
                m = pattern.search(line)
                if m:
                    return start + i, len(line[:m.start()].encode("utf-8")) + 1
    for i, line in enumerate(lines):
        if line.strip():
            return start + i, len(line[:len(line) - len(line.lstrip())].encode("utf-8")) + 1
    return start, 1


def anchor_text(hit: dict) -> str:
    """The text of the line the hit points at (as stored in the index)."""
    line, _ = anchor(hit)
    lines = (hit.get("snippet") or "").split("\n")
    i = line - hit["start_line"]
    return lines[i] if 0 <= i < len(lines) else ""


def _repo_lines(root: Path, rel: str) -> list[str] | None:
    """The file's lines, decoded as the indexer decodes them; None when it cannot be read
    safely (gone, a symlink now, or a path that leads out of the repository)."""
    if os.path.isabs(rel) or ".." in rel.split("/"):
        return None
    root = Path(root)
    full = root / rel
    try:
        if any(os.path.islink(root.joinpath(*rel.split("/")[:i])) for i in range(1, rel.count("/") + 2)):
            return None
        if not full.resolve().is_relative_to(root.resolve()) or not full.is_file():
            return None
        text, _ = read_source(root, rel)
    except (OSError, ValueError):
        return None
    return text.decode("utf-8", "replace").split("\n")


def excerpt(root: Path, hit: dict, before: int | None = None, after: int | None = None,
            snippet_lines: int = 12) -> Excerpt:
    """The lines to show with `hit`: the function's first `snippet_lines` lines, or, when
    `before`/`after` is given, that many lines around the line it points at."""
    start, end = hit["start_line"], hit["end_line"]
    indexed = (hit.get("snippet") or "").split("\n")
    if before is None and after is None:
        lo, hi = start, min(end, start + max(1, snippet_lines) - 1)
    else:
        line, _ = anchor(hit)
        lo, hi = max(1, line - (before or 0)), line + (after or 0)
    have_lo, have_hi = start, start + len(indexed) - 1
    stale = False
    if have_lo <= lo and hi <= have_hi:
        shown_lo, lines = lo, indexed[lo - start:hi - start + 1]
    else:
        disk = _repo_lines(root, hit["path"])
        if disk is not None and disk[start - 1:start - 1 + len(indexed)] == indexed:
            hi = min(hi, len(disk) if disk[-1] != "" else len(disk) - 1)
            shown_lo, lines = lo, disk[lo - 1:hi]
        else:  # changed (or gone) since indexing: what the index holds
            stale = True
            shown_lo = max(lo, have_lo)
            lines = indexed[shown_lo - start:min(hi, have_hi) - start + 1]
    shown_hi = shown_lo + len(lines) - 1
    cut_before = (start, shown_lo - 1) if shown_lo > start else None
    cut_after = (max(shown_hi + 1, start), end) if shown_hi < end else None
    return Excerpt(shown_lo, lines, cut_before, cut_after, stale)
