"""`python -m codesearch ...`"""

from .cli import entry

entry()
