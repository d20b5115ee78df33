"""`codesearch query`: find the functions that answer a question."""

from __future__ import annotations

import json

import click

from ..errors import CodesearchError
from .errors import say_error
from .options import api_base_option, api_model_option, device_option, index_dir_option, model_option, \
    repo_option


@click.command()
@click.argument("question", required=False)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=None, help="How many results (default: 10).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON array (for tools and editors).")
@repo_option("Repository to search (default: the one around the current folder).")
@click.option("--lang", "langs", multiple=True, help="Only this language (repeatable), e.g. --lang python.")
@click.option("--path", "paths", multiple=True, help="Only paths matching this glob or folder (repeatable).")
@click.option("--mode", type=click.Choice(["hybrid", "semantic", "lexical"]), default=None,
              help="How to rank (default: hybrid).")
@model_option("Must match the index's model (default: the index's).")
@click.option("--batch", "batch_file", type=click.File("r", encoding="utf-8"), default=None,
              help="Answer one question per line of FILE ('-' for stdin), printing JSON lines.")
@click.option("--no-snippet", is_flag=True, help="Only locations and names.")
@click.option("--translate/--no-translate", default=None,
              help="Also search with an English rendering of a Chinese question (default: on).")
@click.option("--daemon/--no-daemon", "use_daemon", default=None,
              help="Answer through a warm background process for this index (default: on; env CODESEARCH_DAEMON=0 "
                   "turns it off).")
@device_option()
@api_base_option("Embed the question on these OpenAI-compatible servers (URL[,URL...]; `local`: on this machine) "
                 "instead of the ones the index recorded.")
@api_model_option()
@index_dir_option()
def query(question, k, as_json, repo, langs, paths, mode, model, batch_file, no_snippet, translate, use_daemon,
          device, api_base, api_model, index_dir):
    """Find the functions that answer QUESTION (English or Chinese)."""
    from .. import daemon
    from ..app import Query, SearchSession, open_workspace
    from ..languages import LANGUAGES

    if not question and batch_file is None:
        raise CodesearchError('give a question, e.g. codesearch query "parse a config file", or --batch FILE')
    bad = [lang for lang in langs if lang not in LANGUAGES]
    if bad:
        raise CodesearchError(f"unknown language {bad[0]!r}; known: {', '.join(sorted(LANGUAGES))}")
    ws = open_workspace(repo, warn=say_error, device=device, index_dir=index_dir, k=k, mode=mode,
                        translate=translate, daemon=use_daemon, api_base=api_base, api_model=api_model)
    ws.require_index()
    s = ws.settings
    texts = [question] if batch_file is None else [line.rstrip("\n") for line in batch_file if line.strip()]
    queries = [Query(t, s.k, s.mode, list(langs), list(paths), s.translate) for t in texts]
    results = None
    # a daemon embeds through the endpoints its own settings choose: a one-off --api-base or
    # --api-model is answered here
    if s.daemon and api_base is None and api_model is None:
        reply = daemon.request(ws.index_dir, {"op": "query", "queries": [q.__dict__ for q in queries],
                                              "model": model})
        if reply and reply.get("ok"):
            results = reply["results"]
        elif reply and reply.get("error"):
            raise daemon.reply_error(reply)
    if results is None:
        session = SearchSession(ws)
        try:
            session.check_model(model)
            results = [[h.to_json() for h in session.search(q)] for q in queries]
        finally:
            session.close()
        if s.daemon and api_base is None and api_model is None:
            daemon.start(ws)  # warm for the next query
    if batch_file is not None:
        for q, hits in zip(texts, results):
            click.echo(json.dumps({"query": q, "results": hits}, ensure_ascii=False))
        return
    from ..output import hits_json, render_hits, use_colour

    hits = results[0]
    if as_json:
        click.echo(hits_json(hits))
    else:
        click.echo(render_hits(hits, use_colour(), show_snippet=not no_snippet))
