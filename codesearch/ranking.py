"""How candidate lists become one ranking: score fusion, the demotion of secondary code, and
the calibration of the final scores onto one 0-1 scale (applied last; it never reorders).

Pure functions over (unit id, score) lists, so each can be tested and swept on the
development benchmark (bench/devset_eval.py) without an index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import CJK_CLASS

RRF_K = 60

_SECONDARY_DIRS = {"test", "tests", "__tests__", "testing", "spec", "specs", "testdata", "fixtures",
                   "examples", "example", "samples", "benchmark", "benchmarks", "bench", "vendor",
                   "third_party", "thirdparty", "external", "node_modules", "dist", "build", "generated",
                   "gen", "mocks", "mock"}
# a file named just `test.c`, `tests.rs` or `spec.rb` (hiredis keeps its whole test suite in a
# top-level test.c), pytest's conftest.py, and RSpec's `*_spec.rb` are tests as much as `*_test.go` is
_SECONDARY_FILE = re.compile(
    r"((tests?|spec|conftest)\.\w+|.*_spec\.rb|^test_.*|.*_test\.\w+|.*_tests?\.py"
    r"|.*Tests?\.(java|cs|kt|scala|swift|php)|.*\.(test|spec)\.[jt]sx?"
    r"|.*\.min\.js|.*\.pb\.go|.*_pb2\.py|.*\.generated\.\w+|.*_generated\.\w+)$")


_CONSTRUCTOR_NAMES = {"python": {"__init__", "__new__"}, "php": {"__construct"}, "ruby": {"initialize"},
                      "javascript": {"constructor"}, "typescript": {"constructor"}, "tsx": {"constructor"},
                      "swift": {"init"}, "rust": {"new"}}
_CLASS_NAMED = {"java", "csharp", "cpp", "kotlin", "scala"}  # a constructor is named after its class


def is_constructor(language: str, name: str, qualname: str) -> bool:
    if name in _CONSTRUCTOR_NAMES.get(language, ()):
        return True
    parts = qualname.split(".")
    return language in _CLASS_NAMED and len(parts) > 1 and parts[-2] == name


def is_accessor(language: str, kind: str, signature: str) -> bool:
    """A C# property or indexer with accessor bodies (grammars/csharp.scm extracts them as
    methods): its signature has no parameter list. Such units restate a setting that an enum
    or the code using it explains, and they share that code's words."""
    return language == "csharp" and kind == "method" and "(" not in (signature or "")


def is_secondary_path(path: str) -> bool:
    """Tests, examples, vendored and generated code, judged by path alone."""
    parts = path.split("/")
    if any(p.lower() in _SECONDARY_DIRS or p.lower().endswith((".tests", ".test", "tests")) for p in parts[:-1]):
        return True
    return bool(_SECONDARY_FILE.match(parts[-1]))


# modules that hold a file's own tests: Rust's convention is `#[cfg(test)] mod tests { ... }`
# inside the library file itself, so its path says nothing (rust-lang/log has 81 such functions)
_TEST_MODULES = {"rust": {"tests", "test"}}


def is_secondary_unit(path: str, language: str, qualname: str) -> bool:
    """A unit of tests, examples, vendored or generated code: by its path, or, where the
    language keeps tests beside the code, by the test module that encloses it."""
    if is_secondary_path(path):
        return True
    modules = _TEST_MODULES.get(language)
    return bool(modules) and any(part in modules for part in qualname.split(".")[:-1])


@dataclass
class RankWeights:
    """How the candidate lists are fused; chosen on the development benchmark (docs/quality.md)."""

    semantic: float = 1.0
    translated: float = 1.0  # the English rendering of a Chinese question
    lexical: float = 1.1  # 0.7 before the full-text index stemmed words (store_migrations.m003)
    lexical_zh: float = 1.1
    rrf_k: int = RRF_K
    secondary: float = 0.7  # factor on tests/vendored/generated code
    constructor: float = 0.85  # factor on constructors (they restate what their class holds)
    file_unit: float = 0.6  # factor on whole-file units (files without functions: enums, constants); was 0.85
    accessor: float = 0.7  # factor on C# properties (is_accessor): they name a setting; the code using it acts
    per_file: int = 4  # units of one file ranked at full score (0: no limit); see spread_files
    crowd: float = 0.8  # factor on each unit of a file beyond the first `per_file`
    doc_sentence: float = 0.3  # added times doc_sentence_match (a question that restates a doc sentence)
    fusion: str = "convex"  # "convex" (min-max normalised scores) or "rrf" (ranks)


