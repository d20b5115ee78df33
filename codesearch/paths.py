"""Where things live: the repository root, its index folder and the user cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import CodesearchError

INDEX_FOLDER = ".codesearch"
INDEX_DB = "index.db"  # the database in an index folder (here: readers need no numpy to check for it)


def cache_dir() -> Path:
    """The user cache: $CODESEARCH_CACHE (the `cache_dir` setting; the application layer exports
    it, so worker processes and the libraries that keep caches there agree), else the platform's
    user cache folder (~/.cache/codesearch on Linux, via platformdirs)."""
    if os.environ.get("CODESEARCH_CACHE"):
        return Path(os.environ["CODESEARCH_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("codesearch", appauthor=False))


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

    Default `<repo>/.codesearch/`. With the `index_dir` setting (`--index-dir DIR`,
    $CODESEARCH_INDEX_DIR) the index goes under DIR instead, in a subfolder named after the
    repository path (for read-only checkouts or to keep the tree clean).
    """
    override = index_dir
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
