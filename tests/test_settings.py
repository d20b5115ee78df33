"""Settings: the layers in order, what a repository may set, clear errors, and the docs table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from codesearch.errors import CodesearchError
from codesearch.settings import KEYS, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_layers_in_order_flag_env_repo_user_default(tmp_path):
    user = write(tmp_path / "user.toml", 'k = 3\nmode = "lexical"\nthreads = 1\nmax_file_size = 10\n')
    repo = tmp_path / "repo"
    write(repo / ".codesearch.toml", "k = 4\nmax_file_size = 20\n")
    env = {"CODESEARCH_CONFIG": str(user), "CODESEARCH_THREADS": "2"}
    s = load_settings(repo, environ=env)
    assert (s.k, s.mode, s.threads, s.max_file_size, s.daemon) == (4, "lexical", 2, 20, True)
    assert s.sources["k"].endswith(".codesearch.toml") and s.sources["mode"] == str(user)
    assert s.sources["threads"] == "CODESEARCH_THREADS" and "daemon" not in s.sources
    flagged = s.with_flags(k=7, mode=None)
    assert flagged.k == 7 and flagged.sources["k"] == "flag" and flagged.mode == "lexical"


def test_a_repository_cannot_set_what_it_must_not(tmp_path):
    repo = tmp_path / "repo"
    write(repo / ".codesearch.toml", 'index_dir = "/tmp/elsewhere"\ncache_dir = "/tmp/x"\nbogus = 1\nk = 2\n')
    warnings = []
    s = load_settings(repo, environ={"CODESEARCH_CONFIG": str(tmp_path / "none.toml")}, warn=warnings.append)
    assert s.index_dir is None and s.cache_dir is None and s.k == 2
    assert len(warnings) == 3 and all(w.startswith("warning: ") for w in warnings)
    assert any("'index_dir' can only be set in your own config" in w for w in warnings)
    assert any("unknown setting 'bogus'" in w for w in warnings)


@pytest.mark.parametrize("text,fragment", [
    ("k = 'ten'", "not a valid k"),
    ("k = 0", "must be at least 1"),
    ('mode = "fuzzy"', "must be one of hybrid, semantic, lexical"),
    ("daemon = 3", "not a valid daemon"),
    ("k = [", "is not valid TOML"),
])
def test_bad_values_are_one_line_errors(tmp_path, text, fragment):
    user = write(tmp_path / "user.toml", text + "\n")
    with pytest.raises(CodesearchError, match=fragment):
        load_settings(None, environ={"CODESEARCH_CONFIG": str(user)})


def test_environment_values_are_checked_too():
    with pytest.raises(CodesearchError, match="CODESEARCH_DAEMON_IDLE"):
        load_settings(None, environ={"CODESEARCH_CONFIG": "/nonexistent", "CODESEARCH_DAEMON_IDLE": "soon"})
    s = load_settings(None, environ={"CODESEARCH_CONFIG": "/nonexistent", "CODESEARCH_DAEMON": "off"})
    assert s.daemon is False


def test_every_key_is_a_field_and_documented():
    fields = set(Settings.__dataclass_fields__) - {"sources"}
    assert {k.name for k in KEYS} == fields
    assert all(getattr(Settings(), k.name) == k.default for k in KEYS)
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for k in KEYS:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{k.name}` |")), None)
        assert row is not None, f"{k.name} missing from docs/configuration.md"
        assert (f"`{k.env}`" in row) if k.env else ("| — |" in row)
        assert ("| yes |" in row) == k.repo


def test_config_command_shows_values_and_sources(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    write(repo / ".codesearch.toml", "k = 5\n")
    monkeypatch.setenv("CODESEARCH_THREADS", "1")
    r = CliRunner().invoke(main, ["config", "--repo", str(repo), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)["settings"]
    assert data["k"] == {"value": 5, "source": str(repo / ".codesearch.toml")}
    assert data["threads"] == {"value": 1, "source": "CODESEARCH_THREADS"}
    assert data["mode"] == {"value": "hybrid", "source": "default"}
