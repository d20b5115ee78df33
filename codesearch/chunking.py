"""The text that represents a unit, for the embedding model and for the lexical index.

A unit is embedded as its path, qualified name, doc comment and code. A unit longer
than the budget is split into overlapping windows of lines, each carrying the header
(path, qualified name, signature, doc) so every piece still says what it belongs to.
Search returns one hit per unit whichever piece matched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .extract import Unit
from .text import cjk_bigrams, identifier_words, split_identifier

MAX_CHARS = 1500  # about 400-500 tokens of code for the XLM-R and Qwen tokenizers
OVERLAP_LINES = 4
MAX_PIECES = 16  # per unit
# Per file, the pieces' text may be at most this many times the file's size, plus a constant.
# Real code stays under 2.4x (the stdlib's worst, compileall.py; nested functions repeat their
# inner code), while 300 nested `def`s made 25x (3,034 pieces, hours of embedding).
FILE_AMPLIFICATION = 4
FILE_EXTRA_CHARS = 16 * MAX_CHARS


def header(unit: Unit) -> str:
    """Path and qualified name, then the unit's own doc comment. Not the summary of a method's
    class (extract.Unit.owner_doc): embedded, it moved en R@1 0.725 -> 0.708 on the devset (the
    class's words pull all its methods together) and re-embedded a fifth of the pieces; it
    is in the full-text index instead (lexical_fields; docs/quality.md)."""
    label = unit.qualname if unit.kind != "file" else unit.path
    lines = [f"{unit.path} {label}" if unit.kind != "file" else unit.path]
    if unit.doc:
        lines.append(unit.doc[:600])
    return "\n".join(lines)


def unit_pieces(unit: Unit, max_chars: int = MAX_CHARS) -> list[str]:
    """The texts to embed for one unit: one, or overlapping windows of a long unit."""
    head = header(unit)
    whole = f"{head}\n{unit.code}"
    if len(whole) <= max_chars:
        return [whole]
    piece_head = head if not unit.signature else f"{head}\n{unit.signature}"
    budget = max(200, max_chars - len(piece_head) - 1)
    lines = unit.code.split("\n")
    pieces = []
    start = 0
    while start < len(lines) and len(pieces) < MAX_PIECES:
        size = 0
        end = start
        while end < len(lines) and (size + len(lines[end]) + 1 <= budget or end == start):
            size += len(lines[end][:budget]) + 1
            end += 1
        body = "\n".join(l[:budget] for l in lines[start:end])
        pieces.append(f"{head}\n{body}" if start == 0 else f"{piece_head}\n{body}")
        if end >= len(lines):
            break
        start = max(start + 1, end - OVERLAP_LINES)
    return pieces


def file_pieces(units: list[Unit], source_size: int) -> tuple[list[list[str]], bool]:
    """Each unit's pieces, within the file's budget; and whether the budget cut any.

    Pieces are granted in rounds: every unit's first piece, then every unit's second, and
    so on (the shortest first within a round), so a cut keeps as many units as possible
    findable by their beginning. A unit left without a piece (only when the first pieces
    alone exceed the budget) is still found by the lexical index.
    """
    wanted = [unit_pieces(u) for u in units]
    budget = FILE_AMPLIFICATION * source_size + FILE_EXTRA_CHARS
    if sum(len(p) for ps in wanted for p in ps) <= budget:
        return wanted, False
    granted: list[list[str]] = [[] for _ in units]
    spent = 0
    for part in range(max(len(ps) for ps in wanted)):
        takers = [i for i, ps in enumerate(wanted) if part < len(ps) and len(granted[i]) == part]
        for i in sorted(takers, key=lambda i: (len(wanted[i][part]), i)):
            if spent + len(wanted[i][part]) <= budget:
                granted[i].append(wanted[i][part])
                spent += len(wanted[i][part])
    return granted, True


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def lexical_fields(unit: Unit) -> tuple[str, str, str, str]:
    """(names, path, doc, code) columns of the full-text index; the doc column also holds the
    summary of the method's class; Chinese as character pairs (text.cjk_bigrams), as
    question.lexical_terms cuts a question."""
    names = f"{unit.name} {unit.qualname} {' '.join(split_identifier(unit.name))} " \
            f"{identifier_words(unit.qualname)}"
    path = f"{unit.path} {identifier_words(unit.path)} {' '.join(re.split(r'[/._-]', unit.path))}"
    code = f"{unit.code} {identifier_words(unit.code)}"
    doc = f"{unit.doc}\n{unit.owner_doc}" if unit.owner_doc else unit.doc
    return cjk_bigrams(names), cjk_bigrams(path), cjk_bigrams(doc), cjk_bigrams(code)


@dataclass
class PreparedUnit:
    """A unit with everything the index stores for it, computed where the file was parsed (in
    a worker process for big jobs): its texts to embed, their hashes, and its full-text fields."""

    unit: Unit
    texts: list[str]
    hashes: list[str]
    lexical: tuple[str, str, str, str]


def prepare_file(units: list[Unit], source_size: int) -> tuple[list[PreparedUnit], bool]:
    """Every unit of a file prepared, its pieces within the file's budget (file_pieces); and
    whether the budget cut any."""
    texts_of_units, capped = file_pieces(units, source_size)
    return [PreparedUnit(u, texts, [text_hash(t) for t in texts], lexical_fields(u))
            for u, texts in zip(units, texts_of_units)], capped
