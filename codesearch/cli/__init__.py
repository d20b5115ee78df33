"""The `codesearch` command line: one module per command, all over the application layer.

Commands that need no model (`status`, `hook`, `--help`) never import torch; the model is
loaded only when something has to be embedded. Problems the user can fix surface as one
`error:` line and a non-zero exit code, not a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from .errors import MainGroup


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codesearch")
def main():
    """Semantic code search for a repository: index it once, then ask in English or Chinese.

    \b
      codesearch index ./repo
      codesearch query "read a CSV file and sort it"
      codesearch query --json -k 5 "读取CSV并排序"
    """


def _register() -> None:
    from .config_cmd import config
    from .daemon_cmd import daemon
    from .hook_cmd import hook
    from .index_cmd import index
    from .mcp_cmd import mcp
    from .query_cmd import query
    from .serve_cmd import serve
    from .status_cmd import status

    for command in (index, query, status, config, daemon, hook, mcp, serve):
        main.add_command(command)


_register()


def entry() -> None:
    """The console script. Once torch is loaded, the process ends with os._exit after the
    output is flushed: the interpreter's teardown of torch (and of CUDA) otherwise adds 1-2 s
    to every command (bench/cold_start.py measures it as `shutdown`), and nothing is left to
    do by then: the index is committed and closed, the phases trace is written here."""
    try:
        main.main(prog_name="codesearch")
        code = 0
    except SystemExit as done:
        code = done.code
    if "torch" in sys.modules:
        import multiprocessing

        if not multiprocessing.active_children():  # worker processes get their orderly stop
            from .. import phases

            phases.write_now()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    raise SystemExit(code)
