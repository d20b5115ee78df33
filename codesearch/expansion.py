"""English query expansion for the full-text side: the other words code uses for a question's words.

A question says "combine the defaults with the options" where the code says `mergeConfig`;
embeddings bridge some of that, BM25 none of it. Each word of the question (or of a Chinese
question's English rendering) that belongs to a group in `data/en_synonyms.tsv` adds the other
words of its group as lexical terms. Nothing is added to the embedded text: the model has
its own sense of synonyms, and a rewritten question would cost a second embedding.

The idea is the classic one for code search (WordNet-style expansion of code queries, e.g.
Lu et al., "Query expansion via WordNet for effective code search", SANER 2015); the table is
this project's own, written from general programming vocabulary.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

_SUFFIXES = ("ing", "ed", "es", "s")  # "merging", "merged", "merges" -> "merg"/"merge"


@lru_cache(maxsize=1)
def synonym_groups() -> dict[str, tuple[str, ...]]:
    """word -> every other word of every group it belongs to (read once per process)."""
    text = resources.files("codesearch").joinpath("data/en_synonyms.tsv").read_text(encoding="utf-8")
    out: dict[str, dict[str, None]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = [w.strip().lower() for w in line.split("\t") if w.strip()]
        for w in words:
            out.setdefault(w, {}).update(dict.fromkeys(x for x in words if x != w))
    return {w: tuple(others) for w, others in out.items()}


def _base_forms(word: str) -> list[str]:
    forms = [word]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            forms += [stem, stem + "e"]
    return forms


def synonyms_of(terms: list[str], limit: int) -> list[str]:
    """The synonyms of `terms` that are not terms themselves, in the order of the terms, at most `limit`."""
    groups = synonym_groups()
    own = set(terms)
    out: dict[str, None] = {}
    for term in terms:
        for form in _base_forms(term):
            for other in groups.get(form, ()):
                if len(out) >= limit:
                    return list(out)
                if other not in own:
                    out.setdefault(other)
            if form in groups:
                break
    return list(out)
