"""File discovery: git listing, .gitignore walking, .codesearchignore, and bad input."""

import os

from codesearch.files import IgnoreRules, discover, read_source


def test_git_repo_lists_tracked_and_untracked_but_not_ignored(make_git_repo):
    repo = make_git_repo({"a.py": "def a():\n    pass\n", ".gitignore": "build/\n*.gen.py\n"})
    (repo / "new.py").write_text("def n(): pass\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.py").write_text("def b(): pass\n")
    (repo / "x.gen.py").write_text("def g(): pass\n")
    paths = [f.path for f in discover(repo).files]
    assert paths == ["a.py", "new.py"]


def test_plain_folder_walk_honours_nested_gitignore(tmp_path):
    (tmp_path / "src" / "gen").mkdir(parents=True)
    (tmp_path / "src" / "keep.go").write_text("package x\nfunc A() {}\n")
    (tmp_path / "src" / "gen" / "skip.go").write_text("package x\nfunc B() {}\n")
    (tmp_path / "src" / ".gitignore").write_text("gen/\n!important.go\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "lib.js").write_text("function f() {}\n")
    (tmp_path / ".gitignore").write_text("node_modules\n")
    assert [f.path for f in discover(tmp_path).files] == ["src/keep.go"]


def test_codesearchignore_adds_patterns(make_git_repo):
    repo = make_git_repo({"a.py": "x = 1\n", "vendor/b.py": "y = 2\n", "docs/c.py": "z = 3\n",
                          ".codesearchignore": "vendor/\n*/c.py\n"})
    assert [f.path for f in discover(repo).files] == ["a.py"]


def test_binary_huge_and_symlinks_are_skipped_with_reasons(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def secret(): pass\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "ok.py").write_text("def ok(): pass\n")
    (repo / "blob.py").write_bytes(b"def x():\n\x00\x01\x02 pass\n")
    (repo / "big.js").write_text("// filler\n" * 200_000)
    os.symlink(outside / "secret.py", repo / "link.py")
    os.symlink(outside, repo / "linkdir")
    found = discover(repo)
    assert [f.path for f in found.files] == ["ok.py"]
    assert found.skipped["blob.py"] == "binary"
    assert "larger than" in found.skipped["big.js"]
    assert "symlink" in found.skipped["link.py"]
    assert all(not f.path.startswith("linkdir/") for f in found.files)


def test_size_limit_is_configurable(tmp_path):
    (tmp_path / "a.py").write_text("def a():\n    return 1\n" * 100)
    assert discover(tmp_path, max_file_size=100).files == []
    assert len(discover(tmp_path, max_file_size=10_000).files) == 1


def test_shebang_scripts_without_extension(tmp_path):
    (tmp_path / "deploy").write_text("#!/usr/bin/env bash\nship() { echo go; }\n")
    (tmp_path / "README").write_text("just text\n")
    files = discover(tmp_path).files
    assert [(f.path, f.language.name) for f in files] == [("deploy", "bash")]


def test_broken_utf8_is_replaced_not_fatal(tmp_path):
    (tmp_path / "bad.py").write_bytes(b"def caf\xe9():\n    return '\xff'\r\n")
    text, digest = read_source(tmp_path, "bad.py")
    assert "\ufffd" in text.decode("utf-8") and b"\r\n" not in text
    assert len(digest) == 40


def test_ignore_rules_semantics():
    rules = IgnoreRules()
    rules.add_lines(["*.log", "/root_only.py", "docs/**/draft.md", "!keep.log", "tmp/"])
    assert rules.ignored("a/b/x.log", False)
    assert not rules.ignored("a/keep.log", False)
    assert rules.ignored("root_only.py", False) and not rules.ignored("sub/root_only.py", False)
    assert rules.ignored("docs/a/b/draft.md", False) and rules.ignored("docs/draft.md", False)
    assert rules.ignored("x/tmp", True) and not rules.ignored("x/tmp", False)


def test_h_headers_are_cpp_when_they_use_cpp(tmp_path):
    (tmp_path / "c_api.h").write_text("#include <stdio.h>\nint add(int a, int b);\n")
    (tmp_path / "cache.h").write_text("#include <string>\nnamespace db {\nclass Cache {\n public:\n};\n}\n")
    langs = {f.path: f.language.name for f in discover(tmp_path).files}
    assert langs == {"c_api.h": "c", "cache.h": "cpp"}
