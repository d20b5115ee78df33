"""Which files of a repository get indexed, and reading them safely.

A git repository lists its own files (tracked plus untracked-but-not-ignored), so git's
ignore rules apply exactly. A plain folder is walked with the `.gitignore` files in it.
`.codesearchignore` (gitignore syntax, at the root) excludes more in both cases; both kinds of
ignore file are read by pathmatch.IgnoreRules (pathspec's gitignore rules).
Binary files, files over the size limit and symlinks are skipped with a reason, never
followed out of the repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .languages import LANGUAGES, Language, language_for_path
from .paths import INDEX_FOLDER
from .pathmatch import IgnoreRules  # noqa: F401 - the gitignore matcher, re-exported for callers of files

DEFAULT_MAX_FILE_SIZE = 1_000_000
# C++-only syntax that marks a `.h` header as C++ rather than C
_CPP_HEADER = re.compile(rb"^\s*(namespace\s+\w+\s*\{|class\s+\w+[^;]*\{|template\s*<|public:|private:|"
                         rb"#include\s*<(string|vector|map|memory|cstdint|cstddef|atomic|iostream)>)", re.M)
ALWAYS_SKIPPED_DIRS = {".git", INDEX_FOLDER, ".hg", ".svn"}


@dataclass
class SourceFile:
    path: str  # relative to the repository root, with "/" separators
    language: Language
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason


def _git_files(root: Path) -> list[str] | None:
    """Tracked plus untracked-not-ignored files, or None when `root` is not a git work tree."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-c", "core.quotepath=off", "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            cwd=root, capture_output=True, check=True, timeout=120,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
    return names


def _walk_files(root: Path) -> list[str]:
    rules = IgnoreRules()
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        if ".gitignore" in filenames:
            rules.add_file(Path(dirpath) / ".gitignore", rel_dir)
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in ALWAYS_SKIPPED_DIRS or rules.ignored(rel, True):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if not rules.ignored(rel, False):
                found.append(rel)
    return found


def discover(root: Path, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
             only: list[str] | None = None) -> Discovery:
    """The indexable source files under `root`.

    `only` restricts the result to those relative paths (used by the git hooks, which
    must never walk the whole repository); a listed path that no longer exists or is
    no longer indexable is simply absent from the result.
    """
    root = root.resolve()
    if only is not None:
        names = sorted(set(only))
        git_names = None
    else:
        git_names = _git_files(root)
        names = git_names if git_names is not None else _walk_files(root)
    extra = IgnoreRules()
    extra.add_file(root / ".codesearchignore")
    result = Discovery()
    for rel in names:
        if rel.split("/", 1)[0] in ALWAYS_SKIPPED_DIRS:
            continue
        if extra.ignored(rel, False) or any(
                extra.ignored("/".join(rel.split("/")[:i]), True) for i in range(1, rel.count("/") + 1)):
            continue
        full = root / rel
        try:
            st = full.lstat()
        except OSError:
            continue  # deleted since git listed it
        if os.path.islink(full):
            result.skipped[rel] = "symlink (not followed)"
            continue
        if not full.is_file():
            continue
        head = b""
        lang = language_for_path(rel)
        if lang is None and st.st_size and "." not in os.path.basename(rel):
            head = _head(full)
            lang = language_for_path(rel, head.split(b"\n", 1)[0])
        if lang is not None and lang.name == "c" and rel.endswith(".h"):
            head = _head(full, 65536)
            if _CPP_HEADER.search(head):
                lang = LANGUAGES["cpp"]  # `.h` is shared by C and C++: look inside
        if lang is None:
            continue
        if st.st_size > max_file_size:
            result.skipped[rel] = f"larger than {max_file_size} bytes"
            continue
        if b"\0" in (head or _head(full)):
            result.skipped[rel] = "binary"
            continue
        result.files.append(SourceFile(rel, lang, st.st_size, st.st_mtime_ns))
    return result


def _head(path: Path, n: int = 8192) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def read_source(root: Path, rel: str) -> tuple[bytes, str]:
    """The file's bytes as valid UTF-8 (broken sequences replaced) and the hash of the raw bytes."""
    raw = (root / rel).read_bytes()
    digest = hashlib.sha1(raw).hexdigest()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")
        text = raw
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace").encode("utf-8")
    return text.replace(b"\r\n", b"\n"), digest
