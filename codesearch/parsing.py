"""Read and parse the files an update needs, in worker processes when there are many.

The workers are spawned, not forked (a fork of a process that already runs torch's threads
can hang), and keep reading and parsing while the indexer embeds what they have sent. They
ignore SIGINT: Ctrl-C reaches the whole process group, and only the indexer decides how to
stop (it shuts the pool down); a worker that took the signal itself printed a traceback.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import NamedTuple

from .chunking import PreparedUnit, prepare_file
from .extract import PARSE_BUDGET_S, extract_file
from .files import read_source

PARALLEL_PARSE_MIN = 200  # files; below this, worker start-up costs more than it saves


class Parsed(NamedTuple):
    path: str
    digest: str | None
    units: list[PreparedUnit] | None  # None: the content is unchanged (or unreadable)
    error: str | None  # why the file was skipped
    note: str | None = None  # why it was indexed as one file-level unit (parse budget)
    capped: bool = False  # the file's piece budget left some pieces out (chunking.file_pieces)


def read_and_extract(repo: Path, path: str, language: str, old_digest: str | None,
                     budget_s: float | None = PARSE_BUDGET_S) -> Parsed:
    """What one file holds now, within the parse time budget. The units come prepared (pieces
    within the file's budget, their hashes, the full-text fields: chunking.prepare_file), so
    that work is spread over the workers instead of waiting for the end of the run."""
    try:
        source, digest = read_source(repo, path)
    except OSError as error:
        return Parsed(path, None, None, f"unreadable ({error.strerror})")
    if digest == old_digest:
        return Parsed(path, digest, None, None)
    extraction = extract_file(path, source, language, budget_s)
    prepared, capped = prepare_file(extraction.units, len(source))
    return Parsed(path, digest, prepared, None, extraction.fallback, capped)


def _job(args):
    return read_and_extract(*args)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parse_files(repo: Path, jobs: list[tuple[str, str, str | None]], max_workers: int = 8,
                budget_s: float | None = PARSE_BUDGET_S):
    """Yield a `Parsed` for each (path, language, old digest) job, in order."""
    workers = min(len(jobs) // PARALLEL_PARSE_MIN, os.cpu_count() or 1, max_workers)
    if workers < 2:
        for path, language, old in jobs:
            yield read_and_extract(repo, path, language, old, budget_s)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    try:
        yield from pool.map(_job, [(repo, *job, budget_s) for job in jobs], chunksize=16)
    finally:
        # on Ctrl-C or an error, queued work is dropped rather than finished
        pool.shutdown(wait=True, cancel_futures=True)
