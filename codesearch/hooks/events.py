"""What a git event changes: the repository-relative paths a hook must re-index.

The hooks never walk the repository: they ask git which paths changed (`git diff
--name-status -z`: staged paths for pre-commit, the two heads' difference for post-checkout and
post-merge), so a hook costs one `git diff` whatever the repository's size. Paths with spaces
or non-ASCII characters are handled (`-z` output, surrogate-escaped like `git ls-files`).

git is run as a subprocess rather than through GitPython: the hook runs on every commit and
needs three plumbing commands, and GitPython would add its import time and call git anyway.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import CodesearchError

HOOK_NAMES = ("pre-commit", "post-checkout", "post-merge")
_NULL_SHA = re.compile(r"^0+$")


def git(cwd: Path, *args: str, env: dict | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True,
                          timeout=120).stdout


def decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")  # as files.py decodes `git ls-files`


def work_tree(repo: Path | None) -> Path:
    """The top of the working tree around `repo` (default: the current folder)."""
    start = (repo or Path.cwd()).expanduser()
    if not start.is_dir():
        raise CodesearchError(f"{start} is not a folder; pass the folder of a git repository")
    try:
        out = git(start, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        raise CodesearchError("git is not installed (or not on PATH); git hooks need it") from None
    except subprocess.CalledProcessError:
        raise CodesearchError(f"{start} is not inside a git working tree; run this in a repository "
                              f"(bare repositories have no working tree to index)") from None
    return Path(decode(out.rstrip(b"\n"))).resolve()


def hooks_dir(root: Path) -> Path:
    """Where git looks for this repository's hooks: honours core.hooksPath and worktrees."""
    out = decode(git(root, "rev-parse", "--git-path", "hooks").rstrip(b"\n"))
    path = Path(out).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def hooks_path_config(root: Path) -> str | None:
    try:
        return decode(git(root, "config", "--get", "core.hooksPath").rstrip(b"\n")) or None
    except subprocess.CalledProcessError:
        return None



def parse_name_status(out: bytes) -> set[str]:
    """Paths of `git diff --name-status -z` output: both sides of renames and copies."""
    tokens = out.split(b"\0")
    paths: set[str] = set()
    i = 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i]
        n = 2 if status[:1] in (b"R", b"C") else 1
        for name in tokens[i + 1:i + 1 + n]:
            if name:
                paths.add(decode(name))
        i += 1 + n
    return paths


def _diff(root: Path, *revs: str, cached: bool = False) -> set[str]:
    args = ["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", "--ignore-submodules"]
    if cached:
        args.append("--cached")
    return parse_name_status(git(root, *args, *revs))


def _rev_ok(root: Path, rev: str) -> bool:
    try:
        git(root, "rev-parse", "--verify", "--quiet", rev + "^{commit}")
        return True
    except subprocess.CalledProcessError:
        return False


class Change:
    """The paths one hook event changes. (Plain classes here, not dataclasses: importing
    dataclasses costs the hook milliseconds on every commit.)"""

    def __init__(self, paths: set[str] | None = None, stale: bool = False):
        self.paths = set(paths or ())
        self.stale = stale  # also re-check every indexed file's size and mtime (file checkouts)


def changed_paths(root: Path, hook: str, args: tuple[str, ...] = (), environ=None) -> Change:
    """What a hook event changes in the working tree, as repository-relative paths.

    pre-commit: the staged paths (added, modified, deleted, both sides of renames).
    post-checkout PREV NEW 1: the paths that differ between the two heads;
    post-checkout PREV NEW 0 (file checkout): what differs from HEAD, plus a check of the
    indexed files' sizes and mtimes (git does not say which files it checked out).
    post-merge: the paths that differ between ORIG_HEAD and HEAD (and the staged ones of a
    squash merge). Under the pre-commit framework the arguments arrive as PRE_COMMIT_* variables.
    """
    env = os.environ if environ is None else environ
    if hook == "pre-commit" and "PRE_COMMIT_CHECKOUT_TYPE" in env:
        hook = "post-checkout"  # one pre-commit-framework entry serves every stage
        args = (env.get("PRE_COMMIT_FROM_REF", ""), env.get("PRE_COMMIT_TO_REF", ""),
                env["PRE_COMMIT_CHECKOUT_TYPE"])
    elif hook == "pre-commit" and "PRE_COMMIT_IS_SQUASH_MERGE" in env:
        hook = "post-merge"
        args = (env["PRE_COMMIT_IS_SQUASH_MERGE"],)
    if hook == "pre-commit":
        return Change(_diff(root, cached=True))
    if hook == "post-checkout":
        prev, new, flag = (tuple(args) + ("", "", "1"))[:3]
        if flag == "0":
            return Change(_diff(root, "HEAD") if _rev_ok(root, "HEAD") else set(), stale=True)
        if not prev or not new or prev == new or _NULL_SHA.match(prev):
            return Change()  # same commit (e.g. `git checkout -b`), or a fresh clone
        return Change(_diff(root, prev, new))
    if hook == "post-merge":
        paths: set[str] = set()
        if _rev_ok(root, "ORIG_HEAD"):
            paths |= _diff(root, "ORIG_HEAD", "HEAD")
        if args and args[0] == "1":  # squash merge: HEAD did not move, the result is staged
            paths |= _diff(root, "HEAD", cached=True)
        return Change(paths)
    raise CodesearchError(f"unknown hook {hook!r}; codesearch runs as {', '.join(HOOK_NAMES)}")




def git_config(root: Path, key: str, as_bool: bool = False) -> str | None:
    """A value of `git config` in this repository (None when unset or git fails)."""
    args = ["config", "--bool", "--get", key] if as_bool else ["config", "--get", key]
    try:
        return decode(git(root, *args).strip()) or None
    except (subprocess.CalledProcessError, OSError):
        return None
