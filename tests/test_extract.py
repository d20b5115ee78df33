"""Extraction of every language from fixtures/, checked against tests/expected/<language>.json.

Each expected file lists units that must be extracted from the fixture files, with their
kind, qualified name and 1-based line range, and optionally a fragment of their doc
comment and of their class's doc summary (`owner_doc`). Files may contain more units than listed only where `"complete": false`.
"""

import json
from pathlib import Path

import pytest

from codesearch.extract import extract_units
from codesearch.languages import LANGUAGES, language_for_path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = sorted((ROOT / "tests" / "expected").glob("*.json"))


def test_every_language_has_expectations():
    have = {p.stem for p in EXPECTED}
    assert set(LANGUAGES) <= have, f"languages without fixtures: {sorted(set(LANGUAGES) - have)}"


@pytest.mark.parametrize("spec_path", EXPECTED, ids=lambda p: p.stem)
def test_language_extraction(spec_path):
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    for file_spec in spec["files"]:
        path = ROOT / "fixtures" / file_spec["path"]
        lang = language_for_path(str(path), path.read_bytes()[:100])
        assert lang is not None and lang.name == spec["language"], file_spec["path"]
        units = extract_units(file_spec["path"], path.read_bytes(), lang.name)
        got = {(u.kind, u.qualname, u.start_line, u.end_line): u for u in units}
        for exp in file_spec["units"]:
            key = (exp["kind"], exp["qualname"], exp["start_line"], exp["end_line"])
            assert key in got, f"{file_spec['path']}: missing {key}; got {sorted(got)}"
            unit = got[key]
            if exp["kind"] != "file":
                assert unit.name == exp["qualname"].rsplit(".", 1)[-1]
            if "doc" in exp:
                assert exp["doc"] in unit.doc, f"{key}: doc {unit.doc!r}"
            if "owner_doc" in exp:
                assert exp["owner_doc"] in unit.owner_doc, f"{key}: owner_doc {unit.owner_doc!r}"
        if file_spec.get("complete", True):
            want = {(e["kind"], e["qualname"], e["start_line"], e["end_line"]) for e in file_spec["units"]}
            assert set(got) == want, f"{file_spec['path']}: unexpected {sorted(set(got) - want)}"


# -- linear extraction: the same parents as the pairwise test it replaced ---------------------------

def _enclosing_pairwise(d, all_defs):
    """The O(n^2) reference (codesearch before issue 11): every definition against every other."""
    return [o for o in all_defs if o is not d and o.node.start_byte <= d.node.start_byte
            and d.node.end_byte <= o.end_byte
            and (o.node.start_byte, o.end_byte) != (d.node.start_byte, d.node.end_byte)]


def _mutations(data: bytes, rng, n: int):
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(b) + 1)
            j = min(len(b), i + rng.randint(1, 80))
            op = rng.randrange(3)
            if op == 0:
                del b[i:j]
            elif op == 1:
                b[i:i] = b[rng.randrange(len(b)):][:rng.randint(1, 200)]
            else:
                b[i:i] = rng.choice([b"{", b"}", b"(", b")", b"\n", b"class X {", b"def f():\n  "]) * rng.randint(1, 4)
        yield bytes(b)


def test_linear_enclosing_equals_pairwise_on_fixtures_mutations_and_big_files():
    import random

    from codesearch.extract import _collect, _enclosing_all, parse

    rng = random.Random(11)
    inputs = []
    for path in sorted((ROOT / "fixtures").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            lang = language_for_path(str(path), data[:100])
            if lang is not None:
                inputs += [(path.name, lang, data), *((path.name, lang, m) for m in _mutations(data, rng, 8))]
    nested = "".join("    " * i + f"def level_{i}():\n" for i in range(120)) + "    " * 120 + "pass\n"
    classes = "".join(f"class C{i}:\n" + "".join(f"    def m{j}(self):\n        return {j}\n" for j in range(20))
                      for i in range(50))
    inputs += [("nested.py", LANGUAGES["python"], nested.encode()), ("classes.py", LANGUAGES["python"], classes.encode())]
    compared = 0
    for name, lang, data in inputs:
        defs = _collect(parse(data, lang.name), lang, data, name)
        fast = _enclosing_all(defs)
        for d in defs:
            assert fast[id(d)] == _enclosing_pairwise(d, defs), name
            compared += 1
    assert compared > 2_000


def test_ten_thousand_functions_extract_completely():
    src = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(10_000)).encode()
    units = extract_units("many.py", src, "python")
    assert [u.name for u in units[:2]] == ["f0", "f1"] and len(units) == 10_000
    assert units[-1].start_line == 3 * 9_999 + 1  # bench/hostile_inputs.py times it (goal < 5 s)


