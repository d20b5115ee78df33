"""`codesearch status`: what is indexed, with which model, and how fresh."""

from __future__ import annotations

import json

import click

from ..errors import CorruptIndexError
from ..terminal import visible
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
        if info["integrity"] != "ok":
            raise SystemExit(CorruptIndexError.exit_code)
        return
    if info["integrity"] != "ok":
        raise CorruptIndexError(f"the index at {info['index_dir']} is damaged: {info['integrity']}; "
                                f"run `codesearch index --rebuild`")

    def echo(line: str) -> None:  # paths and names come from the index: shown escaped
        click.echo(visible(line))

    echo(f"repository  {info['repo']}")
    echo(f"index       {info['index_dir']}")
    echo(f"model       {info['model']} ({info['dim']} dims, {info['pooling']} pooling)")
    if info.get("api"):
        echo(f"embedded on {', '.join(info['api']['bases'])} (as {info['api']['model']})")
    echo(f"contents    {info['files']} files, {info['units']} functions, {info['chunks']} pieces")
    echo("languages   " + ", ".join(f"{k} {v}" for k, v in info["languages"].items()))
    stale, gone = info["changed_since"], info["deleted_since"]
    fresh = "up to date" if not stale and not gone else \
        f"{stale} changed and {gone} deleted files since; run `codesearch index`"
    age = info["age_s"]
    click.echo(f"updated     {_ago(age)} ago; {fresh}" if age is not None else f"updated     never; {fresh}")
    click.echo("integrity   ok (SQLite quick_check, full-text index, vector sizes)")
