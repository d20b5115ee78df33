"""User-facing errors: one line that says what went wrong and what to do.

The CLI prints `error: <message>` for these and exits non-zero, without a traceback.
Anything else that escapes is a bug in codesearch and keeps its traceback.

Exit codes follow grep's: 0 something matched, 1 nothing matched (never an error), 2 or more
an error: 2 in general (also: no index yet, a usage mistake, a bug), 3-7 for the errors a
script may want to tell apart (below; no space left is 7).
"""


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


class EndpointError(CodesearchError):
    """An embedding server (--api-base) cannot be reached, refuses us, or answers wrongly."""

    exit_code = 8
