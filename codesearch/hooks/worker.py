"""Applying the queue: the background worker, the --sync path and the hook entry point.

When a hook runs (`run_hook`), it queues the paths the event changed and, by default, starts
a detached background worker unless one is already running (it will take the new paths),
then returns: the commit is not held up. With sync mode the hook waits until the index has
the change: it hands the paths to a running worker, or starts one, or, with lingering off,
updates the index itself, inline.

A worker lingers (the `hook_linger` setting, git config codesearch.hookLinger, default 120 s;
0 turns it off) with the model loaded, taking new paths as they are queued: loading the model
is most of an update's cost, so the next commit's update takes a fraction of a second. A
failed update leaves the claimed paths queued and is recorded in `<index>/hook-error`; the next
hook run prints one warning line. Nothing here ever makes git fail: `run_hook` never raises.

The index follows the working tree: the hook re-indexes the changed paths' working-tree
content, which is the staged content unless part of a file was left unstaged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..errors import IndexBusyError
from ..fsutil import terminate
from .events import changed_paths, git_config
from ..paths import INDEX_DB
from .queue import Batch, drain, drainer_pid, drainer_running, enqueue, pending, work_left

ERROR_FILE = "hook-error"
LOG_FILE = "hook.log"
LOG_MAX_BYTES = 1_000_000
SYNC_CONFIG = "codesearch.hookSync"
LINGER_CONFIG = "codesearch.hookLinger"
WORKER_BUSY_WAIT = 3600.0  # background: wait this long for a manual `codesearch index` to finish
SYNC_BUSY_WAIT = 3.0  # --sync: then leave the rest to a background worker


def say(msg: str) -> None:
    """One line on stderr (git shows hook output there)."""
    from ..terminal import visible

    try:
        sys.stderr.write(f"codesearch: {visible(msg)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def one_line(error: BaseException) -> str:
    """The first line of an error, as the user should read it (SQLite errors and a full disk
    say what to do, see errors.user_error), with control characters escaped."""
    from ..errors import user_error
    from ..terminal import visible

    error = user_error(error) or error
    text = str(error).strip()
    return visible(text.splitlines()[0] if text else type(error).__name__)


# -- settings: the settings layers, then git config -------------------------------------------

def sync_configured(root: Path, settings) -> bool:
    if "hook_sync" in settings.sources:
        return settings.hook_sync
    return git_config(root, SYNC_CONFIG, as_bool=True) == "true"


def linger_seconds(root: Path, settings) -> float:
    """How long a worker waits, warm, for more work; 0 makes it exit once the queue is empty."""
    if "hook_linger" in settings.sources:
        return settings.hook_linger
    value = git_config(root, LINGER_CONFIG)
    try:
        return max(0.0, float(value)) if value else settings.hook_linger
    except ValueError:
        return settings.hook_linger


# -- updating the index ----------------------------------------------------------------------

class LogReporter:
    """Indexer progress as plain lines (the worker's stderr is the hook log)."""

    def __init__(self, verbose: bool):
        self.verbose = verbose

    def info(self, msg: str) -> None:
        if self.verbose:
            _log(msg)

    def warn(self, msg: str) -> None:
        _log(msg)

    def start_embedding(self, total_chunks: int, total_tokens: int, device: str, estimate_s=None) -> None:
        self.info(f"embedding {total_chunks} pieces ({total_tokens} tokens) on {device}")

    def embedded(self, n_chunks: int, n_tokens: int) -> None: ...
    def done_embedding(self) -> None: ...


def _stale_indexed(ws) -> set[str]:
    """Indexed files whose size or mtime differ from the working tree (one stat each)."""
    from ..store import Store

    store = Store(ws.index_dir).open()
    try:
        known = store.file_states()
    finally:
        store.close()
    out = set()
    for path, (_h, size, mtime_ns, _lang) in known.items():
        try:
            st = (ws.root / path).lstat()
        except OSError:
            out.add(path)
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            out.add(path)
    return out


def make_updater(ws, busy_wait: float = 0.0, verbose: bool = True):
    """`update(batch)` that re-indexes the batch's paths with the index's recorded model,
    keeping the loaded model for the next batch."""
    from ..app import Embedders, index_repository

    reporter = LogReporter(verbose)
    embedders = Embedders(ws.settings, notice=reporter.info)

    def update(batch: Batch):
        paths = set(batch.paths)
        if batch.stale:
            paths |= _stale_indexed(ws)
        if not paths:
            return None
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                report = index_repository(ws, reporter, only=sorted(paths), embedders=embedders)
                break
            except IndexBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)
        reporter.info(f"updated {len(paths)} paths: {report.files_parsed} parsed, "
                      f"{report.files_removed} removed, {report.chunks_embedded} pieces embedded, "
                      f"{report.chunks_reused} reused; {report.seconds:.2f} s")
        return report

    return update


