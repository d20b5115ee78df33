"""`codesearch status`: what is indexed, with which model, and how fresh."""

from __future__ import annotations

import json

import click

from .errors import say_error
from .options import index_dir_option, repo_option


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


@click.command()
@repo_option()
@index_dir_option()
@click.option("--json", "as_json", is_flag=True)
def status(repo, index_dir, as_json):
    """What is indexed, with which model, and how fresh it is."""
    from ..app import index_status, open_workspace

    info = index_status(open_workspace(repo, warn=say_error, index_dir=index_dir))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    click.echo(f"repository  {info['repo']}")
    click.echo(f"index       {info['index_dir']}")
    click.echo(f"model       {info['model']} ({info['dim']} dims, {info['pooling']} pooling)")
    if info.get("api"):
        click.echo(f"embedded on {', '.join(info['api']['bases'])} (as {info['api']['model']})")
    click.echo(f"contents    {info['files']} files, {info['units']} functions, {info['chunks']} pieces")
    click.echo("languages   " + ", ".join(f"{k} {v}" for k, v in info["languages"].items()))
    stale, gone = info["changed_since"], info["deleted_since"]
    fresh = "up to date" if not stale and not gone else \
        f"{stale} changed and {gone} deleted files since; run `codesearch index`"
    age = info["age_s"]
    click.echo(f"updated     {_ago(age)} ago; {fresh}" if age is not None else f"updated     never; {fresh}")
