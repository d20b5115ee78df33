"""One test per security hole of issue 11, on real processes, real git and real folders.

1. Terminal escapes: indexed text (doc comments, file names) never drives the terminal: on a
   pseudo-terminal (pty) and piped, human output shows control characters escaped; JSON keeps
   them exact.
2. Files outside the repository: no path (from a hook, a listing, a crafted name) reads a file
   outside the repository root, whatever symlinked folder lies on the way.
3. Socket folder takeover: the daemon's socket folder must be this user's alone.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import BIDI, CLEAR, ESC, OSC52, TITLE, git  # noqa: E402

from codesearch import daemon  # noqa: E402
from codesearch.files import OUTSIDE, UNDER_SYMLINK, discover, read_source  # noqa: E402
from codesearch.fsutil import UnsafeFolderError, private_folder  # noqa: E402

PY = sys.executable
DOC = f"Parse the settings file.{OSC52}{TITLE}{CLEAR} {BIDI}gnirts desrever"
FILES = {"settings_loader.py": f'def load_settings(path):\n    """{DOC}"""\n    return open(path).read()\n',
         f"evil{ESC}]0;title{chr(7)}name.py": "def oddly_named_loader(path):\n    return path\n"}
OUR_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # SGR only: what codesearch itself adds on a terminal


def cs(*args, env=None, **kw):
    return subprocess.run([PY, "-m", "codesearch.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, **kw)


@pytest.fixture(scope="module")
def escape_repo(tmp_path_factory, e5_spec):
    repo = tmp_path_factory.mktemp("escapes") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel, text in FILES.items():
        (repo / rel).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    r = cs("index", str(repo), "--model", "e5-small", "-q")
    assert r.returncode == 0, r.stderr
    return repo


def on_pty(args: list[str]) -> str:
    """What `codesearch ARGS` writes to a terminal (stdout and stderr on a pty)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([PY, "-m", "codesearch.cli", *args], stdin=follower, stdout=follower, stderr=follower,
                            env={**os.environ, "NO_COLOR": "", "TERM": "xterm-256color"}, close_fds=True)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(leader)
    return out.decode("utf-8", "replace")


def assert_inert(text: str) -> None:
    """No escape sequence but codesearch's own colours, no bidi override, no BEL."""
    leftover = OUR_COLOURS.sub("", text)
    assert ESC not in leftover, repr(leftover[max(0, leftover.find(ESC) - 40):leftover.find(ESC) + 40])
    assert BIDI not in text and "\x07" not in text
    assert "\\x1b]52;c;" in text  # shown, escaped: the user sees what the file holds


def test_terminal_escapes_are_shown_escaped_on_a_terminal_and_piped(escape_repo):
    args = ["query", "--repo", str(escape_repo), "-k", "2", "--no-daemon", "parse the settings file"]
    terminal = on_pty(args)
    assert "load_settings" in terminal and OUR_COLOURS.search(terminal), terminal  # coloured, as before
    assert_inert(terminal)
    piped = cs(*args)
    assert piped.returncode == 0 and "load_settings" in piped.stdout
    assert ESC not in piped.stdout and ESC not in piped.stderr  # piped: no colour at all
    assert_inert(piped.stdout)
    assert "evil\\x1b]0;title\\x07name.py" in piped.stdout  # the file name too


def test_json_keeps_indexed_text_exact(escape_repo):
    r = cs("query", "--repo", str(escape_repo), "-k", "2", "--json", "--no-daemon", "parse the settings file")
    hits = {h["name"]: h for h in json.loads(r.stdout)}
    assert DOC in hits["load_settings"]["snippet"] and DOC == hits["load_settings"]["doc"]
    assert "\\u001b" in r.stdout and ESC not in r.stdout  # JSON escapes control characters itself
    assert f"evil{ESC}]0;title{chr(7)}name.py" in {h["path"] for h in hits.values()}


def test_status_and_summary_escape_indexed_names(escape_repo, tmp_path):
    status = cs("status", "--repo", str(escape_repo))
    assert status.returncode == 0 and ESC not in status.stdout
    big = escape_repo / f"big{ESC}[2J.py"
    big.write_text("x = 1\n" * 100)
    r = cs("index", str(escape_repo), "--max-file-size", "400")
    assert r.returncode == 0 and "skipped: 1 larger than 400 bytes" in r.stdout, r.stdout + r.stderr
    assert ESC not in r.stdout + r.stderr
    big.unlink()


# -- 2. nothing outside the repository ------------------------------------------------------------

SECRET = "def outside_secret_token():\n    return 'the secret outside the repository'\n"


