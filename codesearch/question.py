"""What to look for, given a question: the texts to embed and the terms for the full-text index.

An English question is embedded as it is and its words (and identifier parts) become
lexical terms. A Chinese question is also rendered in English (codesearch/zh.py), which is
embedded as a second query and adds its words to the terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from .expansion import synonyms_of
from .text import CJK_CLASS, cjk_pairs, has_cjk, split_identifier

_WORD = re.compile(rf"[A-Za-z_][A-Za-z0-9_]*|\d+|[{CJK_CLASS}]+")
STOPWORDS = set("""a an the of to in on for from by with and or is are be it its this that how
what which when where do does i we you my me into as at if not no all any can get given
using use""".split())
# Grammatical particles: a character pair with one of them (数据的, 的校) is no word of the question
_CJK_PARTICLES = set("的了着过吗呢吧啊呀把被")
# A question is cut to at most this many tokens (fewer when the model reads fewer at once): a
# 100 KB question took 120 s on e5-small, the C engine embedding every 512-token window of it,
# and listed its words with a quadratic de-duplication. 256 tokens are some 150 words or 15 lines
# of code, and cost e5-small 0.4 s of one core (512: 1.1 s; bench/hostile_inputs.py). Its
# lexical terms are capped too (each one is an OR branch of the full-text query).
QUESTION_MAX_TOKENS = 256
QUESTION_MAX_TERMS = 64
# Before any token is counted the text is cut at this many characters per allowed token (no
# tokenizer makes tokens longer on average), so counting never costs more than a few KB.
_CHARS_PER_TOKEN_BOUND = 16
_CHARS_PER_TOKEN_GUESS = 4  # when no tokenizer is loaded (lexical-only search)


@dataclass
class QueryPlan:
    texts: list[str]
    terms: list[str]
    is_chinese: bool = False
    expansions: list[str] = field(default_factory=list)  # synonyms of the terms (expansion.py)


def lexical_terms(query: str, limit: int = QUESTION_MAX_TERMS) -> list[str]:
    """Search terms of a question: words and the parts of identifiers, minus stopwords; the
    first `limit` of them."""
    terms: dict[str, None] = {}  # ordered and de-duplicated in O(1) per term
    for word in _WORD.findall(query):
        low = word.lower()
        if low in STOPWORDS:
            continue
        if has_cjk(word):  # Chinese: character pairs, as the index holds it (text.cjk_bigrams)
            parts = [p for p in cjk_pairs(word) if not _CJK_PARTICLES & set(p)] or cjk_pairs(word)[:1]
            for t in parts:
                terms.setdefault(t)
        else:
            parts = split_identifier(word) if re.match(r"[A-Za-z_]", word) else [word]
            for t in [low, *parts]:
                if t and t not in STOPWORDS:
                    terms.setdefault(t)
        if len(terms) >= limit:
            break
    return list(terms)[:limit]


def _cut(text: str, end: int) -> str:
    """`text[:end]`, moved back to the last space in the final fifth when there is one."""
    if end >= len(text):
        return text
    space = text.rfind(" ", end * 4 // 5, end + 1)
    return text[:space if space > 0 else end].rstrip()


def shorten_question(text: str, count_tokens: Callable[[str], int | None] | None,
                     max_tokens: int = QUESTION_MAX_TOKENS) -> tuple[str, str | None]:
    """The question cut to `max_tokens` tokens as `count_tokens` counts them (a guess of
    4 characters a token without it), and a note for the user when it was cut."""
    text = text.strip()
    cut = _cut(text, max_tokens * _CHARS_PER_TOKEN_BOUND)
    count = count_tokens(cut) if count_tokens is not None else None
    if count is None:
        cut = _cut(cut, max_tokens * _CHARS_PER_TOKEN_GUESS)
    elif count > max_tokens:
        lo, hi = 1, len(cut)  # the longest prefix that fits: binary search on its length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (count_tokens(cut[:mid]) or 0) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        cut = _cut(cut, lo)
    if len(cut) == len(text):
        return text, None
    return cut, (f"the question was shortened to its first {len(cut):,} of {len(text):,} characters "
                 f"(at most {max_tokens} tokens are read)")


def plan_question(query: str, translate: bool = True, expand: bool = True) -> QueryPlan:
    """The question itself and, for a Chinese question, its English rendering; with `expand`,
    the other code words for the question's English words (expansion.py), kept apart from
    its own terms because they count for less."""
    plan = QueryPlan(texts=[query], terms=lexical_terms(query), is_chinese=has_cjk(query))
    if plan.is_chinese and translate:
        _add_translation(plan, query)
    if expand:
        plan.expansions = synonyms_of(plan.terms, QUESTION_MAX_TERMS)
    return plan


def _add_translation(plan: QueryPlan, query: str) -> None:
    from .phases import phase
    from .zh import translate as to_english

    with phase("chinese translation"):
        tr = to_english(query)
    if tr.english and tr.english != query:
        plan.texts.append(tr.english)
    plan.terms = list(dict.fromkeys(plan.terms + [t.lower() for t in tr.terms]))
