"""One gitignore matcher (pathspec) for the ignore files of discovery and for `--path`."""

import pytest

from codesearch.errors import CodesearchError
from codesearch.files import discover
from codesearch.pathmatch import IgnoreRules, PathFilter

PATHS = ["retry.py", "python/retry.py", "python/shop/retry.py", "python/shop/cache.py", "go/main.go",
         "tests/test_retry.py", "src/tests/helpers.py", "docs/draft.md"]


@pytest.mark.parametrize("patterns,expected", [
    (["retry.py"], ["retry.py", "python/retry.py", "python/shop/retry.py"]),  # a bare name: any depth
    (["python/*.py"], ["python/retry.py"]),  # * stays within its folder
    (["python/**/*.py"], ["python/retry.py", "python/shop/retry.py", "python/shop/cache.py"]),
    (["python/shop"], ["python/shop/retry.py", "python/shop/cache.py"]),  # a folder covers its contents
    (["./python/shop/"], ["python/shop/retry.py", "python/shop/cache.py"]),
    (["/retry.py"], ["retry.py"]),  # anchored at the root
    (["*.go", "docs/"], ["go/main.go", "docs/draft.md"]),  # several patterns: any of them
    (["*.py", "!tests/"], ["retry.py", "python/retry.py", "python/shop/retry.py", "python/shop/cache.py"]),
    (["!*.py"], ["go/main.go", "docs/draft.md"]),  # only exclusions: everything else
    (["."], PATHS),
])
def test_path_filter_has_gitignore_semantics(patterns, expected):
    keep = PathFilter(patterns)
    assert [p for p in PATHS if keep(p)] == expected


def test_a_broken_path_pattern_is_a_user_error():
    with pytest.raises(CodesearchError, match="--path"):
        PathFilter(["\\"])


def test_ignore_rules_semantics():
    rules = IgnoreRules()
    rules.add_lines(["*.log", "/root_only.py", "docs/**/draft.md", "!keep.log", "tmp/", "\\"])  # "\" is skipped
    assert rules.ignored("a/b/x.log", False) and not rules.ignored("a/keep.log", False)
    assert rules.ignored("root_only.py", False) and not rules.ignored("sub/root_only.py", False)
    assert rules.ignored("docs/a/b/draft.md", False) and rules.ignored("docs/draft.md", False)
    assert rules.ignored("x/tmp", True) and not rules.ignored("x/tmp", False)


def test_a_deeper_ignore_file_overrides_and_applies_below_its_folder():
    rules = IgnoreRules()
    rules.add_lines(["*.gen.py"])
    rules.add_lines(["!keep.gen.py", "local.py"], base="pkg")
    assert rules.ignored("a.gen.py", False) and not rules.ignored("pkg/keep.gen.py", False)
    assert rules.ignored("pkg/sub/local.py", False) and not rules.ignored("local.py", False)


def test_codesearchignore_and_gitignore_in_a_plain_folder(tmp_path):
    for rel in ["app.py", "build/out.py", "build/keep.py", "gen/x.py", "src/a.py", "src/b_test.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("def f():\n    pass\n")
    (tmp_path / ".gitignore").write_text("build/\n!build/keep.py\n")  # git cannot re-include below an ignored folder
    (tmp_path / "src" / ".gitignore").write_text("*_test.py\n")
    (tmp_path / ".codesearchignore").write_text("gen\n")
    assert [f.path for f in discover(tmp_path).files] == ["app.py", "src/a.py"]
