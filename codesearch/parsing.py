"""Read and parse the files an update needs, in worker processes when there are many.

The workers are spawned, not forked (a fork of a process that already runs torch's threads
can hang), and keep reading and parsing while the indexer embeds what they have sent.
"""

from __future__ import annotations

import os
from pathlib import Path

from .chunking import prepare
from .extract import extract_units
from .files import read_source

PARALLEL_PARSE_MIN = 200  # files; below this, worker start-up costs more than it saves


def read_and_extract(repo: Path, path: str, language: str, old_digest: str | None):
    """(path, digest, prepared units or None when the content is unchanged, error) for one file.
    The units come prepared (texts, hashes, full-text fields: chunking.prepare), so that work
    is spread over the workers instead of waiting for the end of the run."""
    try:
        source, digest = read_source(repo, path)
    except OSError as error:
        return path, None, None, f"unreadable ({error.strerror})"
    if digest == old_digest:
        return path, digest, None, None
    return path, digest, [prepare(u) for u in extract_units(path, source, language)], None


def _job(args):
    return read_and_extract(*args)


def parse_files(repo: Path, jobs: list[tuple[str, str, str | None]], max_workers: int = 8):
    """Yield `read_and_extract` results for (path, language, old digest) jobs, in order."""
    workers = min(len(jobs) // PARALLEL_PARSE_MIN, os.cpu_count() or 1, max_workers)
    if workers < 2:
        for path, language, old in jobs:
            yield read_and_extract(repo, path, language, old)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_job, [(repo, *job) for job in jobs], chunksize=16)

