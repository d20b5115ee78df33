"""`codesearch query` as grep and ripgrep users expect it: --vimgrep (read back by real vim's
quickfix), paths relative to the current folder, -l, -C/-A/-B with cut markers, --jsonl,
scores on one 0-1 scale with --threshold, exit status 0/1/2, unquoted words, `-` for stdin,
--path with gitignore semantics, shell completion."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from conftest import git

ROOT = Path(__file__).resolve().parent.parent

LONG_BODY = "".join(f"    total += {i}  # step {i}\n" for i in range(1, 19))
FILES = {
    "calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
    "web/fetch.js": "// download a page over http\nfunction fetchPage(url) {\n  return fetch(url);\n}\n",
    "pkg/retry.py": ("import time\n\n\n# Retries are spaced out more and more, up to a cap.\n"
                     "@staticmethod\ndef retry_with_backoff(fn, attempts=5):\n"
                     '    """Call fn again after a growing delay when it raises."""\n'
                     "    for i in range(attempts):\n        try:\n            return fn()\n"
                     "        except OSError:\n            time.sleep(2 ** i)\n"),
    "pkg/long.py": ('def sum_of_steps():\n    """Add up the numbers one to eighteen, one step at a time."""\n'
                    "    total = 0\n" + LONG_BODY + "    return total\n\n\nAFTER = 1\n"),
    "pkg/sub/retry.py": 'def retry_forever(fn):\n    """Keep calling fn until it succeeds."""\n'
                        "    while True:\n        try:\n            return fn()\n        except Exception:\n"
                        "            pass\n",
}
NONSENSE = "xqzvw plokjh trbnm"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, e5_spec) -> Path:
    repo = tmp_path_factory.mktemp("grep") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    r = CliRunner().invoke(main, ["index", str(repo), "--model", "e5-small", "-q"])
    assert r.exit_code == 0, r.output
    return repo


def cs(*args, cwd: Path, input: str | None = None):
    """`codesearch ARGS` run from `cwd` (CliRunner: stdout and stderr apart)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], input=input)
    finally:
        os.chdir(old)


# -- --vimgrep --------------------------------------------------------------------------------

VIMGREP_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+):(?P<text>.*)$")


def test_vimgrep_is_path_line_col_text_at_the_name(repo):
    r = cs("query", "--vimgrep", "-k", "3", "retry", "with", "backoff", cwd=repo)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert 1 <= len(lines) <= 3 and all(VIMGREP_LINE.match(line) for line in lines)
    m = VIMGREP_LINE.match(lines[0])
    assert m["path"] == "pkg/retry.py"
    assert m["line"] == "6" and m["text"] == "def retry_with_backoff(fn, attempts=5):"  # after the decorator
    assert m["text"][int(m["col"]) - 1:].startswith("retry_with_backoff")


@pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed (Debian: apt-get install vim-nox)")
def test_vimgrep_output_is_read_by_vims_quickfix_with_the_default_errorformat(repo, tmp_path):
    r = cs("query", "--vimgrep", "-k", "5", "--threshold", "0", "download a web page", cwd=repo / "web")
    hits = tmp_path / "hits.txt"
    hits.write_text(r.stdout, encoding="utf-8")
    out = tmp_path / "qf.json"
    script = tmp_path / "read.vim"
    # vim -u NONE: no vimrc, so 'errorformat' is vim's default; read the file the way :cfile does
    script.write_text(
        "set errorformat&\n"
        f"cgetfile {hits}\n"
        "call writefile([json_encode(map(getqflist(), {_, e -> "
        "{'file': bufname(e.bufnr), 'lnum': e.lnum, 'col': e.col, 'valid': e.valid, 'text': e.text}}))], "
        f"'{out}')\n"
        "qall!\n", encoding="utf-8")
    subprocess.run(["vim", "-Nu", "NONE", "-i", "NONE", "-es", "-S", str(script)], cwd=repo / "web",
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    entries = json.loads(out.read_text(encoding="utf-8"))
    expected = [VIMGREP_LINE.match(line) for line in r.stdout.splitlines()]
    assert len(entries) == len(expected) == 5
    assert all(e["valid"] == 1 for e in entries)
    assert [(e["file"], e["lnum"], e["col"]) for e in entries] == \
        [(m["path"], int(m["line"]), int(m["col"])) for m in expected]
    assert entries[0]["file"] == "fetch.js" and entries[0]["lnum"] == 2  # relative to the current folder
    assert (repo / "web" / entries[1]["file"]).resolve().is_file()  # ../calc.py and the like open


# -- paths -----------------------------------------------------------------------------------

def test_paths_are_relative_to_the_current_folder_json_keeps_repository_paths(repo):
    r = cs("query", "-k", "1", "add two numbers", cwd=repo / "pkg" / "sub")
    assert r.stdout.splitlines()[0].startswith(" 1. ../../calc.py:1-3  add  ")
    r = cs("query", "--vimgrep", "-k", "1", "--repo", "repo", "add two numbers", cwd=repo.parent)
    assert r.stdout.startswith("repo/calc.py:1:5:def add(a, b):")
    r = cs("query", "--json", "-k", "1", "add two numbers", cwd=repo / "pkg")
    hit = json.loads(r.stdout)[0]
    assert hit["path"] == "calc.py" and hit["abs_path"] == str(repo / "calc.py")
    assert (hit["line"], hit["column"]) == (1, 5)


def test_files_with_matches_lists_each_file_once_best_first(repo):
    r = cs("query", "-l", "-k", "6", "--threshold", "0", "retry", "a", "call", cwd=repo / "pkg")
    files = r.stdout.splitlines()
    assert len(files) == len(set(files)) and {"retry.py", "sub/retry.py"} <= set(files)
    hits = json.loads(cs("query", "--json", "-k", "6", "--threshold", "0", "retry a call", cwd=repo / "pkg").stdout)
    first_seen = list(dict.fromkeys(h["path"] for h in hits))  # repository paths, in rank order
    assert [os.path.normpath("pkg/" + f) for f in files] == first_seen  # each file once, where its best hit ranks
    r2 = cs("query", "--files-with-matches", "-k", "6", "--threshold", "0", "retry a call", cwd=repo / "pkg")
    assert r2.stdout == r.stdout


# -- context -------------------------------------------------------------------------------

def test_default_snippet_marks_where_a_long_function_is_cut(repo):
    r = cs("query", "-k", "1", "add up the numbers one to eighteen", cwd=repo)
    out = r.stdout.splitlines()
    assert out[0].startswith(" 1. pkg/long.py:1-22  sum_of_steps")
    assert out[1].startswith("     1 | def sum_of_steps():") and out[12].startswith("    12 |")
    assert out[13] == "    ... lines 13-22 not shown"


def test_context_flags_count_from_the_named_line_like_grep(repo):
    r = cs("query", "-k", "1", "-B", "2", "-A", "1", "retry with growing delay", cwd=repo)
    body = r.stdout.splitlines()[1:]
    assert body == ["    4 | # Retries are spaced out more and more, up to a cap.",  # above the function: from the file
                    "    5 | @staticmethod",
                    "    6 | def retry_with_backoff(fn, attempts=5):",
                    '    7 |     """Call fn again after a growing delay when it raises."""',
                    "    ... lines 8-12 not shown"]
    r = cs("query", "-k", "1", "-C", "0", "retry with growing delay", cwd=repo)
    assert r.stdout.splitlines()[1:] == ["    ... line 5 not shown", "    6 | def retry_with_backoff(fn, attempts=5):",
                                         "    ... lines 7-12 not shown"]
    r = cs("query", "-k", "1", "-A", "24", "add up the numbers one to eighteen", cwd=repo)
    lines = r.stdout.splitlines()
    assert lines[-1] == "    25 | AFTER = 1" and "not shown" not in r.stdout  # past the function's end, to EOF
    r = cs("query", "--json", "-k", "1", "-C", "1", "add two numbers", cwd=repo)
    assert json.loads(r.stdout)[0]["context"] == {"start_line": 1, "lines": ["def add(a, b):", '    """Add two numbers."""'],
                                                   "stale": False}


def test_context_after_an_edit_shows_only_indexed_lines_and_says_so(repo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    (copy / "pkg" / "retry.py").write_text("# rewritten\n" + FILES["pkg/retry.py"], encoding="utf-8")
    r = cs("query", "-k", "1", "-B", "3", "retry with growing delay", cwd=copy)
    body = r.stdout.splitlines()[1:]
    assert body[0] == "    5 | @staticmethod" and "changed since it was indexed" in body[-1]


# -- JSON lines ------------------------------------------------------------------------------

def test_jsonl_prints_one_hit_object_per_line(repo):
    r = cs("query", "--jsonl", "-k", "3", "retry with growing delay", cwd=repo)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 3 and rows[0]["path"] == "pkg/retry.py" and "abs_path" in rows[0]
    batch = cs("query", "--batch", "-", "--jsonl", "-k", "2", cwd=repo, input="retry\nadd numbers\n")
    rows = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [r["query"] for r in rows] == ["retry", "retry", "add numbers", "add numbers"]


# -- scores, threshold, exit status ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
def test_scores_lie_on_one_0_1_scale_in_every_mode(repo, mode):
    r = cs("query", "--json", "--mode", mode, "-k", "5", "retry the call with backoff", cwd=repo)
    scores = [h["score"] for h in json.loads(r.stdout)]
    assert scores and all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert scores[0] > 0.25  # a real answer scores above the default threshold


def test_nonsense_finds_nothing_and_exits_1_while_threshold_0_shows_k(repo):
    r = cs("query", NONSENSE, cwd=repo)
    assert r.exit_code == 1 and r.stdout == "" and "no results scoring 0.25 or more" in r.stderr
    r = cs("query", "--vimgrep", NONSENSE, cwd=repo)
    assert r.exit_code == 1 and r.stdout == "" and r.stderr == ""  # as grep: silent
    r = cs("query", "--threshold", "0", "-k", "4", NONSENSE, cwd=repo)
    assert r.exit_code == 0 and r.stdout.count("\n 4. ") == 1
    # tools that ask for k get k (with scores) unless they set a threshold
    r = cs("query", "--json", "-k", "4", NONSENSE, cwd=repo)
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 4
    r = cs("query", "--json", "--threshold", "0.3", NONSENSE, cwd=repo)
    assert r.exit_code == 1 and json.loads(r.stdout) == []


def test_threshold_setting_applies_to_json_too(repo, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("threshold = 0.99\n", encoding="utf-8")
    monkeypatch.setenv("CODESEARCH_CONFIG", str(config))
    r = cs("query", "--json", "retry", cwd=repo)
    assert r.exit_code == 1 and json.loads(r.stdout) == []
    bad = cs("query", "--threshold", "1.5", "retry", cwd=repo)
    assert bad.exit_code == 2 and "1.5" in bad.stderr


def test_errors_exit_2_and_above_never_1(repo, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert cs("query", "--repo", plain, "x", cwd=tmp_path).exit_code == 2  # no index yet
    r = cs("query", "--json", "--vimgrep", "x", cwd=repo)
    assert r.exit_code == 2 and r.stderr.startswith("error: ")
    assert cs("query", "--path", "\\", "x", cwd=repo).exit_code == 2  # a broken pattern
    assert cs("query", "-k", "0", "x", cwd=repo).exit_code == 2  # click's usage error
    p = subprocess.run([sys.executable, "-m", "codesearch.cli", "query", "--repo", str(repo), NONSENSE],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 1


# -- input -----------------------------------------------------------------------------------

def test_unquoted_words_are_one_question_and_dash_reads_stdin(repo):
    quoted = cs("query", "--json", "-k", "3", "download a web page", cwd=repo)
    words = cs("query", "--json", "-k", "3", "download", "a", "web", "page", cwd=repo)
    stdin = cs("query", "--json", "-k", "3", "-", cwd=repo, input="download a\nweb page\n")
    assert quoted.exit_code == words.exit_code == stdin.exit_code == 0
    assert json.loads(quoted.stdout) == json.loads(words.stdout) == json.loads(stdin.stdout)
    assert json.loads(words.stdout)[0]["name"] == "fetchPage"
    zh = cs("query", "--json", "-k", "1", "-", cwd=repo, input="两个数相加\n")
    assert json.loads(zh.stdout)[0]["name"] == "add"


# -- --path ----------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns,expected", [
    (["retry.py"], {"pkg/retry.py", "pkg/sub/retry.py"}),  # a bare name matches at any depth
    (["pkg/*.py"], {"pkg/retry.py", "pkg/long.py"}),  # * stays within its folder
    (["pkg/**/*.py"], {"pkg/retry.py", "pkg/long.py", "pkg/sub/retry.py"}),
    (["pkg/sub"], {"pkg/sub/retry.py"}),  # a folder and everything in it
    (["*.py", "!pkg/"], {"calc.py"}),  # ! leaves out
    (["!*.py"], {"web/fetch.js"}),
])
def test_path_patterns_have_gitignore_semantics(repo, patterns, expected):
    args = [a for p in patterns for a in ("--path", p)]
    r = cs("query", "--json", "-k", "10", *args, "a function", cwd=repo)
    assert {h["path"] for h in json.loads(r.stdout)} == expected


# -- indexed text cannot drive the terminal ----------------------------------------------------

def test_vimgrep_and_files_lists_escape_control_characters(make_git_repo, e5_spec):
    repo = make_git_repo({"evil\x1b[2J.py": 'def title():  # \x1b]0;pwned\x07\n    """Set the window title."""\n'
                                            "    return 1\n"})
    assert CliRunner().invoke(main, ["index", str(repo), "--model", "e5-small", "-q"]).exit_code == 0
    for flag in ("--vimgrep", "-l", "--no-snippet"):
        r = cs("query", flag, "--threshold", "0", "set the window title", cwd=repo)
        assert r.exit_code == 0 and "\x1b" not in r.stdout and "\x07" not in r.stdout
        assert "evil\\x1b[2J.py" in r.stdout
    r = cs("query", "--vimgrep", "--threshold", "0", "set the window title", cwd=repo)
    assert "\\x1b]0;pwned\\x07" in r.stdout


# -- shell completion ------------------------------------------------------------------------

@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef codesearch"),
                                          ("fish", "complete --no-files --command codesearch")])
def test_shell_completion_scripts_are_produced(shell, marker):
    code = "from codesearch.cli import main; main(prog_name='codesearch')"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_CODESEARCH_COMPLETE": f"{shell}_source"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and marker in p.stdout, p.stdout + p.stderr
    env.update({"_CODESEARCH_COMPLETE": "bash_complete", "COMP_WORDS": "codesearch qu", "COMP_CWORD": "1"})
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "plain,query" in p.stdout.splitlines()
