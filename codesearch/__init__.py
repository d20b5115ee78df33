"""codesearch: semantic code search for real repositories, from the command line."""

__version__ = "0.1.0"

from . import phases  # noqa: E402,F401 - starts the clock of CODESEARCH_TRACE as early as possible