def test_parse_budget_turns_a_stalling_file_into_one_file_unit():
    from codesearch.extract import extract_file

    data = (ROOT / "tests" / "data" / "kotlin_parser_stall.kt").read_bytes()  # 85 s without a budget
    result = extract_file("Stall.kt", data, "kotlin", budget_s=0.5)
    assert result.fallback and "0.5 s" in result.fallback
    assert [(u.kind, u.start_line) for u in result.units] == [("file", 1)]
    fine = extract_file("a.py", b"def a():\n    return 1\n", "python", budget_s=0.5)
    assert fine.fallback is None and fine.units[0].name == "a"


def test_c_family_repairs_keep_lines_and_only_help():
    """c_family: the blanked source has the same bytes and lines; a file that parses cleanly, or
    that blanking would not improve, is extracted from the original parse."""
    from codesearch import c_family
    from codesearch.extract import parse

    src = b"class A {\n  A(int x)\n      :\n#if X\n    a_(x),\n#endif\n    b_(x) {}\n};\n"
    blanked = c_family.blank_directives(src)
    assert len(blanked) == len(src) and blanked.count(b"\n") == src.count(b"\n")
    assert b"#if" not in blanked and b"a_(x)" in blanked
    tree, used = c_family.best_parse(parse(src, "cpp"), src, "cpp", parse)
    assert used == blanked and c_family.error_count(tree) == 0
    clean = b"#if X\nint f() { return 1; }\n#else\nint f() { return 2; }\n#endif\n"
    assert c_family.best_parse(parse(clean, "cpp"), clean, "cpp", parse)[1] is clean
    # a macro in a unit's name is only replaced by a real declarator, never by a guess
    units = extract_units("m.c", b"int MAX_SIZE(void) { return 4; }\n", "c")
    assert [u.name for u in units] == ["MAX_SIZE"]


# the shape of Newtonsoft.Json's JsonTextReader.ParseReadString: each branch of the `#if` is valid
# C#, both together are not (an `else` after a complete if/else chain)
CSHARP_SPLIT_IF = b"""namespace N
{
    public class Reader
    {
        private void ParseReadString(int readType)
        {
            if (readType == 1)
            {
                handling = 1;
            }
#if HAVE_DATE_TIME_OFFSET
            else if (readType == 2)
            {
                handling = 2;
            }
#endif
            else
            {
                handling = 3;
            }
#if HAVE_DATE_TIME_OFFSET
            else
            {
                handling = 4;
            }
#endif
        }

        private void ShiftBuffer()
        {
        }
    }
}
"""


def test_csharp_directives_that_split_a_statement_leave_later_methods_in_their_class():
    """`#if` branches that are valid apart but not together derail tree-sitter-c-sharp: the class
    closed early and every later method became a namespace function (`N.ShiftBuffer`; 270
    units of Newtonsoft.Json). The C/C++ repair (c_family.best_parse) now covers C# too."""
    units = {u.name: u for u in extract_units("Reader.cs", CSHARP_SPLIT_IF, "csharp")}
    shift = units["ShiftBuffer"]
    assert (shift.kind, shift.qualname, shift.start_line, shift.end_line) == \
        ("method", "N.Reader.ShiftBuffer", 29, 31)
    assert "#if HAVE_DATE_TIME_OFFSET" in units["ParseReadString"].code  # the unit's text is the file's own


OWNERS = '''class Backoff:
    """Retry a failing call, waiting longer each time.

    Usage: Backoff(3).run(fn). Not thread-safe.
    """

    def delay(self, attempt):
        return 2 ** attempt

    class Jitter:
        def spread(self):
            return 1


class Plain:
    def run(self):
        pass


def helper():
    pass
'''


def test_a_method_carries_its_class_summary_and_a_function_none():
    """Unit.owner_doc: the first paragraph of the nearest enclosing class's doc comment (a
    nested class without one says nothing, it does not borrow its parent's); functions and
    methods of undocumented classes have none."""
    from codesearch.extract import OWNER_DOC_MAX_CHARS, owner_summary

    units = {u.qualname: u for u in extract_units("retry.py", OWNERS.encode(), "python")}
    assert units["Backoff.delay"].owner_doc == "Retry a failing call, waiting longer each time."
    assert units["Backoff.Jitter.spread"].owner_doc == ""
    assert units["Plain.run"].owner_doc == "" and units["helper"].owner_doc == ""
    long = owner_summary("word " * 100 + "\n\nsecond paragraph")
    assert len(long) <= OWNER_DOC_MAX_CHARS and long.endswith("word") and "second" not in long


def test_a_class_summary_is_in_the_full_text_doc_column_not_in_the_embedded_text():
    """Measured both ways on the devset (docs/quality.md): in the embedded text it cost English
    R@1, in the full-text index it only helped."""
    from codesearch.chunking import lexical_fields, unit_pieces

    unit = {u.qualname: u for u in extract_units("retry.py", OWNERS.encode(), "python")}["Backoff.delay"]
    assert "waiting longer each time" in lexical_fields(unit)[2]
    assert not any("waiting longer" in piece for piece in unit_pieces(unit))
