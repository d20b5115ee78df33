"""What to look for, given a question: the texts to embed and the terms for the full-text index.

An English question is embedded as it is and its words (and identifier parts) become
lexical terms. A Chinese question is also rendered in English (codesearch/zh.py), which is
embedded as a second query and adds its words to the terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import CJK_CLASS, has_cjk, split_identifier

_WORD = re.compile(rf"[A-Za-z_][A-Za-z0-9_]*|\d+|[{CJK_CLASS}]+")
STOPWORDS = set("""a an the of to in on for from by with and or is are be it its this that how
what which when where do does i we you my me into as at if not no all any can get given
using use""".split())


@dataclass
class QueryPlan:
    texts: list[str]
    terms: list[str]
    is_chinese: bool = False


def lexical_terms(query: str) -> list[str]:
    """Search terms of a question: words and the parts of identifiers, minus stopwords."""
    terms: list[str] = []
    for word in _WORD.findall(query):
        low = word.lower()
        if low in STOPWORDS:
            continue
        parts = split_identifier(word) if re.match(r"[A-Za-z_]", word) else [word]
        for t in [low, *parts]:
            if t and t not in terms and t not in STOPWORDS:
                terms.append(t)
    return terms


def plan_question(query: str, translate: bool = True) -> QueryPlan:
    """The question itself and, for a Chinese question, its English rendering."""
    plan = QueryPlan(texts=[query], terms=lexical_terms(query))
    if not has_cjk(query):
        return plan
    plan.is_chinese = True
    if not translate:
        return plan
    from .phases import phase
    from .zh import translate as to_english

    with phase("chinese translation"):
        tr = to_english(query)
    if tr.english and tr.english != query:
        plan.texts.append(tr.english)
    plan.terms = list(dict.fromkeys(plan.terms + [t.lower() for t in tr.terms]))
    return plan
