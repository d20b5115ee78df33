"""`codesearch config`: the settings in force, and where each value came from."""

from __future__ import annotations

import json

import click

from .errors import say_error
from .options import repo_option


@click.command()
@repo_option()
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.option("--path", "show_path", is_flag=True, help="Only print the config files read.")
def config(repo, as_json, show_path):
    """Show every setting for this repository with its source (flag, environment, file, default).

    Settings are documented in docs/configuration.md; set them in your config file
    (`codesearch config --path`), in the repository's .codesearch.toml, or with CODESEARCH_* variables.
    """
    from ..app import open_workspace
    from ..settings import REPO_CONFIG, user_config_path

    ws = open_workspace(repo, warn=say_error)
    files = {"user": str(user_config_path()), "repository": str(ws.root / REPO_CONFIG)}
    if show_path:
        for where, path in files.items():
            click.echo(f"{where:<10}  {path}")
        return
    rows = ws.settings.describe()
    if as_json:
        click.echo(json.dumps({"files": files, "settings": {k: {"value": v, "source": s} for k, v, s in rows}},
                              ensure_ascii=False, indent=2))
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        shown = "(unset)" if value is None else json.dumps(value) if isinstance(value, (bool, str)) else value
        click.echo(f"{key:<{width}}  {shown}  [{source}]")
