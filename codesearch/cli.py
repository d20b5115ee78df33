"""The `codesearch` command line.

Commands that need no model (`status`, `hook`, `--help`) never import torch; the model
is loaded only when something has to be embedded. Problems the user can fix surface as
one `error:` line and a non-zero exit code, not a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import __version__
from .cli_options import device_option, index_dir_option, repo_option
from .errors import CodesearchError, ModelMismatchError, NoIndexError


def _stderr(msg: str) -> None:
    click.echo(msg, err=True)


class _Main(click.Group):
    """Turns CodesearchError into `error: ...` and an exit code, and Ctrl-C into a calm line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodesearchError as error:
            _stderr(f"error: {error}")
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            _stderr("interrupted: the previous index is intact; run the command again to continue")
            ctx.exit(130)
        except OSError as error:
            if error.errno == 28:  # ENOSPC
                _stderr(f"error: no space left on device ({error.filename or 'index folder'}); "
                        f"free some space or use --index-dir on another disk, then run again")
                ctx.exit(7)
            raise


_repo_option = repo_option("Repository to search (default: the one around the current folder).")
_index_dir_option = index_dir_option()
_device_option = device_option()


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codesearch")
def main():
    """Semantic code search for a repository: index it once, then ask in English or Chinese.

    \b
      codesearch index ./repo
      codesearch query "read a CSV file and sort it"
      codesearch query --json -k 5 "读取CSV并排序"
    """


# -- helpers shared by index and query ----------------------------------------------------

def _resolve_spec(requested: str | None, recorded_id: str | None):
    from .models import OFFLINE_MODEL, offline_spec, resolve_model

    if requested is None and recorded_id is not None:
        if recorded_id == OFFLINE_MODEL:
            return offline_spec()
        return resolve_model(recorded_id)
    return resolve_model(requested, warn=_stderr)


def _load_embedder(spec, device: str, token_budget: int | None = None, spread: bool = False):
    """The model on `device`, on its fastest path there (packed/compiled on CUDA, bf16 on CPUs
    that have it; see codesearch/embed.py). spread=True (indexing): with several GPUs visible,
    a pool with one worker per GPU (codesearch/multigpu.py)."""
    from .embed import Embedder

    try:
        if spread:
            from .multigpu import load_for_indexing

            return load_for_indexing(spec, device, token_budget)
        return Embedder(spec, device=device, token_budget=token_budget)
    except (OSError, ValueError) as error:
        from .errors import ModelUnavailableError

        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelUnavailableError(f"cannot load model {spec.id}: {first}") from None
    except RuntimeError as error:
        from .errors import ModelUnavailableError

        msg = str(error).splitlines()[0]
        if "CUDA" in msg or "MPS" in msg or "device" in msg.lower():
            raise ModelUnavailableError(f"cannot use --device {device}: {msg}; try --device cpu") from None
        raise


def _locate(repo: Path | None, index_dir: str | None):
    from .paths import check_repo, find_repo_root, index_dir_for

    root = check_repo(repo) if repo is not None else find_repo_root(Path.cwd())
    return root, index_dir_for(root, index_dir)


# -- index ------------------------------------------------------------------------------------

@main.command()
@click.argument("repo", type=click.Path(path_type=Path), default=".")
@click.option("--model", default=None, envvar="CODESEARCH_MODEL",
              help="Embedding model: a Hugging Face id, a local folder, or e5-small "
                   "(default: Qwen/Qwen3-Embedding-0.6B, or e5-small offline).")
@_device_option
@click.option("--rebuild", is_flag=True, help="Start over: re-embed everything (e.g. with another model).")
@_index_dir_option
@click.option("--max-file-size", type=int, default=1_000_000, show_default=True,
              help="Skip files larger than this many bytes.")
