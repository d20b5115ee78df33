"""`codesearch daemon status|stop`: the warm background process that answers repeated queries."""

from __future__ import annotations

import click

from .errors import say_error
from .options import index_dir_option, repo_option


@click.group()
def daemon():
    """The warm background process that answers repeated queries fast."""


@daemon.command("stop")
@repo_option()
@index_dir_option()
def daemon_stop(repo, index_dir):
    """Stop this repository's background query process."""
    from .. import daemon as d
    from ..app import open_workspace

    ws = open_workspace(repo, warn=say_error, index_dir=index_dir)
    click.echo("stopped" if d.stop(ws.index_dir) else "not running")


@daemon.command("status")
@repo_option()
@index_dir_option()
def daemon_status(repo, index_dir):
    """Whether a background query process serves this repository."""
    from .. import daemon as d
    from ..app import open_workspace

    ws = open_workspace(repo, warn=say_error, index_dir=index_dir)
    reply = d.request(ws.index_dir, {"op": "ping"}, timeout=5)
    if reply and reply.get("ok"):
        click.echo(f"running (pid {reply['pid']})")
    else:
        pid = d.loading_pid(ws.index_dir)
        click.echo(f"starting (pid {pid}): loading the index and the model" if pid else "not running")
