"""`codesearch mcp`: serve this repository's search to coding agents over MCP (codesearch/mcp_server.py)."""

from __future__ import annotations

import click

from .errors import say_error
from .options import device_option, index_dir_option, repo_option


@click.command()
@repo_option("Repository to serve (default: the one around the current folder).")
@click.option("--http", is_flag=True, help="Serve streamable HTTP on a loopback address instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address for --http.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port for --http.")
@device_option()
@index_dir_option()
def mcp(repo, http, host, port, device, index_dir):
    """Serve code search over MCP (stdio by default) with the tools search, index_status and reindex.

    \b
      claude mcp add codesearch -- codesearch mcp --repo /path/to/repo
      codesearch mcp --http --port 8765        # http://127.0.0.1:8765/mcp
    """
    from ..mcp_server import serve

    serve(repo, http=http, host=host, port=port, warn=say_error, device=device, index_dir=index_dir)
