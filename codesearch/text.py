"""Small text facts shared by indexing and search: what counts as Chinese, how identifiers split.

One definition each, so the lexical index, the question planner and the Chinese translator
agree on what a word is.
"""

from __future__ import annotations

import re

# CJK ideographs: Extension A, the Unified block, compatibility ideographs, Extensions B-F
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK = re.compile(f"[{CJK_CLASS}]")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def has_cjk(text: str) -> bool:
    return CJK.search(text) is not None


def split_identifier(word: str) -> list[str]:
    """`parseHTTPConfig_v2` -> ['parse', 'http', 'config', 'v', '2'] (lower case)."""
    parts = []
    for piece in word.split("_"):
        parts.extend(m.group(0).lower() for m in _CAMEL.finditer(piece))
    return parts


def identifier_words(text: str) -> str:
    """Every multi-word identifier of `text` split into its words, for the lexical index."""
    out = []
    for ident in _IDENT.findall(text):
        words = split_identifier(ident)
        if len(words) > 1:
            out.extend(words)
    return " ".join(out)
