"""Where things live: the repository root, its index folder and the user cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import CodesearchError

INDEX_FOLDER = ".codesearch"


def cache_dir() -> Path:
    """The user cache: $CODESEARCH_CACHE, else $XDG_CACHE_HOME/codesearch, else ~/.cache/codesearch."""
    if os.environ.get("CODESEARCH_CACHE"):
        return Path(os.environ["CODESEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codesearch"


def find_repo_root(start: Path) -> Path:
    """The repository around `start`: the nearest folder with .git or an existing index.

    Falls back to `start` itself, so a plain directory can be indexed too.
    """
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / ".git").exists() or (folder / INDEX_FOLDER / "index.db").exists():
            return folder
    return start


def index_dir_for(repo: Path, index_dir: str | None = None) -> Path:
    """The index folder of a repository.

    Default `<repo>/.codesearch/`. With `--index-dir DIR` or $CODESEARCH_INDEX_DIR the index
    goes under DIR instead, in a subfolder named after the repository path (for read-only
    checkouts or to keep the tree clean).
    """
    override = index_dir or os.environ.get("CODESEARCH_INDEX_DIR")
    repo = repo.resolve()
    if not override:
        return repo / INDEX_FOLDER
    digest = hashlib.sha1(str(repo).encode("utf-8")).hexdigest()[:12]
    return Path(override).expanduser().resolve() / f"{repo.name}-{digest}"


def check_repo(repo: Path) -> Path:
    repo = repo.expanduser()
    if not repo.exists():
        raise CodesearchError(f"{repo} does not exist; pass the folder of a repository to index")
    if not repo.is_dir():
        raise CodesearchError(f"{repo} is not a folder; pass the folder of a repository to index")
    return repo.resolve()
