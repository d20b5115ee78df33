"""Which of a question's best candidates call which: the code's own call graph, read from the
candidates' text at query time.

Two kinds of neighbour confuse a ranking by similarity alone (docs/quality.md, the devset's
misses): a function that does what the question asks is often out-ranked by the helper it
calls (`LRUCache.Insert` by `LRU_Append`, `Writer.AddRecord` by `EmitPhysicalRecord`: the helper
matches part of the question in fewer words), and by the test that exercises it (a test names
the behaviour in its own name and asserts). Knowing who calls whom among the candidates lets
ranking.credit_calls give a caller some of its callees' relevance and a function some of its
tests'. Only the top candidates are read (a few dozen), so this costs a few milliseconds.

A call is the callee's name followed by `(` (or, for languages whose calls need no
parentheses, the bare word), not preceded by a word character; a unit's own name never counts
as a call (overloads and recursion call themselves by name), nor do names shorter than
MIN_NAME characters (`f`, `id`: they would be found everywhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_NAME = 3
_BARE_CALLS = {"ruby", "lua", "bash"}  # `foo bar`, `foo` call without parentheses
_NOT_CALLABLE = {"file"}
MAX_CODE = 20_000  # characters of a caller's code that are searched (a huge unit is a file, not a caller)


@dataclass
class Candidate:
    uid: int
    name: str
    kind: str
    language: str
    code: str
    qualname: str = ""
    test: bool = False  # in tests (ranking.is_secondary_path): may share its subject's name


def _call_pattern(names: set[str], bare: bool) -> re.Pattern | None:
    if not names:
        return None
    alternatives = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
    tail = r"\b" if bare else r"\s*(?:<[^<>()]*>\s*)?\("  # Foo<T>(...) in C#/Java/C++/Rust
    return re.compile(rf"(?<![\w$])({alternatives}){tail}")


def calls_among(candidates: list[Candidate]) -> dict[int, set[int]]:
    """caller uid -> uids of the other candidates whose names its code calls."""
    by_name: dict[str, list[int]] = {}
    for c in candidates:
        if c.kind not in _NOT_CALLABLE and len(c.name) >= MIN_NAME and c.name.isidentifier():
            by_name.setdefault(c.name, []).append(c.uid)
    out: dict[int, set[int]] = {}
    if not by_name:
        return out
    patterns = {bare: _call_pattern(set(by_name), bare) for bare in (False, True)}
    for c in candidates:
        if c.kind in _NOT_CALLABLE:
            continue
        pattern = patterns[c.language in _BARE_CALLS]
        found = {m.group(1) for m in pattern.finditer(c.code[:MAX_CODE])}
        if not c.test:  # a test may be named after what it tests (Rust `mod tests { fn parse() }`)
            found.discard(c.name)
        callees = {u for n in found for u in by_name[n] if u != c.uid}
        if callees:
            out[c.uid] = callees
    return out


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def named_after(candidates: list[Candidate], calls: dict[int, set[int]]) -> dict[int, set[int]]:
    """The calls of tests to the functions they are named after: `test_parse_args` or
    `ParseArgsTest.testBasic` calling `parse_args`, `ConsumeDecimalNumberOverflowTest` calling
    `ConsumeDecimalNumber` (names compared without case and underscores)."""
    by_uid = {c.uid: c for c in candidates}
    out: dict[int, set[int]] = {}
    for a, callees in calls.items():
        test = by_uid[a]
        if not test.test:
            continue
        label = _squash(test.qualname or test.name)
        named = {b for b in callees if _squash(by_uid[b].name) in label}
        if named:
            out[a] = named
    return out