def _record_error(index_dir: Path, message: str) -> None:
    try:
        (index_dir / ERROR_FILE).write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n", encoding="utf-8")
    except OSError:
        pass


def _clear_error(index_dir: Path) -> None:
    (index_dir / ERROR_FILE).unlink(missing_ok=True)


def last_error(index_dir: Path) -> str | None:
    try:
        return (index_dir / ERROR_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _error_since(index_dir: Path, since: float) -> str | None:
    try:
        if (index_dir / ERROR_FILE).stat().st_mtime < since:
            return None
    except OSError:
        return None
    message = last_error(index_dir)
    return message.split(" ", 2)[-1] if message else None


# -- the background worker ---------------------------------------------------------------------

def spawn_worker(ws, nice: bool = True) -> subprocess.Popen:
    """Start the detached drainer. Its output goes to <index>/hook.log."""
    log = ws.index_dir / LOG_FILE
    try:
        if log.stat().st_size > LOG_MAX_BYTES:
            os.replace(log, log.with_name(LOG_FILE + ".1"))
    except OSError:
        pass
    # git exports GIT_DIR, GIT_INDEX_FILE (a temporary index during `git commit -a`) ...:
    # the worker outlives the commit, so it must not inherit them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    cmd = [sys.executable, "-m", "codesearch.cli", "hook", "drain", "--repo", str(ws.root),
           "--index-path", str(ws.index_dir), "--device", ws.settings.device]
    if nice:
        cmd.append("--nice")
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=str(ws.root), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True, close_fds=True)


def under_git(environ=None) -> bool:
    """Whether git runs us (as a hook): git sets GIT_EXEC_PATH for every hook it starts."""
    return "GIT_EXEC_PATH" in (os.environ if environ is None else environ)


def announce(ws, proc: subprocess.Popen) -> None:
    """Say once that a background worker started and how to end it, unless git runs us: a
    commit's output stays as quiet as it was (`codesearch hook status` shows the worker)."""
    if under_git():
        return
    linger = linger_seconds(ws.root, ws.settings)
    say(f"started a background worker (pid {proc.pid}) that updates the index; it stays {linger:g} s for "
        f"the next change, `codesearch hook stop` ends it now (log: {ws.index_dir / LOG_FILE})")


def run_worker(ws, nice: bool = False, linger: float | None = None) -> int:
    """The background drainer (`codesearch hook drain`): waits for a busy index, then stays
    `linger` seconds with the model loaded so the next commit's update is quick."""
    if nice:
        try:
            os.nice(10)
        except OSError:
            pass
    if linger is None:
        linger = linger_seconds(ws.root, ws.settings)
    _log(f"worker {os.getpid()} started")
    updater = make_updater(ws, busy_wait=WORKER_BUSY_WAIT)

    def update(batch):
        updater(batch)
        _clear_error(ws.index_dir)

    try:
        status = drain(ws.index_dir, update, linger=linger)
    except Exception as error:  # noqa: BLE001 - recorded for the next hook run to report
        message = one_line(error)
        _record_error(ws.index_dir, message)
        _log(f"update failed, paths kept for the next run: {message}")
        return 1
    _log(f"worker {os.getpid()} {'exits' if status == 'done' else status}")
    return 0


def stop_worker(index_dir: Path) -> int | None:
    """End the background worker (SIGTERM); returns its pid, or None when none runs.
    Whatever it had claimed stays queued for the next run."""
    if not drainer_running(index_dir):
        return None
    pid = drainer_pid(index_dir)
    return pid if terminate(pid) else None


def wait_for_worker(ws, proc: subprocess.Popen | None, since: float,
                    timeout: float | None = None) -> tuple[str, str]:
    """Wait until the queue (with our paths) is applied: ("done" | "failed" | "stopped" | "timeout", why)."""
    idx = ws.index_dir
    deadline = time.monotonic() + (ws.settings.hook_sync_wait if timeout is None else timeout)
    while time.monotonic() < deadline:
        error = _error_since(idx, since)
        if error:
            return "failed", error
        if not work_left(idx):
            return "done", ""
        alive = (proc is not None and proc.poll() is None) or drainer_running(idx)
        if not alive:
            if not work_left(idx):
                return "done", ""
            error = _error_since(idx, since)
            return ("failed", error) if error else ("stopped", "")
        time.sleep(0.02)
    return "timeout", ""


# -- what git calls ------------------------------------------------------------------------------

