"""Options shared by several `codesearch` commands.

Options that are also settings default to None ("not given"), so the settings layers
(environment, config files) fill them in; `codesearch/settings.py` has the table.
"""

from __future__ import annotations

from pathlib import Path

import click


def repo_option(help: str = "Repository (default: the one around the current folder)."):
    return click.option("--repo", "repo", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help=help)


def index_dir_option(help: str = "Keep indexes under this folder instead of <repo>/.codesearch "
                                 "(env CODESEARCH_INDEX_DIR)."):
    return click.option("--index-dir", default=None, help=help)


def device_option(help: str = "Where the model runs (default: auto; env CODESEARCH_DEVICE)."):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None, help=help)


def model_option(help: str):
    return click.option("--model", default=None, help=help)


def api_base_option(help: str = "Embed on OpenAI-compatible servers: URL[,URL...] (e.g. http://gpu-box:8765/v1; "
                                "env CODESEARCH_API_BASE; `local`: on this machine). Default: the endpoints the "
                                "index recorded. The key comes from CODESEARCH_API_KEY or OPENAI_API_KEY."):
    return click.option("--api-base", default=None, metavar="URL[,URL...]", help=help)


def api_model_option(help: str = "Model name sent to the servers (default: the model's Hugging Face id; "
                                 "env CODESEARCH_API_MODEL)."):
    return click.option("--api-model", default=None, metavar="NAME", help=help)


def rerank_options(fn):
    """--rerank-api-base and --rerank-model (settings rerank_api_base, rerank_model)."""
    fn = click.option("--rerank-model", default=None, metavar="NAME",
                      help="Model name sent to the reranker (env CODESEARCH_RERANK_MODEL).")(fn)
    return click.option("--rerank-api-base", default=None, metavar="URL",
                        help="Rerank the best candidates on this server's rerank API (vLLM, Infinity: POST "
                             "{URL}/rerank; env CODESEARCH_RERANK_API_BASE; `none`: off). The key comes from "
                             "CODESEARCH_RERANK_API_KEY, else CODESEARCH_API_KEY or OPENAI_API_KEY.")(fn)
