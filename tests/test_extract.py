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
