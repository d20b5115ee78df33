"""Which files of a repository get indexed, and reading them safely.

A git repository lists its own files (tracked plus untracked-but-not-ignored), so git's
ignore rules apply exactly. A plain folder is walked with the `.gitignore` files in it.
`.codesearchignore` (gitignore syntax, at the root) excludes more in both cases; both kinds of
ignore file are read by pathmatch.IgnoreRules (pathspec's gitignore rules).
Binary files, files over the size limit, symlinks, paths under a symlinked folder, names that
are not UTF-8 and paths too long for the system are skipped with a reason; nothing is read
from outside the repository, whatever a listed path says (`..`, absolute, a folder that was
replaced by a symlink after it was committed).
"""

from __future__ import annotations

import errno
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
# Bytes that text files (source code) practically never hold: C0 controls other than tab,
# newlines, vertical tab, form feed, backspace and ESC, and DEL. Random bytes hold about 10%.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c\x08\x1b") + b"\x7f"
BINARY_CONTROL_SHARE = 0.05
OUTSIDE = "outside the repository (not read)"
UNDER_SYMLINK = "under a symlinked folder (not followed)"


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


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file are not text: a NUL, or more than 5% control bytes.

    A NUL alone let random bytes through (a `.c` file of noise was indexed as C); text in any
    ASCII-compatible encoding (UTF-8, Latin-1, GBK) has next to no control bytes.
    """
    if b"\0" in head:
        return True
    if not head:
        return False
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > BINARY_CONTROL_SHARE * len(head)


def printable_path(rel: str) -> str:
    """A listed name as valid text: bytes that are not UTF-8 (kept by git's listing as
    surrogate escapes) are written as \\xNN, so a summary or JSON can always show it."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def path_problem(root: Path, rel: str, checked_dirs: dict[str, bool] | None = None) -> str | None:
    """Why `rel` must not be read from `root` (None when it is fine).

    `root` is resolved. A path must be relative, without `..`, in UTF-8, and every folder on
    the way must be a real folder of the repository: a symlinked folder anywhere along the
    path is not followed (git never lists files through one, so such a path means a folder was
    replaced by a symlink after it was committed, or a hook was handed a crafted name).
    """
    if not rel or os.path.isabs(rel):
        return OUTSIDE
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return OUTSIDE
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not UTF-8 (rename it to index it)"
    checked = {} if checked_dirs is None else checked_dirs
    for i in range(1, len(parts)):
        folder = "/".join(parts[:i])
        ok = checked.get(folder)
        if ok is None:
            full = root / folder
            try:
                ok = not os.path.islink(full) and os.path.realpath(full) == str(full)
            except (OSError, ValueError):
                ok = False
            checked[folder] = ok
        if not ok:
            return UNDER_SYMLINK
    return None


def discover(root: Path, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
             only: list[str] | None = None) -> Discovery:
    """The indexable source files under `root`.

    `only` restricts the result to those relative paths (used by the git hooks, which
    must never walk the whole repository); a listed path that no longer exists or is
    no longer indexable is simply absent from the result, and one that points outside the
    repository is skipped with a reason.
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
    checked_dirs: dict[str, bool] = {}
    for rel in names:
        if rel.split("/", 1)[0] in ALWAYS_SKIPPED_DIRS:
            continue
        problem = path_problem(root, rel, checked_dirs)
        if problem is not None:
            if problem == OUTSIDE or language_for_path(rel) is not None or only is not None:
                result.skipped[printable_path(rel)] = problem
            continue
        if extra.ignored(rel, False) or any(
                extra.ignored("/".join(rel.split("/")[:i]), True) for i in range(1, rel.count("/") + 1)):
            continue
        full = root / rel
        try:
            st = full.lstat()
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                result.skipped[rel] = f"path too long for the system ({len(os.fsencode(full))} bytes)"
            continue  # else: deleted since git listed it
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
        head = head or _head(full)
        if not _utf16_bom(head) and looks_binary(head):
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


_UTF16_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
               (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _utf16_bom(head: bytes) -> tuple[bytes, str] | None:
    """The byte order mark and codec of a UTF-16/32 text (such files hold NULs but are text)."""
    for bom, codec in _UTF16_BOMS:
        if head.startswith(bom):
            return bom, codec
    return None


def read_source(root: Path, rel: str) -> tuple[bytes, str]:
    """The file's text as UTF-8 bytes with "\n" line ends, and the hash of the raw bytes.

    UTF-16 and UTF-32 with a byte order mark are decoded; anything else is read as UTF-8,
    broken sequences replaced. CRLF and lone CR (old Mac files) both end a line, as in editors,
    so line numbers match what the user sees. The path is checked again right before reading
    (see `path_problem`) and the last component is opened without following a symlink.
    """
    root = Path(root).resolve()
    problem = path_problem(root, rel)
    if problem is not None:
        raise OSError(errno.EACCES, problem)
    fd = os.open(root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    digest = hashlib.sha1(raw).hexdigest()
    wide = _utf16_bom(raw)
    if wide is not None:
        bom, codec = wide
        text = raw[len(bom):].decode(codec, "replace").encode("utf-8")
    else:
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            raw.decode("utf-8")
            text = raw
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace").encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), digest
