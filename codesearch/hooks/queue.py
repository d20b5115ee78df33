"""The queue of paths waiting to be re-indexed, and the drainer that applies them.

A hook appends one JSON line per event to `<index>/pending` (O_APPEND, under a short lock), so
nothing is lost when another update is running. The drainer (a background worker, or a --sync
hook) holds `<index>/hook.lock` and loops: move the queue into `<index>/pending.claimed`,
re-index those paths, delete the claimed file, until the queue is empty; after releasing it
looks once more, so a path queued while it was finishing is never stranded. A failed update
leaves the claimed file in place: the next run retries it.

Only the standard library and filelock at the top: this runs inside every `git commit`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..fsutil import FileLock
from ..paths import INDEX_DB
from .events import Change

QUEUE_FILE = "pending"
QUEUE_LOCK_FILE = "pending.lock"
CLAIMED_FILE = "pending.claimed"
HOOK_LOCK_FILE = "hook.lock"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _QueueLock:
    """The short lock around one append to, or one claim of, the queue file."""

    def __init__(self, index_dir: Path):
        self.lock = FileLock(Path(index_dir) / QUEUE_LOCK_FILE)

    def __enter__(self):
        if not self.lock.acquire(wait=30.0):
            raise TimeoutError(f"the hook queue in {self.lock.path.parent} stayed locked for 30 s")
        return self

    def __exit__(self, *exc):
        self.lock.release()


def enqueue(index_dir: Path, change: Change, hook: str = "") -> None:
    """Append one event's paths to the queue (never blocks for long, never loses paths)."""
    record = json.dumps({"paths": sorted(change.paths), "stale": change.stale, "hook": hook,
                         "time": round(time.time(), 3)}) + "\n"
    with _QueueLock(index_dir):
        fd = os.open(index_dir / QUEUE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _write_all(fd, record.encode())
        finally:
            os.close(fd)


class Batch:
    """What the queue holds: the union of its events' paths."""

    def __init__(self):
        self.paths: set[str] = set()
        self.stale = False
        self.events = 0


def parse_queue(data: bytes) -> Batch:
    batch = Batch()
    for line in data.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn line from a crash: its paths are retried by the next event
        if isinstance(rec, dict):
            batch.paths.update(p for p in rec.get("paths", []) if isinstance(p, str))
            batch.stale |= bool(rec.get("stale"))
            batch.events += 1
    return batch


def claim(index_dir: Path) -> Batch | None:
    """Move the queue into the claimed file (the drainer holds the hook lock) and read it all."""
    with _QueueLock(index_dir):
        _move_queue(index_dir)
    try:
        claimed = (index_dir / CLAIMED_FILE).read_bytes()
    except FileNotFoundError:
        return None
    if not claimed.strip():
        return None
    return parse_queue(claimed)


def _move_queue(index_dir: Path) -> None:
    """Append the queue to the claimed file (fsync'd), then empty the queue."""
    fd = os.open(index_dir / QUEUE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        chunks = []
        while True:
            part = os.read(fd, 1 << 20)
            if not part:
                break
            chunks.append(part)
        data = b"".join(chunks)
        if data:
            with open(index_dir / CLAIMED_FILE, "ab") as out:
                out.write(data if data.endswith(b"\n") else data + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def pending(index_dir: Path) -> Batch:
    """Everything queued or claimed but not yet in the index."""
    data = b""
    for name in (CLAIMED_FILE, QUEUE_FILE):
        try:
            data += (index_dir / name).read_bytes()
        except FileNotFoundError:
            pass
    return parse_queue(data)


def _queue_nonempty(index_dir: Path) -> bool:
    try:
        return (index_dir / QUEUE_FILE).stat().st_size > 0
    except FileNotFoundError:
        return False


def hook_lock(index_dir: Path) -> FileLock:
    """The drainer's lock: one drainer per index."""
    return FileLock(Path(index_dir) / HOOK_LOCK_FILE)


def drainer_running(index_dir: Path) -> bool:
    """Whether a drainer holds the hook lock right now (a probe that never waits, no numpy)."""
    return hook_lock(index_dir).held_elsewhere()


def drainer_pid(index_dir: Path) -> int | None:
    return hook_lock(index_dir).holder()


def work_left(index_dir: Path) -> bool:
    # the queue first: a claim writes the claimed file before it empties the queue
    return _queue_nonempty(index_dir) or (index_dir / CLAIMED_FILE).exists()


def drain(index_dir: Path, update, linger: float = 0.0, poll: float = 0.05) -> str:
    """Apply queued paths with `update(batch)` until the queue is empty.

    With `linger`, keep the hook lock (and whatever `update` keeps loaded, the model) that
    many seconds after the last piece of work, taking new work as it is queued.
    Returns "done", or "running" when another drainer holds the hook lock (it will pick our
    paths up: it looks at the queue again after releasing). `update` raising leaves the
    claimed paths for the next run and propagates.
    """
    lock = hook_lock(index_dir)
    while True:
        if not lock.acquire():
            return "running"
        try:
            idle_since = time.monotonic()
            while True:
                if linger and not work_left(index_dir):
                    if time.monotonic() - idle_since >= linger or not (index_dir / INDEX_DB).exists():
                        break
                    time.sleep(poll)
                    continue
                batch = claim(index_dir)
                if batch is None:
                    break
                update(batch)
                (index_dir / CLAIMED_FILE).unlink(missing_ok=True)
                idle_since = time.monotonic()
        finally:
            lock.release()
        if not _queue_nonempty(index_dir):
            return "done"


