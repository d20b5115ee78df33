"""Text from indexed files made safe to print on a terminal.

A doc comment or a file name is data from someone else's repository. Printed raw, an escape
sequence in it would drive the user's terminal: `ESC ]52;c;...` writes the clipboard,
`ESC ]0;...` the window title, `ESC [2J` clears the screen, and bidirectional overrides
(U+202E ...) make code read differently from what it is ("Trojan Source"). Every piece of
human-readable output that carries indexed text goes through `visible()`, which shows such
characters as escapes (`\\x1b`, `\\u202e`) instead; codesearch's own colours are added after.
JSON output needs none of this: json.dumps escapes control characters itself.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, and the Unicode format characters that
# reorder or hide text (bidi embeddings/overrides/isolates, zero-width marks, BOM in the middle)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def visible(text: str) -> str:
    """`text` with every character that could act on a terminal written as a visible escape."""
    return _UNSAFE.sub(_escape, text)
