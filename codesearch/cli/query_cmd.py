"""`codesearch query`: find the functions that answer a question."""

from __future__ import annotations

import json

import click

from ..errors import CodesearchError
from .errors import say_error
from .options import device_option, index_dir_option, model_option, repo_option


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
@index_dir_option()
def query(question, k, as_json, repo, langs, paths, mode, model, batch_file, no_snippet, translate, use_daemon,
          device, index_dir):
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
                        translate=translate, daemon=use_daemon)
    ws.require_index()
    s = ws.settings
    texts = [question] if batch_file is None else [line.rstrip("\n") for line in batch_file if line.strip()]
    queries = [Query(t, s.k, s.mode, list(langs), list(paths), s.translate) for t in texts]
    results, notes = None, []
    if s.daemon:
        reply = daemon.request(ws.index_dir, {"op": "query", "queries": [q.__dict__ for q in queries],
                                              "model": model})
        if reply and reply.get("ok"):
            results, notes = reply["results"], reply.get("notes") or []
        elif reply and reply.get("error"):
            raise daemon.reply_error(reply)
    if results is None:
        session = SearchSession(ws)
        try:
            session.check_model(model)
            answers = [session.answer(q) for q in queries]
        finally:
            session.close()
        results = [[h.to_json() for h in a.hits] for a in answers]
        notes = [a.notes for a in answers]
        if s.daemon:
            daemon.start(ws, notice=say_error)  # warm for the next query, and says so
    for line in dict.fromkeys(n for per_query in notes for n in per_query):
        say_error(f"note: {line}")
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
