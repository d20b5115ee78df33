"""The command line: output shapes and user mistakes (one `error:` line, non-zero exit, no traceback)."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from codesearch.cli import main

FILES = {"calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
         "web/fetch.js": "// download a page over http\nfunction fetchPage(url) {\n  return fetch(url);\n}\n"}


def cli(*args, cwd=None):
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, list(args), catch_exceptions=False)
    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def indexed(make_git_repo, e5_spec):
    repo = make_git_repo(FILES)
    r = cli("index", str(repo), "--model", "e5-small", "-q")
    assert r.exit_code == 0, r.output
    return repo


def test_index_summary_names_files_functions_languages_model(make_git_repo, e5_spec):
    repo = make_git_repo(FILES)
    r = cli("index", str(repo), "--model", "e5-small")
    assert r.exit_code == 0
    assert "indexed 2 files" in r.output and "2 functions" in r.output
    assert "python 1" in r.output and "javascript 1" in r.output and "model " in r.output


def test_query_json_shape(indexed):
    r = cli("query", "--json", "-k", "2", "--repo", str(indexed), "sum of two numbers")
    hits = json.loads(r.output)
    assert len(hits) == 2
    assert set(hits[0]) >= {"path", "start_line", "end_line", "name", "qualname", "language", "kind",
                            "score", "snippet"}
    assert hits[0]["path"] == "calc.py" and hits[0]["start_line"] == 1 and hits[0]["end_line"] == 3


def test_query_finds_repo_from_current_folder_and_prints_plain_text(indexed):
    r = cli("query", "-k", "1", "download a web page", cwd=indexed / "web")
    assert r.exit_code == 0
    assert r.output.startswith(" 1. fetch.js:2-4  fetchPage  ")  # relative to the current folder, as grep
    assert "\x1b[" not in r.output  # piped: no colour


def test_batch_prints_one_json_line_per_question(indexed, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("add numbers\n\ndownload page\n", encoding="utf-8")
    r = cli("query", "--batch", str(qfile), "--repo", str(indexed), "-k", "1")
    lines = [json.loads(l) for l in r.output.splitlines()]
    assert [l["query"] for l in lines] == ["add numbers", "download page"]
    assert lines[0]["results"][0]["name"] == "add" and lines[1]["results"][0]["name"] == "fetchPage"


def test_status_reports_model_and_freshness(indexed):
    r = cli("status", "--repo", str(indexed))
    assert "2 functions" in r.output and "up to date" in r.output
    (indexed / "calc.py").write_text('def add(a, b):\n    return b + a\n')
    r = cli("status", "--repo", str(indexed))
    assert "1 changed" in r.output


@pytest.mark.parametrize("args,fragment,code", [
    (["query", "--repo", "{repo}", "anything"], "no index yet", 2),
    (["index", "{missing}"], "does not exist", 2),
    (["index", "{repo}", "--model", "no-such-model"], "unknown model", 4),
    (["index", "{repo}", "--model", "nobody/nothing-here"], "could not be downloaded", 4),
    (["query", "--repo", "{repo}"], "give a question", 2),
    (["status", "--repo", "{repo}"], "no index yet", 2),
])
def test_user_mistakes_give_one_line(tmp_path, args, fragment, code):
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "a.py").write_text("def a():\n    pass\n")
    args = [a.format(repo=repo, missing=tmp_path / "missing") for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == code, r.output
    assert fragment in r.output and "Traceback" not in r.output


CHINESE_COMMENTS = {"tools.py": (
    'def f1(data):\n    """计算数据的校验和，用于检测传输错误。"""\n    return sum(data) & 0xFFFF\n\n\n'
    'def f2(text):\n    """解析配置文件，把每一行的键值对放进字典。"""\n    return dict(l.split("=", 1) for l in text.splitlines())\n\n\n'
    'def f3(fn):\n    """调用函数失败时按指数退避重试，最多重试三次。"""\n    return fn()\n')}


@pytest.mark.parametrize("question, name", [("校验和", "f1"), ("键值对放进字典", "f2"), ("指数退避", "f3")])
def test_chinese_questions_meet_chinese_comments_word_for_word(make_git_repo, e5_spec, question, name):
    """Lexical mode, no translation: only the Chinese words themselves can match (as character
    pairs); before, each comment was one token and none of these questions found anything."""
    repo = make_git_repo(CHINESE_COMMENTS)
    assert cli("index", str(repo), "--model", "e5-small", "-q").exit_code == 0
    r = cli("query", "--json", "--mode", "lexical", "--no-translate", "--threshold", "0", "--no-daemon",
            "--repo", str(repo), question)
    hits = json.loads(r.output)
    assert hits and hits[0]["name"] == name, r.output


HANDLERS = {"handlers.py": (
    'class FingersCrossedHandler:\n'
    '    """Buffers all records until a certain level is reached, then flushes them at once."""\n\n'
    '    def handle(self, record):\n'
    '        return self.accept(record)\n\n\n'
    'class StreamHandler:\n'
    '    """Writes each record to a stream as it comes."""\n\n'
    '    def handle(self, record):\n'
    '        return self.write(record)\n')}


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_a_method_is_found_by_what_its_class_says_it_is_for(make_git_repo, e5_spec, mode):
    """Two methods named `handle`; only the class's doc comment says which one buffers records
    (extract.Unit.owner_doc, in the full-text doc column). Before, class doc comments were in
    no index, and both modes ranked StreamHandler.handle first."""
    repo = make_git_repo(HANDLERS)
    assert cli("index", str(repo), "--model", "e5-small", "-q").exit_code == 0
    r = cli("query", "--json", "--mode", mode, "--threshold", "0", "--no-daemon", "--repo", str(repo),
            "buffers all records until a certain level is reached")
    hits = json.loads(r.output)
    assert hits and hits[0]["qualname"] == "FingersCrossedHandler.handle", r.output


def test_empty_repository(tmp_path, e5_spec):
    r = CliRunner().invoke(main, ["index", str(tmp_path), "--model", "e5-small"])
    assert r.exit_code == 2 and "no source files" in r.output
    # a query after it says why the index is empty, and how to fill it: one line, exit 2
    r = CliRunner().invoke(main, ["query", "--repo", str(tmp_path), "--no-daemon", "anything"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "found no source files" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_wrong_model_at_query_time_is_refused(indexed, qwen_folder):
    r = CliRunner().invoke(main, ["query", "--repo", str(indexed), "--model", str(qwen_folder), "x"])
    assert r.exit_code == 3 and "--rebuild" in r.output


def test_corrupt_index_says_rebuild(indexed):
    (indexed / ".codesearch" / "index.db").write_bytes(b"this is not sqlite" * 100)
    for name in ("index.db-wal", "index.db-shm"):
        (indexed / ".codesearch" / name).unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["query", "--repo", str(indexed), "x"])
    assert r.exit_code == 6 and "--rebuild" in r.output


def test_unknown_language_filter(indexed):
    r = CliRunner().invoke(main, ["query", "--repo", str(indexed), "--lang", "cobol", "x"])
    assert r.exit_code == 2 and "unknown language" in r.output


def test_no_traceback_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "codesearch.cli", "query", "--repo", str(tmp_path), "x"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


def test_help_and_status_do_not_import_torch(indexed):
    code = ("import sys; from codesearch.cli import main\n"
            "try:\n    main(['status', '--repo', sys.argv[1]])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'transformers' not in sys.modules\n")
    p = subprocess.run([sys.executable, "-c", code, str(indexed)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_default_model_falls_back_to_offline_e5_small_code_with_one_warning(make_git_repo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CODESEARCH_MODEL", raising=False)
    repo = make_git_repo(FILES)
    r = CliRunner().invoke(main, ["index", str(repo), "-q"])
    assert r.exit_code == 0, r.output
    warnings = [l for l in r.output.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and "Qwen/Qwen3-Embedding-0.6B" in warnings[0] and "e5-small-code" in warnings[0]
    status = CliRunner().invoke(main, ["status", "--repo", str(repo), "--json"])
    assert json.loads(status.output)["model"] == "e5-small-code"
    hits = json.loads(CliRunner().invoke(main, ["query", "--repo", str(repo), "--json", "-k", "1",
                                                "两个数相加"]).output)
    assert hits[0]["name"] == "add"


def test_explicit_model_that_cannot_load_is_an_error_not_a_substitute(make_git_repo, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}')
    repo = make_git_repo(FILES)
    r = CliRunner().invoke(main, ["index", str(repo), "--model", str(broken)])
    assert r.exit_code == 4 and "cannot load model" in r.output and "Traceback" not in r.output
