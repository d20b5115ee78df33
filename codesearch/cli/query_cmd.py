"""`codesearch query`: find the functions that answer a question, printed as grep users expect.

The words of the question need no quotes (`codesearch query read csv file`); `-` reads it
from stdin. Output: numbered hits with their first lines (default), `--vimgrep`
(`path:line:col:text`), `-l` (files only), `--json` / `--jsonl` (for tools), `-C/-A/-B N`
lines of context. Exit status as grep's: 0 with hits, 1 without, 2 and above on errors.
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import CodesearchError
from .errors import say_error
from .options import api_base_option, api_model_option, device_option, index_dir_option, model_option, \
    repo_option, rerank_options


def _question(words: tuple[str, ...]) -> str:
    if words == ("-",):
        return " ".join(sys.stdin.read().split())
    return " ".join(words).strip()


def _answer(ws, queries, model, one_off_api: bool = False) -> tuple[list[list[dict]], list[list[str]]]:
    """(hits, notes) per question: through the warm daemon when one serves this index, else
    in-process (then one is started, and says so). A daemon embeds through the endpoints its
    own settings choose: a question with a one-off --api-base, --api-model, --rerank-api-base or
    --rerank-model is answered here."""
    from .. import daemon
    from ..app import SearchSession

    use_daemon = ws.settings.daemon and not one_off_api
    if use_daemon:
        reply = daemon.request(ws.index_dir, {"op": "query", "queries": [q.__dict__ for q in queries],
                                              "model": model})
        if reply and reply.get("ok"):
            return reply["results"], reply.get("notes") or []
        if reply and "code" in reply:
            raise daemon.reply_error(reply)  # a user error (no index, wrong model...)
        if reply:  # a daemon that fails unexpectedly (e.g. left over from another version): replace it
            daemon.stop(ws.index_dir)
    session = SearchSession(ws)
    try:
        session.check_model(model)
        answers = [session.answer(q) for q in queries]
    finally:
        session.close()
    if use_daemon:
        daemon.start(ws, notice=say_error)  # warm for the next query, and says so
    return [[h.to_json() for h in a.hits] for a in answers], [a.notes for a in answers]


@click.command()
@click.argument("question", nargs=-1)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=None, help="At most this many results (default: 10).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Only hits scoring at least this (0-1, every mode; default: the `threshold` setting, 0.25, "
                   "except that --json, --jsonl and --batch return k hits unless it is set). 0 shows k hits.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON array (for tools and editors).")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON object per hit, one per line.")
@click.option("--vimgrep", is_flag=True, help="Print path:line:col:text, one line per hit (vim's quickfix, editors).")
@click.option("-l", "--files-with-matches", "files_only", is_flag=True, help="Print only the files with hits, best first.")
@click.option("-C", "--context", "context", type=click.IntRange(0), default=None,
              help="Show N lines before and after the line that names each hit.")
@click.option("-A", "--after-context", "after", type=click.IntRange(0), default=None, help="Show N lines after it.")
@click.option("-B", "--before-context", "before", type=click.IntRange(0), default=None, help="Show N lines before it.")
@repo_option("Repository to search (default: the one around the current folder).")
@click.option("--lang", "langs", multiple=True, help="Only this language (repeatable), e.g. --lang python.")
@click.option("--path", "paths", multiple=True,
              help="Only paths matching this gitignore-style pattern, relative to the repository root "
                   "(repeatable; 'src/**/*.py', 'retry.py' at any depth, '!tests/' to leave out).")
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
@rerank_options
@index_dir_option()
@click.pass_context
def query(ctx, question, k, threshold, as_json, as_jsonl, vimgrep, files_only, context, after, before, repo, langs,
          paths, mode, model, batch_file, no_snippet, translate, use_daemon, device, api_base, api_model,
          rerank_api_base, rerank_model, index_dir):
    """Find the functions that answer QUESTION (English or Chinese; '-' reads it from stdin).

    \b
      codesearch query read a csv file and sort it
      codesearch query --vimgrep retry with backoff > hits.txt   # vim: :cfile hits.txt
      echo "读取CSV并排序" | codesearch query --json -
    """
    from ..app import Query, open_workspace
    from ..languages import LANGUAGES
    from ..pathmatch import PathFilter

    formats = [name for name, on in (("--json", as_json), ("--jsonl", as_jsonl), ("--vimgrep", vimgrep),
                                     ("-l", files_only)) if on]
    if len(formats) > 1:
        raise CodesearchError(f"{' and '.join(formats)} are different outputs; give one")
    text = _question(question)
    if batch_file is not None and text:
        raise CodesearchError("give a question or --batch FILE, not both")
    if batch_file is not None and (vimgrep or files_only):
        raise CodesearchError("--batch prints JSON lines (one per question, or per hit with --jsonl); "
                              "--vimgrep and -l take one question")
    if not text and batch_file is None:
        raise CodesearchError("give a question, e.g. codesearch query parse a config file; "
                              "'-' reads it from stdin, --batch FILE one per line")
    bad = [lang for lang in langs if lang not in LANGUAGES]
    if bad:
        raise CodesearchError(f"unknown language {bad[0]!r}; known: {', '.join(sorted(LANGUAGES))}")
    if paths:
        PathFilter(list(paths))  # a bad pattern is an error before anything loads
    ws = open_workspace(repo, warn=say_error, device=device, index_dir=index_dir, k=k, mode=mode,
                        translate=translate, daemon=use_daemon, threshold=threshold, api_base=api_base,
                        api_model=api_model, rerank_api_base=rerank_api_base, rerank_model=rerank_model)
    ws.require_index()
    s = ws.settings
    texts = [text] if batch_file is None else [line.rstrip("\n") for line in batch_file if line.strip()]
    machine = as_json or as_jsonl or batch_file is not None
    # tools asking for k hits get k (with their scores) unless a threshold was set on purpose
    cut = s.threshold if (not machine or "threshold" in s.sources) else 0.0
    queries = [Query(t, s.k, s.mode, list(langs), list(paths), s.translate, cut) for t in texts]
    one_off = any(v is not None for v in (api_base, api_model, rerank_api_base, rerank_model))
    results, notes = _answer(ws, queries, model, one_off_api=one_off)
    for line in dict.fromkeys(n for per_query in notes for n in per_query):
        say_error(f"note: {line}")  # e.g. that a long question was shortened
    found = any(results)
    _print(ws, texts, results, batch=batch_file is not None, as_json=as_json, as_jsonl=as_jsonl, vimgrep=vimgrep,
           files_only=files_only, no_snippet=no_snippet, before=before if before is not None else context,
           after=after if after is not None else context)
    if not found:
        if not (machine or vimgrep or files_only):
            say_error(f"no results scoring {cut:g} or more" + (" (--threshold 0 shows the best anyway)"
                                                              if cut > 0 else ""))
        ctx.exit(1)


def _print(ws, texts, results, batch, as_json, as_jsonl, vimgrep, files_only, no_snippet, before, after) -> None:
    from ..app import hit_excerpts, hit_for_tools
    from ..output import display_path, hits_json, hits_jsonl, render_files, render_hits, render_vimgrep, use_colour

    s = ws.settings
    if before is None and after is None and s.context is not None:
        before = after = s.context
    with_context = before is not None or after is not None

    def for_tools(hits):
        out = [hit_for_tools(ws, h) for h in hits]
        if with_context:
            for h, ex in zip(out, hit_excerpts(ws, hits, before, after, s.snippet_lines)):
                h["context"] = {"start_line": ex.first_line, "lines": ex.lines, "stale": ex.stale}
        return out

    if batch:
        for q, hits in zip(texts, results):
            if as_jsonl:
                if hits:
                    click.echo(hits_jsonl(for_tools(hits), query=q))
            else:
                click.echo(json.dumps({"query": q, "results": for_tools(hits)}, ensure_ascii=False))
        return
    hits = results[0]
    if as_json:
        click.echo(hits_json(for_tools(hits)))
        return
    if as_jsonl:
        if hits:
            click.echo(hits_jsonl(for_tools(hits)))
        return
    if not hits:
        return
    shown = [display_path(ws.root, h["path"]) for h in hits]
    if vimgrep:
        click.echo(render_vimgrep(hits, shown))
    elif files_only:
        click.echo(render_files(hits, shown))
    else:
        excerpts = None if no_snippet else hit_excerpts(ws, hits, before, after, s.snippet_lines)
        click.echo(render_hits(hits, shown, excerpts, use_colour()))