_MATCH_TOKEN = re.compile(rf"[a-z0-9]+|[{CJK_CLASS}]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n")
DOC_MATCH_MIN_RUN = 3  # words in a row; fewer is what any two sentences about code share
DOC_MATCH_MIN_SHARE = 0.5  # of the longer of question and sentence; less is a shared phrase, not a restatement


def _match_tokens(text: str) -> list[str]:
    return _MATCH_TOKEN.findall(text.lower())


def _longest_run(a: list[str], b: list[str]) -> int:
    """Length of the longest run of tokens that `a` and `b` share in the same order."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


def doc_sentence_match(question: str, doc: str, max_sentences: int = 8) -> float:
    """How closely the question restates one sentence of a doc comment, 0..1.

    People and agents paste a sentence they remember from the documentation ("Adds a log
    record."); neighbouring functions often share most of its words ("Adds a log record at
    the ALERT level."), so bag-of-words signals tie them. This scores the longest run of
    words the question shares, in order, with one sentence, divided by the longer of the
    two: 1.0 for the sentence itself, 0.5 for half of a sentence twice as long.
    """
    q = _match_tokens(question)
    if len(q) < DOC_MATCH_MIN_RUN or not doc:
        return 0.0
    best = 0.0
    for sentence in _SENTENCE_END.split(doc)[:max_sentences]:
        s = _match_tokens(sentence)
        # the run is at most the shorter of the two, so a share of 0.5 needs lengths within 2x:
        # a long pasted question skips the comparison instead of paying len(q) x len(s) for it
        if len(s) < DOC_MATCH_MIN_RUN or not len(q) / 2 <= len(s) <= 2 * len(q):
            continue
        run = _longest_run(q, s)
        share = run / max(len(q), len(s))
        if run >= DOC_MATCH_MIN_RUN and share >= DOC_MATCH_MIN_SHARE:
            best = max(best, share)
    return best


def candidate_pool(k: int) -> int:
    """How many units each signal proposes before fusion (the devset was measured with k=10)."""
    return max(60, 5 * k)


def rrf(rankings: list[list[int]], weights: list[float] | None = None, k: int = RRF_K) -> dict[int, float]:
    """Reciprocal-rank fusion of several best-first lists of ids."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, uid in enumerate(ranking):
            fused[uid] = fused.get(uid, 0.0) + w / (k + rank + 1)
    return fused


def convex(scored_lists: list[list[tuple[int, float]]], weights: list[float]) -> dict[int, float]:
    """Weighted sum of scores min-max normalised within each list (absent: 0)."""
    fused: dict[int, float] = {}
    for items, w in zip(scored_lists, weights):
        if not items:
            continue
        values = [v for _, v in items]
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        for uid, v in items:
            fused[uid] = fused.get(uid, 0.0) + w * (v - lo) / span
    return fused


def fuse(sem_lists: list[list[tuple[int, float]]], lex: list[tuple[int, float]], mode: str,
         is_chinese: bool, weights: RankWeights | None = None) -> list[tuple[int, float]]:
    """One best-first [(unit id, score)] list from the semantic lists (the question, then its
    English rendering) and the lexical list. Fused scores are divided by the best possible
    fused score, so they lie in 0..1."""
    w = weights or RankWeights()
    if mode == "lexical":
        return list(lex)
    if mode == "semantic" and len(sem_lists) == 1:
        return list(sem_lists[0])
    lists = list(sem_lists)
    ws = [w.semantic if i == 0 else w.translated for i in range(len(sem_lists))]
    if mode == "hybrid":
        lists.append(lex)
        ws.append(w.lexical_zh if is_chinese else w.lexical)
    if w.fusion == "convex":
        fused = convex(lists, ws)
        best_possible = sum(ws)
    else:
        fused = rrf([[u for u, _ in items] for items in lists], ws, w.rrf_k)
        best_possible = sum(ws) / (w.rrf_k + 1)  # first in every list
    return sorted(((u, s / best_possible) for u, s in fused.items()), key=lambda x: -x[1])


def demote(ranked: list[tuple[int, float]], secondary: set[int], factor: float) -> list[tuple[int, float]]:
    """Scale the scores of secondary units (tests, vendored, generated) by `factor` and re-sort."""
    if factor >= 1.0 or not ranked:
        return ranked
    return sorted(((u, s * (factor if u in secondary else 1.0)) for u, s in ranked), key=lambda x: -x[1])



def spread_files(ranked: list[tuple[int, float]], file_of: dict[int, str], per_file: int,
                 factor: float) -> list[tuple[int, float]]:
    """Scale by `factor` every unit after the first `per_file` of its own file, then re-sort.

    One file's methods share its words (the class name, the path, its fields), so BM25 can
    fill a result list with one class: a question about buffering returns six methods of
    BufferHandler, and FingersCrossedHandler.handle, the answer, ranks 11th. The best units
    of each file keep their place; the rest of a crowded file make room for other files.
    """
    if per_file <= 0 or factor >= 1.0 or not ranked:
        return ranked
    seen: dict[str, int] = {}
    out = []
    for uid, score in ranked:
        f = file_of.get(uid)
        n = seen[f] = seen.get(f, 0) + 1
        out.append((uid, score * factor if f is not None and n > per_file else score))
    return sorted(out, key=lambda x: -x[1])


@dataclass
class Calibration:
    """Where the raw signals sit on the 0-1 scale every mode prints (`score`, `--threshold`).

    A cosine is placed relative to `floor`, the cosine that questions without an answer reach
    in this index (search.Searcher.noise_floor: a few nonsense questions, measured per index, so
    a model whose cosines run higher or lower moves the scale with it): `floor - below` is 0,
    `floor - below + span` is 1. BM25 has no fixed top: `lexical_half` counts as 0.5. Hybrid
    weighs the two like the fusion does. Chosen on the development benchmark and questions
    without an answer (bench/threshold_data.py; docs/quality.md has the table): no answer in
    the top 10 falls below the default threshold, 0.25, in any mode, while most nonsense
    questions get no hit at all.
    """

    floor: float = 0.81  # e5-small's typical floor, for callers that have not measured one
    below: float = 0.05
    span: float = 0.20
    lexical_half: float = 8.0
    semantic_weight: float = 1.0
    lexical_weight: float = 0.7


def calibrate(ranked: list[tuple[int, float]], sem_lists: list[list[tuple[int, float]]],
              lex: list[tuple[int, float]], mode: str, cal: Calibration | None = None) -> list[tuple[int, float]]:
    """The same units in the same order with scores on one 0-1 scale for every mode.

    Applied after ranking (fusion's min-max scores say how hits compare with each other, not
    how well any of them answers): each hit's evidence is its own best cosine (over the
    question and its English rendering) and its BM25, mapped as `cal` says; a hit never
    scores above the one ranked before it, so the order, and every ranking measure, is unchanged.
    """
    cal = cal or Calibration()
    cosine: dict[int, float] = {}
    for items in sem_lists:
        for uid, v in items:
            if v > cosine.get(uid, -2.0):
                cosine[uid] = v
    bm25 = dict(lex)
    zero = cal.floor - cal.below
    out = []
    running = 1.0
    for uid, _ in ranked:
        sem = min(1.0, max(0.0, (cosine[uid] - zero) / cal.span)) if uid in cosine else 0.0
        b = max(0.0, bm25.get(uid, 0.0))
        lexical = b / (b + cal.lexical_half)
        if mode == "semantic":
            evidence = sem
        elif mode == "lexical":
            evidence = lexical
        else:
            evidence = ((cal.semantic_weight * sem + cal.lexical_weight * lexical)
                        / (cal.semantic_weight + cal.lexical_weight))
        running = min(running, evidence)
        out.append((uid, running))
    return out