def test_hook_never_indexes_files_through_a_symlinked_folder(tmp_path, e5_spec):
    """Commit sub/secret.py, install the hooks, replace sub/ with a symlink to a folder outside,
    commit: the outside file must not be indexed (it was, and became searchable)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text(SECRET)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "sub").mkdir()
    (repo / "sub" / "secret.py").write_text("def inside_function():\n    return 1\n")
    (repo / "main.py").write_text("def main_entry():\n    return 0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    assert cs("index", str(repo), "--model", "e5-small", "-q").returncode == 0
    assert cs("hook", "install", "--sync", "--repo", str(repo)).returncode == 0
    (repo / "sub" / "secret.py").unlink()
    (repo / "sub").rmdir()
    (repo / "sub").symlink_to(outside, target_is_directory=True)
    (repo / "main.py").write_text("def main_entry():\n    return 1\n")
    git(repo, "add", "main.py")  # git itself refuses paths beyond a symlink; the hook is handed sub/secret.py
    git(repo, "commit", "-q", "-m", "two")
    for extra in ([], ["index", str(repo), "-q"]):
        if extra:
            assert cs(*extra).returncode == 0  # a full run too (git ls-files still lists sub/secret.py)
        r = cs("query", "--repo", str(repo), "--json", "--mode", "lexical", "--no-daemon", "outside_secret_token")
        assert "outside_secret_token" not in r.stdout and "the secret outside" not in r.stdout, r.stdout
    found = discover(repo)
    assert found.skipped.get("sub/secret.py") == UNDER_SYMLINK
    cs("hook", "stop", "--repo", str(repo))  # the sync hook's worker lingers: end it


def test_listed_paths_cannot_leave_the_repository(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(SECRET)
    repo = tmp_path / "repo"
    (repo / "real").mkdir(parents=True)
    (repo / "real" / "ok.py").write_text("def ok():\n    return 1\n")
    (repo / "inner").symlink_to(repo / "real", target_is_directory=True)  # even one pointing inside
    names = ["../outside.py", str(outside), "real/../../outside.py", "./real/ok.py", "inner/ok.py", "real/ok.py"]
    found = discover(repo, only=names)
    assert [f.path for f in found.files] == ["real/ok.py"]
    for name in names[:4]:
        assert found.skipped[name] == OUTSIDE, name
    assert found.skipped["inner/ok.py"] == UNDER_SYMLINK
    for name in ("../outside.py", "inner/ok.py", str(outside)):
        with pytest.raises(OSError):
            read_source(repo, name)
    (repo / "real" / "link.py").symlink_to(outside)
    with pytest.raises(OSError):
        read_source(repo, "real/link.py")  # the last component is opened without following it


# -- 3. the daemon's socket folder ------------------------------------------------------------------

@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder moved into the test's own, and no XDG_RUNTIME_DIR: the fallback folder
    (codesearch-<uid>) is then ours to attack without touching the real /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return tmp_path / f"codesearch-{os.getuid()}"


LONG_INDEX = Path("/nonexistent") / ("deep" * 30) / ".codesearch"  # too long for a socket address


def test_socket_folder_made_private(private_tmp):
    path = daemon.socket_path(LONG_INDEX)
    assert path.parent == private_tmp and (private_tmp.stat().st_mode & 0o777) == 0o700


def test_socket_folder_open_to_others_is_refused(private_tmp):
    private_tmp.mkdir()
    os.chmod(private_tmp, 0o777)  # as another user would have made it
    with pytest.raises(UnsafeFolderError, match="open to other users"):
        daemon.socket_path(LONG_INDEX)
    assert daemon.request(LONG_INDEX, {"op": "ping"}) is None  # the client never connects there
    lines = []

    class Ws:
        index_dir = LONG_INDEX

    assert daemon.start(Ws, notice=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("warning: no background query process")


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder owned by another user needs root")
def test_socket_folder_of_another_user_is_refused(private_tmp):
    import pwd

    private_tmp.mkdir(mode=0o700)
    os.chown(private_tmp, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(UnsafeFolderError, match="belongs to uid"):
        daemon.socket_path(LONG_INDEX)


def test_socket_folder_symlink_is_refused(private_tmp, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    private_tmp.symlink_to(elsewhere)
    with pytest.raises(UnsafeFolderError, match="symlink"):
        private_folder(private_tmp)


def test_runtime_dir_is_used_when_sound(tmp_path, monkeypatch):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert daemon.socket_path(LONG_INDEX).parent == runtime / "codesearch"
    assert (runtime / "codesearch").stat().st_mode & 0o777 == 0o700
