"""How the command line ends: one `error:` line and an exit code for problems the user can fix.

Exit codes as grep's: 0 found, 1 nothing found, 2 and above an error (codesearch/errors.py
lists them). A bug keeps its traceback but exits 2 too, so a script never takes it for
"nothing matched".
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import traceback

import click

from ..errors import CodesearchError, user_error
from ..terminal import visible


def say_error(msg: str) -> None:
    """One line on stderr. Messages may quote file names and text from the repository: shown
    with control characters escaped (terminal.visible)."""
    click.echo(visible(msg), err=True)


def _model_threads_alive() -> bool:
    return any(t.name == "codesearch-embed" and t.is_alive() for t in threading.enumerate())


def _error_line(error: BaseException) -> str:
    """`error: <message>` on one line, whatever the message holds (SQLite's integrity report,
    an embedding server's reply, a file name: line breaks would split it into several)."""
    return "error: " + " ".join(str(error).split())


class MainGroup(click.Group):
    """Turns CodesearchError into `error: ...` and an exit code, and Ctrl-C into a calm line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodesearchError as error:
            say_error(_error_line(error))
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            say_error("interrupted: the previous index is intact; run the command again to continue")
            if _model_threads_alive():
                # a second Ctrl-C while the batch in flight finished: leave now, skipping the
                # interpreter's teardown, which would abort a thread still inside torch
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OSError as error:
            if error.errno == errno.EPIPE:
                raise  # the reader went away (`| head`): click ends quietly
            self._fail(ctx, error)
        except Exception as error:  # noqa: BLE001 - SQLite errors and a full disk become one line
            self._fail(ctx, error)

    @staticmethod
    def _fail(ctx, error: BaseException) -> None:
        """One line for what the user can act on (SQLite errors, a full disk); a bug keeps its
        traceback and exits with grep's error status."""
        failure = user_error(error)
        if failure is None:
            traceback.print_exc()
            ctx.exit(2)
        say_error(_error_line(failure))
        ctx.exit(failure.exit_code)
