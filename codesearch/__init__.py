"""codesearch: semantic code search for real repositories, from the command line."""

__version__ = "0.1.0"
