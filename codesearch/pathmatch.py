"""Gitignore patterns: the ignore files of discovery and the `--path` filter of search.

One matcher for both, pathspec's implementation of git's rules (`*` stays within a folder,
`**` crosses folders, a pattern without a slash matches at any depth, a trailing `/` only
matches folders, a matched folder covers everything in it, `!` re-includes, the last
matching pattern wins), so `.codesearchignore`, a plain folder's `.gitignore` files and
`codesearch query --path` mean the same thing as in git.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

from .errors import CodesearchError


def _spec(lines, where: str) -> pathspec.GitIgnoreSpec:
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as error:  # pathspec's GitWildMatchPatternError is a ValueError
        raise CodesearchError(f"{where}: {error}") from None


class IgnoreRules:
    """The patterns of several gitignore files, each relative to its own folder; a later file
    (a deeper folder) overrides an earlier one where both match, as in git."""

    def __init__(self):
        self._specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (folder, its patterns)

    def add_file(self, path: Path, base: str = "") -> None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        self.add_lines(text.splitlines(), base)

    def add_lines(self, lines, base: str = "") -> None:
        # a broken line in someone's ignore file must not stop indexing: keep the lines that parse
        good = []
        for line in lines:
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, TypeError):
                continue
            good.append(line)
        spec = pathspec.GitIgnoreSpec.from_lines(good)
        if spec.patterns:
            self._specs.append((base.strip("/"), spec))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the file or folder `rel` (relative to the root, "/"-separated) is ignored."""
        result = False
        for base, spec in self._specs:
            if base:
                if not rel.startswith(base + "/"):
                    continue
                sub = rel[len(base) + 1:]
            else:
                sub = rel
            include = spec.check_file(sub + "/" if is_dir else sub).include
            if include is not None:
                result = include
        return result


class PathFilter:
    """`--path` patterns in gitignore syntax, relative to the repository root: a path is kept
    when a pattern matches it (or only `!` patterns were given) and no `!PATTERN` does."""

    def __init__(self, patterns: list[str]):
        keep, leave_out = [], []
        for p in patterns:
            p = p.strip()
            negate = p.startswith("!")
            body = p[1:] if negate else p
            while body.startswith("./"):
                body = body[2:]
            if not body or body in (".", "/"):
                body = "**"  # the whole repository
            (leave_out if negate else keep).append(body)
        if not keep and not leave_out:
            raise CodesearchError("--path needs a pattern, e.g. --path 'src/**/*.py'")
        self.patterns = keep + ["!" + p for p in leave_out]
        self._keep = _spec(keep, "--path") if keep else None
        self._leave_out = _spec(leave_out, "--path") if leave_out else None

    def __call__(self, path: str) -> bool:
        if self._keep is not None and not self._keep.match_file(path):
            return False
        return not (self._leave_out is not None and self._leave_out.match_file(path))