def run_hook(hook: str, args: tuple[str, ...], repo: Path | None = None, index_dir: str | None = None,
             sync: bool | None = None, device: str | None = None) -> None:
    """What the installed hook calls. Never raises: problems become one warning line."""
    try:
        _run_hook(hook, args, repo, index_dir, sync, device)
    except KeyboardInterrupt:
        say("interrupted; the changed files stay queued for the next run")
    except Exception as error:  # noqa: BLE001 - a hook must never fail the git command
        say(f"warning: index not updated ({one_line(error)}); run `codesearch index` to catch up")


def _run_hook(hook, args, repo, index_dir, sync, device) -> None:
    from ..app import open_workspace

    ws = open_workspace(repo, must_exist=False, index_dir=index_dir, device=device)
    idx = ws.index_dir
    if not (idx / INDEX_DB).exists():
        say(f"no index for this repository yet, so the {hook} hook does nothing; "
            f"run `codesearch index` to start one")
        return
    change = changed_paths(ws.root, hook, tuple(args))
    if change.paths or change.stale:
        enqueue(idx, change, hook)
    elif not pending(idx).events:
        return  # nothing changed, nothing left over
    previous = last_error(idx)
    previous = previous.split(" ", 2)[-1] if previous else None  # without its date and time
    if sync is None:
        sync = sync_configured(ws.root, ws.settings)
    if not sync:
        if previous:
            say(f"warning: the previous index update failed ({previous}); retrying in the background "
                f"(`codesearch hook status` shows how it goes)")
        if not drainer_running(idx):  # else the running one picks our paths up
            announce(ws, spawn_worker(ws))
        return
    _sync_update(ws, previous)


def _sync_update(ws, previous: str | None) -> None:
    """The commit waits until the index has the change. A warm worker (one that lingers after
    an earlier update) does it fastest; with lingering on, start one; with it off, update here."""
    idx = ws.index_dir
    started = time.time()
    outcome, why = "stopped", ""
    if drainer_running(idx):
        outcome, why = wait_for_worker(ws, None, started)
    elif linger_seconds(ws.root, ws.settings) > 0:
        proc = spawn_worker(ws, nice=False)
        announce(ws, proc)
        outcome, why = wait_for_worker(ws, proc, started)
    if outcome == "done":
        if previous:
            say("the previous index update failed; this one caught up with its queued paths")
        return
    if outcome == "failed":
        say(f"warning: index not updated ({why}); {len(pending(idx).paths)} changed path(s) stay queued and "
            f"the next commit retries them")
        return
    if outcome == "timeout":
        say(f"the index update is taking longer than {ws.settings.hook_sync_wait:.0f} s; it goes on in the "
            f"background (`codesearch hook status` shows how it goes)")
        return
    try:  # no worker: update inline
        if drain(idx, make_updater(ws, busy_wait=SYNC_BUSY_WAIT, verbose=False)) == "done":
            _clear_error(idx)
            if previous:
                say("the previous index update failed; this one caught up with its queued paths")
    except IndexBusyError:
        spawn_worker(ws)
        say("the index is busy (another codesearch is writing it); updating in the background")
    except Exception as error:  # noqa: BLE001
        message = one_line(error)
        _record_error(idx, message)
        say(f"warning: index not updated ({message}); {len(pending(idx).paths)} changed path(s) stay queued and "
            f"the next commit retries them")


def status_report(ws) -> dict:
    from .events import HOOK_NAMES, hooks_dir, hooks_path_config
    from .install import inspect_hook

    directory = hooks_dir(ws.root)
    idx = ws.index_dir
    hooks = {}
    sync_config = sync_configured(ws.root, ws.settings)
    for name in HOOK_NAMES:
        info = inspect_hook(directory, name)
        sync = "--sync" in info.options or (sync_config and "--background" not in info.options)
        hooks[name] = {"path": str(info.path), "installed": info.installed,
                       "mode": ("sync" if sync else "background") if info.installed else None,
                       "own_hook_kept": info.installed and not info.created,
                       "problem": info.problem or None}
    has_index = (idx / INDEX_DB).exists()
    queued = pending(idx) if has_index else Batch()
    running = has_index and drainer_running(idx)
    return {"repo": str(ws.root), "hooks_dir": str(directory), "core_hooks_path": hooks_path_config(ws.root),
            "hooks": hooks, "index_dir": str(idx), "index": has_index,
            "pending_paths": len(queued.paths) + (1 if queued.stale else 0),
            "worker_running": running, "worker_pid": drainer_pid(idx) if running else None,
            "linger_s": linger_seconds(ws.root, ws.settings),
            "last_error": last_error(idx) if has_index else None,
            "log": str(idx / LOG_FILE)}

