"""`codesearch index`: build or update a repository's index."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import say_error
from .options import api_base_option, api_model_option, device_option, index_dir_option, model_option


@click.command()
@click.argument("repo", type=click.Path(path_type=Path), default=".")
@model_option("Embedding model: a Hugging Face id, a local folder, e5-small-code or e5-small "
              "(default: Qwen/Qwen3-Embedding-0.6B, or e5-small-code offline; env CODESEARCH_MODEL for new "
              "indexes).")
@device_option()
@api_base_option()
@api_model_option()
@click.option("--rebuild", is_flag=True, help="Start over: re-embed everything (e.g. with another model).")
@index_dir_option()
@click.option("--max-file-size", type=click.IntRange(min=1), default=None,
              help="Skip files larger than this many bytes (default: 1,000,000).")
@click.option("--batch-tokens", type=click.IntRange(min=1), default=None, help="Tokens per embedding batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def index(repo, model, device, api_base, api_model, rebuild, index_dir, max_file_size, batch_tokens, as_json, quiet):
    """Index (or update) the functions of REPO for search.

    Re-running is incremental: unchanged files are not re-parsed and unchanged
    functions are not re-embedded.
    """
    from ..app import index_repository, open_workspace
    from ..output import ConsoleReporter
    from ..terminal import visible

    ws = open_workspace(repo, warn=say_error, model=model, device=device, api_base=api_base, api_model=api_model,
                        index_dir=index_dir,
                        max_file_size=max_file_size, batch_tokens=batch_tokens)
    report = index_repository(ws, ConsoleReporter(quiet=quiet), rebuild=rebuild, warn=say_error)
    if ws.settings.daemon:
        from .. import daemon

        # the first query after an index run is the common one: have the model warm for it
        daemon.start(ws, notice=None if quiet else say_error)
    if as_json:
        click.echo(json.dumps(report.__dict__, ensure_ascii=False, indent=2))
        return
    langs = ", ".join(f"{k} {v}" for k, v in report.languages.items())
    click.echo(f"indexed {report.files} files ({report.files_parsed} parsed, {report.files_removed} removed), "
               f"{report.units} functions; languages: {langs or 'none'}")
    click.echo(f"model {report.model}" + (f" on {report.device}" if report.device else "")
               + f"; embedded {report.chunks_embedded} pieces, reused {report.chunks_reused}; "
               f"{report.seconds:.1f} s")
    if report.skipped:
        kinds = {}
        for reason in report.skipped.values():
            kinds[reason] = kinds.get(reason, 0) + 1
        click.echo("skipped: " + ", ".join(f"{n} {visible(r)}" for r, n in sorted(kinds.items())))
    for title, paths in (("indexed as one unit (parsing ran past the parse_timeout setting)", report.whole_files),
                         ("pieces capped (functions repeat the file many times over)", report.capped)):
        if paths:
            names = sorted(paths)
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            click.echo(f"{title}: {len(names)} file(s): {', '.join(visible(n) for n in names[:3])}{more}")
