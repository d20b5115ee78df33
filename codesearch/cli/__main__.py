"""`python -m codesearch.cli ...` (what installed git hooks fall back to)."""

from . import entry

entry()
