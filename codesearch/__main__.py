"""`python -m codesearch ...`"""

from .cli import main

main(prog_name="codesearch")
