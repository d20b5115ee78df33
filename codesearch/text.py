"""Small text facts shared by indexing and search: what counts as Chinese, how identifiers split.

One definition each, so the lexical index, the question planner and the Chinese translator
agree on what a word is.
"""

from __future__ import annotations

import re

# CJK ideographs: Extension A, the Unified block, compatibility ideographs, Extensions B-F
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK = re.compile(f"[{CJK_CLASS}]")
_CJK_RUN = re.compile(f"[{CJK_CLASS}]+")

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


def cjk_pairs(run: str) -> list[str]:
    """The overlapping character pairs of a run of CJK ideographs (one character: itself)."""
    return [run] if len(run) < 2 else [run[i:i + 2] for i in range(len(run) - 1)]


def cjk_bigrams(text: str) -> str:
    """`text` with every run of CJK ideographs replaced by its overlapping character pairs.

    Chinese is written without spaces, so SQLite's unicode61 tokenizer makes one token of a
    whole clause ("调用函数失败时按指数退避重试") and no word of a Chinese question could match a
    Chinese comment. Indexing pairs of characters needs no dictionary and treats the index and
    the question alike: 校验和 is 校验 验和 in both (the approach of Lucene's CJKBigramFilter).
    It is done to the text rather than in the tokenizer because FTS5 tokenizers can only be
    written in C: Python's sqlite3 cannot register one.
    """
    if not has_cjk(text):
        return text
    return _CJK_RUN.sub(lambda m: " " + " ".join(cjk_pairs(m.group(0))) + " ", text)
