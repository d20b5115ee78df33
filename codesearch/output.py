"""What the user sees: hits on a terminal (colour, syntax highlighting), as grep and ripgrep
print them (`--vimgrep`, `-l`), as JSON, and the progress line while indexing.

Colour and highlighting only when stdout is a terminal and NO_COLOR is unset; piped
output is plain text, JSON is always plain. Every human-readable line that carries indexed
text (names, paths, code) goes through terminal.visible(); JSON escapes by itself.
Paths a person reads are relative to the current folder (display_path), as grep prints them;
JSON keeps the repository-relative `path` and adds `abs_path`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from .languages import LANGUAGES
from .terminal import visible


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")


def highlight(code: str, language: str) -> str:
    try:
        from pygments import highlight as pyg_highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import get_lexer_by_name
    except ImportError:
        return code
    name = LANGUAGES[language].pygments_name if language in LANGUAGES else language
    try:
        lexer = get_lexer_by_name(name)
    except Exception:  # noqa: BLE001 - unknown lexer: plain text
        return code
    return pyg_highlight(code, lexer, TerminalFormatter()).rstrip("\n")


def display_path(root: Path, rel: str, cwd: Path | None = None) -> str:
    """A hit's path as grep prints it: relative to the current folder when the repository is
    in it or around it (`../calc.py` from a subfolder), else absolute."""
    cwd = Path.cwd() if cwd is None else cwd
    full = Path(root) / rel
    try:
        inside = cwd == root or cwd.is_relative_to(root) or Path(root).is_relative_to(cwd)
    except ValueError:
        inside = False
    return os.path.relpath(full, cwd).replace(os.sep, "/") if inside else str(full)


def _cut_line(span: tuple[int, int], colour: bool) -> str:
    a, b = span
    text = f"... line {a} not shown" if a == b else f"... lines {a}-{b} not shown"
    return "    " + (click.style(text, dim=True) if colour else text)


def render_hits(hits: list[dict], paths: list[str], excerpts: list | None, colour: bool) -> str:
    """Hits for a person: rank, `path:START-END`, name and score, then the excerpt's lines
    numbered (excerpts None: locations only), with a marker where the function goes on."""
    blocks = []
    for i, (h, path) in enumerate(zip(hits, paths), 1):
        loc = visible(f"{path}:{h['start_line']}-{h['end_line']}")
        title = visible(h["qualname"]) if h["kind"] != "file" else "(file)"
        if colour:
            head = (click.style(f"{i:>2}. ", dim=True) + click.style(loc, fg="cyan") + "  "
                    + click.style(title, fg="yellow", bold=True) + click.style(f"  {h['score']:.3f}", dim=True))
        else:
            head = f"{i:>2}. {loc}  {title}  {h['score']:.3f}"
        lines = [head]
        ex = excerpts[i - 1] if excerpts else None
        if ex is not None and ex.lines:
            if ex.cut_before:
                lines.append(_cut_line(ex.cut_before, colour))
            text = visible("\n".join(ex.lines))  # escaped before colouring: only our own sequences remain
            shown = highlight(text, h["language"]) if colour else text
            width = len(str(ex.first_line + len(ex.lines) - 1))
            for n, line in enumerate(shown.split("\n")):
                num = str(ex.first_line + n).rjust(width)
                lines.append(("    " + click.style(num, dim=True) + " │ " if colour else f"    {num} | ") + line)
            if ex.cut_after:
                lines.append(_cut_line(ex.cut_after, colour))
            if ex.stale:
                note = "(the file changed since it was indexed: these are the indexed lines; run codesearch index)"
                lines.append("    " + (click.style(note, dim=True) if colour else note))
        blocks.append("\n".join(lines))
    return ("\n\n" if excerpts else "\n").join(blocks)


def render_vimgrep(hits: list[dict], paths: list[str]) -> str:
    """`path:line:col:text`, one line per hit, as `rg --vimgrep` prints and vim's default
    errorformat (`%f:%l:%c:%m`) reads: the line and column of the function's name."""
    from .snippets import anchor, anchor_text

    out = []
    for h, path in zip(hits, paths):
        line, col = anchor(h)
        out.append(visible(f"{path}:{line}:{col}:{anchor_text(h)}"))
    return "\n".join(out)


def render_files(hits: list[dict], paths: list[str]) -> str:
    """Each file with a hit once, best first (`-l`, as grep's --files-with-matches)."""
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(visible(path), None)
    return "\n".join(seen)


def hits_json(hits: list[dict]) -> str:
    return json.dumps(hits, ensure_ascii=False, indent=2)


def hits_jsonl(hits: list[dict], **extra) -> str:
    return "\n".join(json.dumps({**extra, **h}, ensure_ascii=False) for h in hits)


def _fmt_seconds(s: float) -> str:
    s = int(max(0, s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ConsoleReporter:
    """Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = 0
        self.done = 0
        self.tokens = 0
        self.t0 = 0.0
        self.last = 0.0

    def _print(self, msg: str) -> None:
        if not self.quiet:
            click.echo(visible(msg), file=self.stream)  # messages may quote file names and index text

    def info(self, msg: str) -> None:
        self._print(msg)

    def warn(self, msg: str) -> None:
        click.echo(visible(msg), file=self.stream)

    def start_embedding(self, total: int, tokens: int, device: str, estimate_s: float | None = None) -> None:
        self.total, self.done, self.tokens, self.t0 = total, 0, 0, time.perf_counter()
        line = f"embedding {total} pieces ({tokens} tokens) on {device}"
        if estimate_s is not None:
            line += f"; estimated {_fmt_seconds(estimate_s)} (~{tokens / max(estimate_s, 1e-9):,.0f} tokens/s)"
            if device == "cpu" and estimate_s > 600:
                line += (". That is long: a CUDA GPU is hundreds of times faster, and a smaller model "
                         "(--model e5-small-code) about 20x faster here than Qwen3-0.6B; Ctrl-C keeps the work done")
        self._print(line)

    def embedded(self, n: int, tokens: int) -> None:
        self.done += n
        self.tokens += tokens
        now = time.perf_counter()
        if self.quiet or (now - self.last < (0.2 if self.tty else 5.0) and self.done < self.total):
            return
        self.last = now
        rate = self.done / max(1e-6, now - self.t0)
        eta = (self.total - self.done) / rate if rate > 0 else 0
        width = 30
        filled = int(width * self.done / max(1, self.total))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{rate:.1f} units/s, {self.tokens / max(1e-6, now - self.t0):.0f} tok/s, ETA {_fmt_seconds(eta)}")
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        else:
            self._print(line)

    def done_embedding(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
