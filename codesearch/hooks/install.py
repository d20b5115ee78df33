"""Installing and removing our marked block in the repository's git hooks.

`install` adds a small marked block to the pre-commit, post-checkout and post-merge hooks
(where git runs them: `core.hooksPath` and worktrees respected), keeping whatever the user's
hooks already do; `uninstall` removes exactly the bytes it added (a hook file we created is
deleted). Only shell hooks can take the block; anything else is refused with a hint.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from ..errors import CodesearchError
from ..fsutil import atomic_write
from .events import HOOK_NAMES, hooks_dir

BEGIN = "# >>> codesearch >>>"
END = "# <<< codesearch <<<"
TAG_CREATED = "# codesearch: created this file"
TAG_NEWLINE = "# codesearch: added a newline after the first line"
SHEBANG = "#!/bin/sh\n"
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"}


def _console_script() -> Path | None:
    """The `codesearch` executable of this installation (not a version-manager shim)."""
    import sysconfig

    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "codesearch" and argv0.is_file():
        return argv0.absolute()
    candidate = Path(sysconfig.get_path("scripts")) / "codesearch"
    return candidate if candidate.is_file() else None


def hook_block(name: str, options: list[str], created: bool = False, added_newline: bool = False) -> str:
    """The marked block: the recorded `codesearch` executable, else this interpreter, else PATH."""
    from shlex import quote as q

    tail = " ".join(q(a) for a in ["hook", "run", *options, name]) + ' -- "$@" || true'
    lines = [BEGIN, "# keeps the codesearch index fresh; `codesearch hook uninstall` removes this block"]
    if created:
        lines.append(TAG_CREATED)
    if added_newline:
        lines.append(TAG_NEWLINE)
    script = _console_script()
    python = q(sys.executable)
    keyword = "if"
    if script is not None:
        lines.append(f"if [ -x {q(str(script))} ]; then {q(str(script))} {tail}")
        keyword = "elif"
    lines.append(f"{keyword} [ -x {python} ]; then {python} -m codesearch.cli {tail}")
    lines.append(f"elif command -v codesearch >/dev/null 2>&1; then codesearch {tail}")
    lines.append("fi")
    lines.append(END)
    return "\n".join(lines) + "\n"


class Parsed:
    def __init__(self, original: bytes, block: str | None, created: bool = False):
        self.original = original  # the file without our block, byte for byte
        self.block = block  # our block, if present
        self.created = created


def split_block(content: bytes) -> Parsed:
    """Separate our marked block from the rest of a hook file."""
    begin = content.find(BEGIN.encode())
    if begin < 0 or (begin > 0 and content[begin - 1:begin] != b"\n"):
        return Parsed(content, None)
    end = content.find(END.encode(), begin)
    if end < 0:
        return Parsed(content, None)
    stop = end + len(END)
    if content[stop:stop + 1] == b"\n":
        stop += 1
    block = content[begin:stop].decode("utf-8", "surrogateescape")
    start = begin
    if TAG_NEWLINE in block and start > 0 and content[start - 1:start] == b"\n":
        start -= 1
    return Parsed(content[:start] + content[stop:], block, created=TAG_CREATED in block)


def _interpreter(first_line: bytes) -> str:
    words = first_line[2:].decode("utf-8", "replace").split()
    if not words:
        return ""
    prog = os.path.basename(words[0])
    if prog == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        prog = os.path.basename(rest[0]) if rest else ""
    return prog


def insert_block(original: bytes, block_for) -> bytes:
    """Our block right after the shebang line (before any `exit` the user's hook ends with)."""
    if original.startswith(b"#!"):
        nl = original.find(b"\n")
        if nl < 0:
            return original + b"\n" + block_for(False, True).encode()
        return original[:nl + 1] + block_for(False, False).encode() + original[nl + 1:]
    return block_for(False, False).encode() + original


class HookFile:
    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.exists = False
        self.installed = False
        self.created = False  # our block is all there is
        self.options: list[str] = []
        self.problem = ""


def _read_hook(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def inspect_hook(directory: Path, name: str) -> HookFile:
    path = directory / name
    info = HookFile(name, path)
    if path.exists() and not path.is_file():
        info.exists = True
        info.problem = f"{path} is not a file"
        return info
    content = _read_hook(path)
    if content is None:
        return info
    info.exists = True
    parsed = split_block(content)
    if parsed.block is not None:
        info.installed = True
        info.created = parsed.created and parsed.original == SHEBANG.encode()
        m = re.search(r"hook run ((?:\S+ )*?)" + re.escape(name) + " -- ", parsed.block)
        info.options = m.group(1).split() if m else []
    if not os.access(path, os.X_OK):
        info.problem = f"{path} is not executable, so git does not run it"
    elif parsed.original.startswith(b"#!"):
        interp = _interpreter(parsed.original.split(b"\n", 1)[0])
        if interp not in SHELLS:
            info.problem = (f"{path} is a {interp or 'non-shell'} script; codesearch can only add "
                            f"its block to shell hooks")
    return info



def install(root: Path, options: list[str], names=HOOK_NAMES) -> list[str]:
    """Add (or refresh) our block in each hook; returns one line per hook."""
    directory = hooks_dir(root)
    infos = [inspect_hook(directory, n) for n in names]
    bad = [i for i in infos if i.problem]
    if bad:  # check all first: change nothing rather than half
        i = bad[0]
        raise CodesearchError(
            f"{i.problem}; fix or remove it, or call `codesearch hook run {i.name} -- \"$@\" || true` "
            f"from it yourself (nothing was installed)")
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for info in infos:
        def block_for(created: bool, added_newline: bool, name=info.name) -> str:
            return hook_block(name, options, created, added_newline)

        if not info.exists:
            atomic_write(info.path, (SHEBANG + block_for(True, False)).encode(), 0o755)
            lines.append(f"{info.name}: installed ({info.path})")
            continue
        content = info.path.read_bytes()
        parsed = split_block(content)
        if parsed.block is not None and parsed.created and parsed.original == SHEBANG.encode():
            new = (SHEBANG + block_for(True, False)).encode()
        else:
            new = insert_block(parsed.original, block_for)
        mode = stat.S_IMODE(info.path.stat().st_mode)
        if new == content:
            lines.append(f"{info.name}: already installed ({info.path})")
            continue
        atomic_write(info.path, new, mode)
        what = "updated" if parsed.block is not None else "installed, keeping your existing hook"
        lines.append(f"{info.name}: {what} ({info.path})")
    return lines


def uninstall(root: Path, names=HOOK_NAMES) -> list[str]:
    """Remove our block; a hook file we created is deleted, any other is restored byte for byte."""
    directory = hooks_dir(root)
    lines = []
    for name in names:
        path = directory / name
        content = _read_hook(path) if path.is_file() else None
        parsed = split_block(content) if content is not None else None
        if parsed is None or parsed.block is None:
            lines.append(f"{name}: not installed")
            continue
        if parsed.created and parsed.original == SHEBANG.encode():
            path.unlink()
            lines.append(f"{name}: removed ({path})")
        else:
            atomic_write(path, parsed.original, stat.S_IMODE(path.stat().st_mode))
            lines.append(f"{name}: removed the codesearch block; your hook is as it was ({path})")
    return lines


