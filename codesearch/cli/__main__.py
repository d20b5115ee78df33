"""`python -m codesearch.cli ...` (what installed git hooks fall back to)."""

from . import main

main(prog_name="codesearch")
