"""Extraction of every language from fixtures/, checked against tests/expected/<language>.json.

Each expected file lists units that must be extracted from the fixture files, with their
kind, qualified name and 1-based line range, and optionally a fragment of their doc
comment. Files may contain more units than listed only where `"complete": false`.
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
        if file_spec.get("complete", True):
            want = {(e["kind"], e["qualname"], e["start_line"], e["end_line"]) for e in file_spec["units"]}
            assert set(got) == want, f"{file_spec['path']}: unexpected {sorted(set(got) - want)}"


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
