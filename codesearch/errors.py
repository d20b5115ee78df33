"""User-facing errors: one line that says what went wrong and what to do.

The CLI prints `error: <message>` for these and exits non-zero, without a traceback.
Anything else that escapes is a bug in codesearch and keeps its traceback.

Exit codes follow grep's: 0 something matched, 1 nothing matched (never an error), 2 or more
an error: 2 in general (also: no index yet, a usage mistake, a bug), 3-8 for the errors a
script may want to tell apart (below: no space left is 7, an embedding server 8).
"""

import errno


class CodesearchError(Exception):
    """A problem the user can fix; the message says how."""

    exit_code = 2


class NoIndexError(CodesearchError):
    exit_code = 2


class ModelMismatchError(CodesearchError):
    exit_code = 3


class ModelUnavailableError(CodesearchError):
    exit_code = 4


class IndexBusyError(CodesearchError):
    exit_code = 5


class CorruptIndexError(CodesearchError):
    exit_code = 6

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message  # what is wrong, without the advice


class DiskError(CodesearchError):
    """No space left for the index (or its disk failed a read or write)."""

    exit_code = 7


class EndpointError(CodesearchError):
    """An embedding server (--api-base) cannot be reached, refuses us, or answers wrongly."""

    exit_code = 8


DISK_FULL_ADVICE = "free some space or use --index-dir on another disk, then run again (the previous index is intact)"


def database_error(error: Exception, where=None) -> CodesearchError:
    """The user-facing error for an sqlite3.DatabaseError (any of its subclasses).

    SQLite says "database or disk is full" (SQLITE_FULL) when a write finds no space, "database
    is locked" when another writer holds it past the timeout; everything else it reports about
    an index file (malformed image, not a database, a missing table, a short read) means the
    index is damaged, and rebuilding it is the way out.
    """
    text = str(error).strip() or type(error).__name__
    place = f" at {where}" if where else ""
    lowered = text.lower()
    if "disk is full" in lowered or "no space" in lowered:
        return DiskError(f"no space left for the index{place} ({text}); {DISK_FULL_ADVICE}")
    if "i/o error" in lowered and _nearly_full(where):
        return DiskError(f"no space left for the index{place} ({text}); {DISK_FULL_ADVICE}")
    if "i/o error" in lowered:
        return DiskError(f"a read or write of the index{place} failed ({text}); check the disk and its "
                         f"free space, then run again")
    if "locked" in lowered or "busy" in lowered:
        return IndexBusyError(f"the index{place} is locked by another process ({text}); "
                              f"wait for it to finish and run the command again")
    return CorruptIndexError(f"the index{place} is damaged ({text}); run `codesearch index --rebuild`", text)


def _nearly_full(where) -> bool:
    """Whether the disk holding `where` has (next to) no space left: SQLite reports a write
    that found none as "disk I/O error" when it happens in the WAL or its shared memory."""
    import shutil

    if not where:
        return False
    try:
        return shutil.disk_usage(where).free < 256 * 1024
    except OSError:
        return False


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def user_error(error: BaseException) -> CodesearchError | None:
    """The CodesearchError a low-level failure means for the user, or None (a bug: keep the
    traceback). Front ends call this for what escapes: SQLite errors (sqlite3.DatabaseError and
    its subclasses, except ProgrammingError, which is codesearch misusing the API) and a write
    that found no space."""
    import sqlite3

    if isinstance(error, CodesearchError):
        return error
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.ProgrammingError):
        return database_error(error)
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        where = f" ({error.filename})" if error.filename else ""
        return DiskError(f"no space left on the device{where}: {error.strerror}; {DISK_FULL_ADVICE}")
    return None