@click.option("--batch-tokens", type=int, default=None, help="Padded tokens per embedding batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def index(repo, model, device, rebuild, index_dir, max_file_size, batch_tokens, as_json, quiet):
    """Index (or update) the functions of REPO for search.

    Re-running is incremental: unchanged files are not re-parsed and unchanged
    functions are not re-embedded.
    """
    from .indexer import Indexer, check_index_dir_writable
    from .output import ConsoleReporter
    from .paths import check_repo, index_dir_for

    root = check_repo(repo)
    idx = index_dir_for(root, index_dir)
    check_index_dir_writable(idx)
    reporter = ConsoleReporter(quiet=quiet)
    embedders = {}

    def embedder_for(spec):
        if spec.id not in embedders:
            reporter.info(f"loading model {spec.id} ...")
            embedders[spec.id] = _load_embedder(spec, device, batch_tokens, spread=True)
        return embedders[spec.id]

    report = Indexer(root, idx, max_file_size, reporter).run(
        spec_for=lambda recorded: _resolve_spec(model, recorded),
        embedder_for=embedder_for, rebuild=rebuild, model_requested=model is not None)
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
        click.echo("skipped: " + ", ".join(f"{n} {r}" for r, n in sorted(kinds.items())))


# -- query ------------------------------------------------------------------------------------

@main.command()
@click.argument("question", required=False)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many results.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON array (for tools and editors).")
@_repo_option
@click.option("--lang", "langs", multiple=True, help="Only this language (repeatable), e.g. --lang python.")
@click.option("--path", "paths", multiple=True, help="Only paths matching this glob or folder (repeatable).")
@click.option("--mode", type=click.Choice(["hybrid", "semantic", "lexical"]), default="hybrid",
              show_default=True)
@click.option("--model", default=None, help="Must match the index's model (default: the index's).")
@click.option("--batch", "batch_file", type=click.File("r", encoding="utf-8"), default=None,
              help="Answer one question per line of FILE ('-' for stdin), printing JSON lines.")
@click.option("--no-snippet", is_flag=True, help="Only locations and names.")
@click.option("--translate/--no-translate", default=True, show_default=True,
              help="Also search with an English rendering of a Chinese question.")
@click.option("--daemon/--no-daemon", "use_daemon", default=True, show_default=True,
              help="Answer through a warm background process for this index (env CODESEARCH_DAEMON=0 "
                   "turns it off).")
@_device_option
@_index_dir_option
def query(question, k, as_json, repo, langs, paths, mode, model, batch_file, no_snippet, translate, use_daemon,
          device, index_dir):
    """Find the functions that answer QUESTION (English or Chinese)."""
    from . import daemon
    from .languages import LANGUAGES

    if not question and batch_file is None:
        raise CodesearchError('give a question, e.g. codesearch query "parse a config file", or --batch FILE')
    bad = [l for l in langs if l not in LANGUAGES]
    if bad:
        raise CodesearchError(f"unknown language {bad[0]!r}; known: {', '.join(sorted(LANGUAGES))}")
    root, idx = _locate(repo, index_dir)
    if not (idx / "index.db").exists():
        raise NoIndexError(f"{root} has no index yet; run `codesearch index {root}` first")
    questions = [question] if batch_file is None else \
        [line.rstrip("\n") for line in batch_file if line.strip()]
    use_daemon = use_daemon and daemon.enabled()
    results = None
    if use_daemon:
        reply = daemon.request(idx, {"op": "query", "questions": questions, "k": k, "mode": mode,
                                     "langs": list(langs), "paths": list(paths), "model": model,
                                     "translate": translate})
        if reply and reply.get("ok"):
            results = reply["results"]
        elif reply and reply.get("error"):
            raise CodesearchError(reply["error"])
    if results is None:
        results = [[h.to_json() for h in hits] for hits in
                   _query_in_process(root, idx, questions, k, mode, langs, paths, model, device, translate)]
        if use_daemon:
            daemon.start(idx, root, device)  # warm for the next query
    if batch_file is not None:
        for q, hits in zip(questions, results):
            click.echo(json.dumps({"query": q, "results": hits}, ensure_ascii=False))
        return
    from .output import hits_json, render_hits, use_colour

    hits = results[0]
    if as_json:
        click.echo(hits_json(hits))
    else:
        click.echo(render_hits(hits, use_colour(), show_snippet=not no_snippet))


def _query_in_process(root, idx, questions, k, mode, langs, paths, model, device, translate=True):
    from .search import Searcher
    from .store import Store

    store = Store(idx).open()
    recorded = store.get_meta("model") or {}

    def loader():
        from .indexer import models_match

        from .embed_light import light_query_embedder

        spec = _resolve_spec(model, recorded.get("id"))
        if not models_match(spec, recorded):
            raise ModelMismatchError(f"the index was built with {recorded.get('id')}, not {spec.id}; "
                                     f"query without --model, or run `codesearch index --rebuild --model {spec.id}`")
        return light_query_embedder(spec, device) or _load_embedder(spec, device)

    if model is not None:
        loader()  # fail fast on a mismatch, before any search
    searcher = Searcher(store, embedder_loader=loader, translate=translate)
    try:
        return [searcher.search(q, k, mode, list(langs) or None, list(paths) or None) for q in questions]
    finally:
        store.close()


@main.group()
def daemon():
    """The warm background process that answers repeated queries fast."""


@daemon.command("stop")
@_repo_option
@_index_dir_option
def daemon_stop(repo, index_dir):
    """Stop this repository's background query process."""
    from . import daemon as d

    _root, idx = _locate(repo, index_dir)
    click.echo("stopped" if d.stop(idx) else "not running")


@daemon.command("status")
@_repo_option
@_index_dir_option
def daemon_status(repo, index_dir):
    """Whether a background query process serves this repository."""
    from . import daemon as d

    _root, idx = _locate(repo, index_dir)
    reply = d.request(idx, {"op": "ping"}, timeout=5)
    click.echo(f"running (pid {reply['pid']})" if reply and reply.get("ok") else "not running")


# -- status -----------------------------------------------------------------------------------

@main.command()
@_repo_option
@_index_dir_option
@click.option("--json", "as_json", is_flag=True)
def status(repo, index_dir, as_json):
    """What is indexed, with which model, and how fresh it is."""
    from .files import discover
    from .store import Store

    root, idx = _locate(repo, index_dir)
    store = Store(idx)
    if not store.exists():
        raise NoIndexError(f"{root} has no index yet; run `codesearch index {root}`")
    store.open()
    stats = store.stats()
    meta = store.get_meta("model") or {}
    updated = store.get_meta("updated_at", 0)
    known = store.file_hashes()
    current = {f.path: f for f in discover(root).files}
    stale = [p for p, f in current.items() if p not in known or known[p][1:] != (f.size, f.mtime_ns)]
    gone = [p for p in known if p not in current]
    info = {"repo": str(root), "index_dir": str(idx), "model": meta.get("id"), "dim": meta.get("dim"),
            "pooling": meta.get("pooling"), **stats, "updated_at": updated,
            "changed_since": len(stale), "deleted_since": len(gone)}
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    age = time.time() - updated if updated else None
    click.echo(f"repository  {root}")
    click.echo(f"index       {idx}")
    click.echo(f"model       {meta.get('id')} ({meta.get('dim')} dims, {meta.get('pooling')} pooling)")
    click.echo(f"contents    {stats['files']} files, {stats['units']} functions, {stats['chunks']} pieces")
    click.echo("languages   " + ", ".join(f"{k} {v}" for k, v in stats["languages"].items()))
    fresh = "up to date" if not stale and not gone else \
        f"{len(stale)} changed and {len(gone)} deleted files since; run `codesearch index`"
    click.echo(f"updated     {_ago(age)} ago; {fresh}" if age is not None else f"updated     never; {fresh}")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


from .cli_hooks import hook; main.add_command(hook)  # noqa: E402,E702 - `codesearch hook ...`

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
