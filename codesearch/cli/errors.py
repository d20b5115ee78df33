"""How the command line ends: one `error:` line and an exit code for problems the user can fix.

Exit codes as grep's: 0 found, 1 nothing found, 2 and above an error (codesearch/errors.py
lists them). A bug keeps its traceback but exits 2 too, so a script never takes it for
"nothing matched".
"""

from __future__ import annotations

import errno
import traceback

import click

from ..errors import CodesearchError


def say_error(msg: str) -> None:
    click.echo(msg, err=True)


class MainGroup(click.Group):
    """Turns CodesearchError into `error: ...` and an exit code, and Ctrl-C into a calm line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodesearchError as error:
            say_error(f"error: {error}")
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            say_error("interrupted: the previous index is intact; run the command again to continue")
            ctx.exit(130)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                say_error(f"error: no space left on device ({error.filename or 'index folder'}); "
                          f"free some space or use --index-dir on another disk, then run again")
                ctx.exit(7)
            if error.errno == errno.EPIPE:
                raise  # the reader went away (`| head`): click ends quietly
            traceback.print_exc()
            ctx.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception:  # noqa: BLE001 - a bug: its traceback, and grep's error status
            traceback.print_exc()
            ctx.exit(2)
