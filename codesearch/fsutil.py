"""The two file-system primitives every writer in codesearch uses: an atomic write and a lock.

- `atomic_write`: readers see the old file or the new one, never half of one (a temporary
  sibling, fsync'd, then renamed over the target). A symlinked target is written through.
- `private_folder`: a folder only this user can reach (the daemon's socket folder).
- `FileLock`: an exclusive inter-process lock on a file (filelock's, so the kernel drops it
  when the holder dies, kill -9 included), with the holder's pid kept in a sidecar file so a
  busy lock can say who holds it. `held_elsewhere` probes without waiting.

Imports only the standard library, filelock and errors.py: the git hook imports this on every commit.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
from pathlib import Path

from .errors import CodesearchError


def atomic_write(path: Path, data: bytes | str, mode: int | None = None, fsync: bool = True) -> None:
    """Replace `path` with `data` in one rename (its folder is made if missing). `mode` sets the
    permission bits (default: the old file's, else 0o666 less the umask)."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FileLock:
    """An exclusive lock on `path`, taken without blocking unless `acquire(wait=...)` says so.

    Not re-entrant across instances; one instance is one hold. Used as a context manager by
    callers that raise their own "busy" error when `acquire()` returns False.
    """

    def __init__(self, path: Path):
        # imported here: filelock pulls in logging, secrets and hashlib (13 ms), which every
        # command would pay at start-up, a query through the daemon included
        import filelock

        self.path = Path(path)
        self._lock = filelock.FileLock(str(self.path), timeout=0, thread_local=False, is_singleton=False,
                                       preserve_lock_file=True)

    @property
    def owner_path(self) -> Path:
        return self.path.with_name(self.path.name + ".owner")

    def acquire(self, wait: float = 0.0) -> bool:
        import filelock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=wait, poll_interval=0.05)
        except filelock.Timeout:
            return False
        try:
            atomic_write(self.owner_path, str(os.getpid()), fsync=False)
        except OSError:
            pass  # the pid is only for messages
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> int | None:
        """The pid that last took the lock (meaningful while `held_elsewhere()` is True)."""
        try:
            return int(self.owner_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock right now (a probe that never waits)."""
        if self.held:
            return False
        if not self.path.exists():
            return False
        import filelock

        probe = filelock.FileLock(str(self.path), timeout=0, thread_local=False, is_singleton=False,
                                  preserve_lock_file=True)
        try:
            probe.acquire(timeout=0)
        except filelock.Timeout:
            return True
        except OSError:
            return False
        probe.release(force=True)
        return False

    def __enter__(self):
        if not self.acquire():
            raise BlockingIOError(f"{self.path} is locked by pid {self.holder()}")
        return self

    def __exit__(self, *exc):
        self.release()


class UnsafeFolderError(CodesearchError):
    """A folder that should be this user's alone is not (another owner, a symlink, open modes)."""


def terminate(pid: int | None) -> bool:
    """Ask process `pid` to end (SIGTERM); False when there is none or it cannot be signalled
    (gone already, or another user's). The daemon's `stop` and the hooks' `stop_worker` use it."""
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    return True


def private_folder(path: Path) -> Path:
    """`path`, a folder that only this user can enter: made with mode 0700 when missing;
    refused (UnsafeFolderError, one line) when it is a symlink, not a folder, owned by another
    user, or open to group or others. An existing folder is never "repaired": whatever another
    user could have put in it while it was open (a socket of theirs under our socket's name)
    would stay; the message says to remove it."""
    path = Path(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise UnsafeFolderError(f"cannot make the private folder {path}: {error.strerror}") from None
    st = os.lstat(path)
    uid = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        why = "is a symlink"
    elif not stat.S_ISDIR(st.st_mode):
        why = "is not a folder"
    elif st.st_uid != uid:
        why = f"belongs to uid {st.st_uid}, not to you (uid {uid})"
    elif st.st_mode & 0o077:
        why = f"is open to other users (mode {stat.S_IMODE(st.st_mode):04o})"
    else:
        return path
    raise UnsafeFolderError(f"{path} {why}; codesearch keeps its sockets only in a folder of yours with mode "
                            f"0700: remove it, or set XDG_RUNTIME_DIR to such a folder")
