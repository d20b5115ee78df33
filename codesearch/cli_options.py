"""Options shared by the `codesearch` commands and the `codesearch hook` group."""

from __future__ import annotations

from pathlib import Path

import click


def repo_option(help: str = "Repository (default: the one around the current folder)."):
    return click.option("--repo", "repo", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help=help)


def index_dir_option(help: str = "Keep indexes under this folder instead of <repo>/.codesearch "
                                 "(env CODESEARCH_INDEX_DIR)."):
    return click.option("--index-dir", default=None, envvar="CODESEARCH_INDEX_DIR", help=help)


def device_option(help: str = "Where the model runs."):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
                        show_default=True, help=help)
