"""How the command line ends: one `error:` line and an exit code for problems the user can fix."""

from __future__ import annotations

import errno

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
            raise
