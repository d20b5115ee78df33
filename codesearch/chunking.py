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
from .text import identifier_words, split_identifier

MAX_CHARS = 1500  # about 400-500 tokens of code for the XLM-R and Qwen tokenizers
OVERLAP_LINES = 4
MAX_PIECES = 16


def header(unit: Unit) -> str:
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


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def lexical_fields(unit: Unit) -> tuple[str, str, str, str]:
    """(names, path, doc, code) columns of the full-text index."""
    names = f"{unit.name} {unit.qualname} {' '.join(split_identifier(unit.name))} " \
            f"{identifier_words(unit.qualname)}"
    path = f"{unit.path} {identifier_words(unit.path)} {' '.join(re.split(r'[/._-]', unit.path))}"
    code = f"{unit.code} {identifier_words(unit.code)}"
    return names, path, unit.doc, code


@dataclass
class PreparedUnit:
    """A unit with everything the index stores for it, computed where the file was parsed (in
    a worker process for big jobs): its texts to embed, their hashes, and its full-text fields."""

    unit: Unit
    texts: list[str]
    hashes: list[str]
    lexical: tuple[str, str, str, str]


def prepare(unit: Unit) -> PreparedUnit:
    texts = unit_pieces(unit)
    return PreparedUnit(unit, texts, [text_hash(t) for t in texts], lexical_fields(unit))
