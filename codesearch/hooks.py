"""Git hooks that keep a repository's index fresh without slowing commits down.

`codesearch hook install` adds a small marked block to the pre-commit, post-checkout and
post-merge hooks (where git runs them: `core.hooksPath` and worktrees respected), keeping
whatever the user's hooks already do; `uninstall` removes exactly the bytes it added.

When a hook runs, it:
1. lists the paths the event changes (`git diff --name-status -z`: staged paths for
   pre-commit, the two heads' difference for post-checkout and post-merge), never the
   whole repository;
2. appends them to the queue `<index>/pending` (one JSON line per event, O_APPEND, under
   a short flock), so nothing is lost when another update is running;
3. by default starts a detached background worker, unless one is already running (it will
   take the new paths), and returns: the commit is not held up. With `--sync`
   (`CODESEARCH_HOOK_SYNC=1`, `git config codesearch.hookSync true`) the hook waits until
   the index has the change: it hands the paths to a running worker, or starts one, or,
   with lingering off, updates the index itself, inline.

The drainer (a worker, or a --sync hook) holds `<index>/hook.lock` (a `WriteLock` on its
own file) and loops: move the queue into `<index>/pending.claimed`, re-index those paths
with `Indexer.run(only=...)` (which takes the index's write lock itself), delete the claimed
file, until the queue is empty; after releasing it looks once more, so a path queued while
it was finishing is never stranded. A worker then lingers (`CODESEARCH_HOOK_LINGER` s, git
config codesearch.hookLinger, default 120; 0 turns it off) with the model loaded, taking new
paths as they are queued: loading torch and the model is most of an update's cost, so the
next commit's update takes a fraction of a second. A failed update (say the model cannot
load) leaves the claimed file in place: the next run retries it, and the hook prints one
warning line. Nothing here ever makes git fail: `codesearch hook run` exits 0 whatever
happens.

The index follows the working tree, as everywhere else in codesearch: the hook re-indexes
the changed paths' working-tree content, which is what the staged content is unless part
of a file was left unstaged.

This module imports only the standard library at the top: the hook's own cost is Python
start-up, click and one `git diff`; torch is only imported by the worker (or a --sync run).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

from .errors import CodesearchError

HOOK_NAMES = ("pre-commit", "post-checkout", "post-merge")
BEGIN = "# >>> codesearch >>>"
END = "# <<< codesearch <<<"
TAG_CREATED = "# codesearch: created this file"
TAG_NEWLINE = "# codesearch: added a newline after the first line"
SHEBANG = "#!/bin/sh\n"
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"}

QUEUE_FILE = "pending"
CLAIMED_FILE = "pending.claimed"
HOOK_LOCK_FILE = "hook.lock"
ERROR_FILE = "hook-error"
LOG_FILE = "hook.log"
LOG_MAX_BYTES = 1_000_000
SYNC_ENV = "CODESEARCH_HOOK_SYNC"
SYNC_CONFIG = "codesearch.hookSync"
INDEX_DB = "index.db"  # = store.DB_NAME; store.py is not imported here (it pulls in numpy)

LINGER_ENV = "CODESEARCH_HOOK_LINGER"
LINGER_CONFIG = "codesearch.hookLinger"
DEFAULT_LINGER = 120.0  # seconds a worker stays, model loaded, waiting for the next commit

WORKER_BUSY_WAIT = 3600.0  # background: wait this long for a manual `codesearch index` to finish
SYNC_BUSY_WAIT = 3.0  # --sync: then leave the rest to a background worker
SYNC_WAIT_ENV = "CODESEARCH_HOOK_SYNC_WAIT"
SYNC_WAIT_DEFAULT = 60.0  # --sync: the longest a commit waits for a worker (then it goes on alone)
_NULL_SHA = re.compile(r"^0+$")


def _say(msg: str) -> None:
    """One line on stderr (git shows hook output there)."""
    try:
        sys.stderr.write(f"codesearch: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# -- git ---------------------------------------------------------------------------------------

def _git(cwd: Path, *args: str, env: dict | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True,
                          timeout=120).stdout


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")  # as files.py decodes `git ls-files`


def work_tree(repo: Path | None) -> Path:
    """The top of the working tree around `repo` (default: the current folder)."""
    start = (repo or Path.cwd()).expanduser()
    if not start.is_dir():
        raise CodesearchError(f"{start} is not a folder; pass the folder of a git repository")
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        raise CodesearchError("git is not installed (or not on PATH); git hooks need it") from None
    except subprocess.CalledProcessError:
        raise CodesearchError(f"{start} is not inside a git working tree; run this in a repository "
                              f"(bare repositories have no working tree to index)") from None
    return Path(_decode(out.rstrip(b"\n"))).resolve()


def hooks_dir(root: Path) -> Path:
    """Where git looks for this repository's hooks: honours core.hooksPath and worktrees."""
    out = _decode(_git(root, "rev-parse", "--git-path", "hooks").rstrip(b"\n"))
    path = Path(out).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def hooks_path_config(root: Path) -> str | None:
    try:
        return _decode(_git(root, "config", "--get", "core.hooksPath").rstrip(b"\n")) or None
    except subprocess.CalledProcessError:
        return None


def parse_name_status(out: bytes) -> set[str]:
    """Paths of `git diff --name-status -z` output: both sides of renames and copies."""
    tokens = out.split(b"\0")
    paths: set[str] = set()
    i = 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i]
        n = 2 if status[:1] in (b"R", b"C") else 1
        for name in tokens[i + 1:i + 1 + n]:
            if name:
                paths.add(_decode(name))
        i += 1 + n
    return paths


def _diff(root: Path, *revs: str, cached: bool = False) -> set[str]:
    args = ["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", "--ignore-submodules"]
    if cached:
        args.append("--cached")
    return parse_name_status(_git(root, *args, *revs))


def _rev_ok(root: Path, rev: str) -> bool:
    try:
        _git(root, "rev-parse", "--verify", "--quiet", rev + "^{commit}")
        return True
    except subprocess.CalledProcessError:
        return False


class Change:
    """The paths one hook event changes. (Plain classes here, not dataclasses: importing
    dataclasses costs the hook milliseconds on every commit.)"""

    def __init__(self, paths: set[str] | None = None, stale: bool = False):
        self.paths = set(paths or ())
        self.stale = stale  # also re-check every indexed file's size and mtime (file checkouts)


def changed_paths(root: Path, hook: str, args: tuple[str, ...] = (), environ=None) -> Change:
    """What a hook event changes in the working tree, as repository-relative paths.

    pre-commit: the staged paths (added, modified, deleted, both sides of renames).
    post-checkout PREV NEW 1: the paths that differ between the two heads;
    post-checkout PREV NEW 0 (file checkout): what differs from HEAD, plus a check of the
    indexed files' sizes and mtimes (git does not say which files it checked out).
    post-merge: the paths that differ between ORIG_HEAD and HEAD (and the staged ones of a
    squash merge). Under the pre-commit framework the arguments arrive as PRE_COMMIT_* variables.
    """
    env = os.environ if environ is None else environ
    if hook == "pre-commit" and "PRE_COMMIT_CHECKOUT_TYPE" in env:
        hook = "post-checkout"  # one pre-commit-framework entry serves every stage
        args = (env.get("PRE_COMMIT_FROM_REF", ""), env.get("PRE_COMMIT_TO_REF", ""),
                env["PRE_COMMIT_CHECKOUT_TYPE"])
    elif hook == "pre-commit" and "PRE_COMMIT_IS_SQUASH_MERGE" in env:
        hook = "post-merge"
        args = (env["PRE_COMMIT_IS_SQUASH_MERGE"],)
    if hook == "pre-commit":
        return Change(_diff(root, cached=True))
    if hook == "post-checkout":
        prev, new, flag = (tuple(args) + ("", "", "1"))[:3]
        if flag == "0":
            return Change(_diff(root, "HEAD") if _rev_ok(root, "HEAD") else set(), stale=True)
        if not prev or not new or prev == new or _NULL_SHA.match(prev):
            return Change()  # same commit (e.g. `git checkout -b`), or a fresh clone
        return Change(_diff(root, prev, new))
    if hook == "post-merge":
        paths: set[str] = set()
        if _rev_ok(root, "ORIG_HEAD"):
            paths |= _diff(root, "ORIG_HEAD", "HEAD")
        if args and args[0] == "1":  # squash merge: HEAD did not move, the result is staged
            paths |= _diff(root, "HEAD", cached=True)
        return Change(paths)
    raise CodesearchError(f"unknown hook {hook!r}; codesearch runs as {', '.join(HOOK_NAMES)}")


def sync_configured(root: Path) -> bool:
    value = os.environ.get(SYNC_ENV)
    if value is not None:
        return value.strip().lower() in ("1", "true", "yes", "on")
    try:
        return _git(root, "config", "--bool", "--get", SYNC_CONFIG).strip() == b"true"
    except (subprocess.CalledProcessError, OSError):
        return False


def linger_seconds(root: Path) -> float:
    """How long a worker waits, warm, for more work: $CODESEARCH_HOOK_LINGER, git config
    codesearch.hookLinger, else DEFAULT_LINGER; 0 makes it exit as soon as the queue is empty."""
    value = os.environ.get(LINGER_ENV)
    if value is None:
        try:
            value = _decode(_git(root, "config", "--get", LINGER_CONFIG).strip())
        except (subprocess.CalledProcessError, OSError):
            value = None
    try:
        return max(0.0, float(value)) if value not in (None, "") else DEFAULT_LINGER
    except ValueError:
        return DEFAULT_LINGER


# -- install / uninstall ---------------------------------------------------------------------

def _console_script() -> Path | None:
    """The `codesearch` executable of this installation (not a version-manager shim)."""
    import sysconfig

    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "codesearch" and argv0.is_file():
        return argv0.absolute()
    candidate = Path(sysconfig.get_path("scripts")) / "codesearch"
    return candidate if candidate.is_file() else None


def hook_block(name: str, options: list[str], created: bool = False, added_newline: bool = False) -> str:
    """The marked block: the recorded `codesearch` executable, else this interpreter, else PATH."""
    from shlex import quote as q

    tail = " ".join(q(a) for a in ["hook", "run", *options, name]) + ' -- "$@" || true'
    lines = [BEGIN, "# keeps the codesearch index fresh; `codesearch hook uninstall` removes this block"]
    if created:
        lines.append(TAG_CREATED)
    if added_newline:
        lines.append(TAG_NEWLINE)
    script = _console_script()
    python = q(sys.executable)
    keyword = "if"
    if script is not None:
        lines.append(f"if [ -x {q(str(script))} ]; then {q(str(script))} {tail}")
        keyword = "elif"
    lines.append(f"{keyword} [ -x {python} ]; then {python} -m codesearch.cli {tail}")
    lines.append(f"elif command -v codesearch >/dev/null 2>&1; then codesearch {tail}")
    lines.append("fi")
    lines.append(END)
    return "\n".join(lines) + "\n"


class Parsed:
    def __init__(self, original: bytes, block: str | None, created: bool = False):
        self.original = original  # the file without our block, byte for byte
        self.block = block  # our block, if present
        self.created = created


def split_block(content: bytes) -> Parsed:
    """Separate our marked block from the rest of a hook file."""
    begin = content.find(BEGIN.encode())
    if begin < 0 or (begin > 0 and content[begin - 1:begin] != b"\n"):
        return Parsed(content, None)
    end = content.find(END.encode(), begin)
    if end < 0:
        return Parsed(content, None)
    stop = end + len(END)
    if content[stop:stop + 1] == b"\n":
        stop += 1
    block = content[begin:stop].decode("utf-8", "surrogateescape")
    start = begin
    if TAG_NEWLINE in block and start > 0 and content[start - 1:start] == b"\n":
        start -= 1
    return Parsed(content[:start] + content[stop:], block, created=TAG_CREATED in block)


def _interpreter(first_line: bytes) -> str:
    words = first_line[2:].decode("utf-8", "replace").split()
    if not words:
        return ""
    prog = os.path.basename(words[0])
    if prog == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        prog = os.path.basename(rest[0]) if rest else ""
    return prog


def insert_block(original: bytes, block_for) -> bytes:
    """Our block right after the shebang line (before any `exit` the user's hook ends with)."""
    if original.startswith(b"#!"):
        nl = original.find(b"\n")
        if nl < 0:
            return original + b"\n" + block_for(False, True).encode()
        return original[:nl + 1] + block_for(False, False).encode() + original[nl + 1:]
    return block_for(False, False).encode() + original


class HookFile:
    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.exists = False
        self.installed = False
        self.created = False  # our block is all there is
        self.options: list[str] = []
        self.problem = ""


def _read_hook(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def inspect_hook(directory: Path, name: str) -> HookFile:
    path = directory / name
    info = HookFile(name, path)
    if path.exists() and not path.is_file():
        info.exists = True
        info.problem = f"{path} is not a file"
        return info
    content = _read_hook(path)
    if content is None:
        return info
    info.exists = True
    parsed = split_block(content)
    if parsed.block is not None:
        info.installed = True
        info.created = parsed.created and parsed.original == SHEBANG.encode()
        m = re.search(r"hook run ((?:\S+ )*?)" + re.escape(name) + " -- ", parsed.block)
        info.options = m.group(1).split() if m else []
    if not os.access(path, os.X_OK):
        info.problem = f"{path} is not executable, so git does not run it"
    elif parsed.original.startswith(b"#!"):
        interp = _interpreter(parsed.original.split(b"\n", 1)[0])
        if interp not in SHELLS:
            info.problem = (f"{path} is a {interp or 'non-shell'} script; codesearch can only add "
                            f"its block to shell hooks")
    return info


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    target = path.resolve() if path.is_symlink() else path
    tmp = target.with_name(f".{target.name}.codesearch-tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


def install(root: Path, options: list[str], names=HOOK_NAMES) -> list[str]:
    """Add (or refresh) our block in each hook; returns one line per hook."""
    directory = hooks_dir(root)
    infos = [inspect_hook(directory, n) for n in names]
    bad = [i for i in infos if i.problem]
    if bad:  # check all first: change nothing rather than half
        i = bad[0]
        raise CodesearchError(
            f"{i.problem}; fix or remove it, or call `codesearch hook run {i.name} -- \"$@\" || true` "
            f"from it yourself (nothing was installed)")
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for info in infos:
        def block_for(created: bool, added_newline: bool, name=info.name) -> str:
            return hook_block(name, options, created, added_newline)

        if not info.exists:
            _write_atomic(info.path, (SHEBANG + block_for(True, False)).encode(), 0o755)
            lines.append(f"{info.name}: installed ({info.path})")
            continue
        content = info.path.read_bytes()
        parsed = split_block(content)
        if parsed.block is not None and parsed.created and parsed.original == SHEBANG.encode():
            new = (SHEBANG + block_for(True, False)).encode()
        else:
            new = insert_block(parsed.original, block_for)
        mode = stat.S_IMODE(info.path.stat().st_mode)
        if new == content:
            lines.append(f"{info.name}: already installed ({info.path})")
            continue
        _write_atomic(info.path, new, mode)
        what = "updated" if parsed.block is not None else "installed, keeping your existing hook"
        lines.append(f"{info.name}: {what} ({info.path})")
    return lines


def uninstall(root: Path, names=HOOK_NAMES) -> list[str]:
    """Remove our block; a hook file we created is deleted, any other is restored byte for byte."""
    directory = hooks_dir(root)
    lines = []
    for name in names:
        path = directory / name
        content = _read_hook(path) if path.is_file() else None
        parsed = split_block(content) if content is not None else None
        if parsed is None or parsed.block is None:
            lines.append(f"{name}: not installed")
            continue
        if parsed.created and parsed.original == SHEBANG.encode():
            path.unlink()
            lines.append(f"{name}: removed ({path})")
        else:
            _write_atomic(path, parsed.original, stat.S_IMODE(path.stat().st_mode))
            lines.append(f"{name}: removed the codesearch block; your hook is as it was ({path})")
    return lines


# -- the queue -------------------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def enqueue(index_dir: Path, change: Change, hook: str = "") -> None:
    """Append one event's paths to the queue (never blocks for long, never loses paths)."""
    record = json.dumps({"paths": sorted(change.paths), "stale": change.stale, "hook": hook,
                         "time": round(time.time(), 3)}) + "\n"
    fd = os.open(index_dir / QUEUE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
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
    fd = os.open(index_dir / QUEUE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
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
    try:
        claimed = (index_dir / CLAIMED_FILE).read_bytes()
    except FileNotFoundError:
        return None
    if not claimed.strip():
        return None
    return parse_queue(claimed)


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


def drainer_running(index_dir: Path) -> bool:
    """Whether a drainer holds the hook lock right now (a cheap flock probe, no numpy)."""
    path = index_dir / HOOK_LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def _hook_lock(index_dir: Path):
    from .store import WriteLock

    lock = WriteLock(index_dir)
    lock.path = Path(index_dir) / HOOK_LOCK_FILE  # same flock semantics, its own file
    return lock


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
    lock = _hook_lock(index_dir)
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


# -- updating the index ----------------------------------------------------------------------

def _stale_indexed(root: Path, index_dir: Path) -> set[str]:
    """Indexed files whose size or mtime differ from the working tree (one stat each)."""
    from .store import Store

    store = Store(index_dir).open()
    try:
        known = store.file_hashes()
    finally:
        store.close()
    out = set()
    for path, (_h, size, mtime_ns) in known.items():
        try:
            st = (root / path).lstat()
        except OSError:
            out.add(path)
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            out.add(path)
    return out


class _LogReporter:
    """Indexer progress as plain lines (the worker's stderr is the hook log)."""

    def __init__(self, verbose: bool):
        self.verbose = verbose

    def info(self, msg: str) -> None:
        if self.verbose:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    def start_embedding(self, total_chunks: int, total_tokens_estimate: int, device: str) -> None:
        self.info(f"embedding {total_chunks} pieces ({total_tokens_estimate} tokens) on {device}")

    def embedded(self, n_chunks: int, n_tokens: int) -> None: ...
    def done_embedding(self) -> None: ...


def make_updater(root: Path, index_dir: Path, device: str = "auto", busy_wait: float = 0.0,
                 verbose: bool = True):
    """`update(batch)` that re-indexes the batch's paths with the index's recorded model."""
    from .cli import _load_embedder, _resolve_spec
    from .errors import IndexBusyError
    from .indexer import Indexer

    embedders: dict = {}
    reporter = _LogReporter(verbose)

    def embedder_for(spec):
        if spec.id not in embedders:
            reporter.info(f"loading model {spec.id} ...")
            try:
                embedders[spec.id] = _load_embedder(spec, device)
            except CodesearchError:
                raise
            except Exception as error:  # noqa: BLE001 - e.g. a corrupt weights file
                raise CodesearchError(f"cannot load model {spec.id}: {_one_line(error)}") from None
        return embedders[spec.id]

    def spec_for(recorded_id):
        if recorded_id is None:
            raise CodesearchError(f"the index at {index_dir} records no model; run `codesearch index`")
        return _resolve_spec(None, recorded_id)

    def update(batch: Batch):
        paths = set(batch.paths)
        if batch.stale:
            paths |= _stale_indexed(root, index_dir)
        if not paths:
            return None
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                report = Indexer(root, index_dir, reporter=reporter).run(
                    spec_for=spec_for, embedder_for=embedder_for, only=sorted(paths))
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
        (index_dir / ERROR_FILE).write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n",
                                            encoding="utf-8")
    except OSError:
        pass


def _clear_error(index_dir: Path) -> None:
    (index_dir / ERROR_FILE).unlink(missing_ok=True)


def last_error(index_dir: Path) -> str | None:
    try:
        return (index_dir / ERROR_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def spawn_worker(root: Path, index_dir: Path, device: str = "auto", nice: bool = True) -> subprocess.Popen:
    """Start the detached drainer. Its output goes to <index>/hook.log."""
    log = index_dir / LOG_FILE
    try:
        if log.stat().st_size > LOG_MAX_BYTES:
            os.replace(log, log.with_name(LOG_FILE + ".1"))
    except OSError:
        pass
    # git exports GIT_DIR, GIT_INDEX_FILE (a temporary index during `git commit -a`) ...:
    # the worker outlives the commit, so it must not inherit them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    cmd = [sys.executable, "-c", "from codesearch.cli import main; main(prog_name='codesearch')",
           "hook", "drain", "--repo", str(root), "--index-path", str(index_dir), "--device", device]
    if nice:
        cmd.append("--nice")
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=str(root), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True, close_fds=True)


def _log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def run_worker(root: Path, index_dir: Path, device: str = "auto", nice: bool = False,
               linger: float | None = None) -> int:
    """The background drainer (`codesearch hook drain`): waits for a busy index, then stays
    `linger` seconds with the model loaded so the next commit's update is quick."""
    if nice:
        try:
            os.nice(10)
        except OSError:
            pass
    if linger is None:
        linger = linger_seconds(root)
    _log(f"worker {os.getpid()} started")
    updater = make_updater(root, index_dir, device, busy_wait=WORKER_BUSY_WAIT)

    def update(batch):
        updater(batch)
        _clear_error(index_dir)

    try:
        status = drain(index_dir, update, linger=linger)
    except Exception as error:  # noqa: BLE001 - recorded for the next hook run to report
        message = _one_line(error)
        _record_error(index_dir, message)
        _log(f"update failed, paths kept for the next run: {message}")
        return 1
    _log(f"worker {os.getpid()} {'exits' if status == 'done' else status}")
    return 0


def stop_worker(index_dir: Path) -> int | None:
    """End the background worker (SIGTERM); returns its pid, or None when none runs.
    Whatever it had claimed stays queued for the next run."""
    import signal

    if not drainer_running(index_dir):
        return None
    pid = _lock_pid(index_dir)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return None
    return pid


def _lock_pid(index_dir: Path) -> int | None:
    try:
        return int((index_dir / HOOK_LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _error_since(index_dir: Path, since: float) -> str | None:
    try:
        if (index_dir / ERROR_FILE).stat().st_mtime < since:
            return None
    except OSError:
        return None
    message = last_error(index_dir)
    return message.split(" ", 2)[-1] if message else None


def _sync_wait() -> float:
    try:
        return float(os.environ.get(SYNC_WAIT_ENV, SYNC_WAIT_DEFAULT))
    except ValueError:
        return SYNC_WAIT_DEFAULT


def wait_for_worker(index_dir: Path, proc: subprocess.Popen | None, since: float,
                    timeout: float | None = None) -> tuple[str, str]:
    """Wait until the queue (with our paths) is applied: ("done" | "failed" | "stopped" | "timeout", why)."""
    if timeout is None:
        timeout = _sync_wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        error = _error_since(index_dir, since)
        if error:
            return "failed", error
        if not work_left(index_dir):
            return "done", ""
        alive = (proc is not None and proc.poll() is None) or drainer_running(index_dir)
        if not alive:
            if not work_left(index_dir):
                return "done", ""
            error = _error_since(index_dir, since)
            return ("failed", error) if error else ("stopped", "")
        time.sleep(0.02)
    return "timeout", ""


def run_hook(hook: str, args: tuple[str, ...], repo: Path | None = None, index_dir: str | None = None,
             sync: bool | None = None, device: str = "auto") -> None:
    """What the installed hook calls. Never raises: problems become one warning line."""
    try:
        _run_hook(hook, args, repo, index_dir, sync, device)
    except KeyboardInterrupt:
        _say("interrupted; the changed files stay queued for the next run")
    except Exception as error:  # noqa: BLE001 - a hook must never fail the git command
        _say(f"warning: index not updated ({_one_line(error)}); run `codesearch index` to catch up")


def _run_hook(hook, args, repo, index_dir, sync, device) -> None:
    from .paths import find_repo_root, index_dir_for

    root = repo.resolve() if repo is not None else find_repo_root(Path.cwd())
    idx = index_dir_for(root, index_dir)
    if not (idx / INDEX_DB).exists():
        _say(f"no index for this repository yet, so the {hook} hook does nothing; "
             f"run `codesearch index` to start one")
        return
    change = changed_paths(root, hook, tuple(args))
    if change.paths or change.stale:
        enqueue(idx, change, hook)
    elif not pending(idx).events:
        return  # nothing changed, nothing left over
    previous = last_error(idx)
    previous = previous.split(" ", 2)[-1] if previous else None  # without its date and time
    if sync is None:
        sync = sync_configured(root)
    if not sync:
        if previous:
            _say(f"warning: the previous index update failed ({previous}); retrying in the background "
                 f"(`codesearch hook status` shows how it goes)")
        if not drainer_running(idx):  # else the running one picks our paths up
            spawn_worker(root, idx, device)
        return
    # --sync: the commit waits until the index has the change. A warm worker (one that
    # lingers after an earlier update) does it fastest; with lingering on, start one;
    # with it off, update right here.
    started = time.time()
    outcome, why = "stopped", ""
    if drainer_running(idx):
        outcome, why = wait_for_worker(idx, None, started)
    elif linger_seconds(root) > 0:
        outcome, why = wait_for_worker(idx, spawn_worker(root, idx, device, nice=False), started)
    if outcome == "done":
        if previous:
            _say("the previous index update failed; this one caught up with its queued paths")
        return
    if outcome == "failed":
        n = len(pending(idx).paths)
        _say(f"warning: index not updated ({why}); {n} changed path(s) stay queued and "
             f"the next commit retries them")
        return
    if outcome == "timeout":
        _say(f"the index update is taking longer than {_sync_wait():.0f} s; it goes on in the background "
             f"(`codesearch hook status` shows how it goes)")
        return
    try:  # no worker: update inline
        if drain(idx, make_updater(root, idx, device, busy_wait=SYNC_BUSY_WAIT, verbose=False)) == "done":
            _clear_error(idx)
            if previous:
                _say("the previous index update failed; this one caught up with its queued paths")
    except Exception as error:  # noqa: BLE001
        from .errors import IndexBusyError

        if isinstance(error, IndexBusyError):
            spawn_worker(root, idx, device)
            _say("the index is busy (another codesearch is writing it); updating in the background")
            return
        message = _one_line(error)
        _record_error(idx, message)
        n = len(pending(idx).paths)
        _say(f"warning: index not updated ({message}); {n} changed path(s) stay queued and "
             f"the next commit retries them")


def status_report(root: Path, index_dir: str | None = None) -> dict:
    from .paths import index_dir_for

    directory = hooks_dir(root)
    idx = index_dir_for(root, index_dir)
    hooks = {}
    sync_config = sync_configured(root)
    for name in HOOK_NAMES:
        info = inspect_hook(directory, name)
        sync = "--sync" in info.options or (sync_config and "--background" not in info.options)
        hooks[name] = {"path": str(info.path), "installed": info.installed,
                       "mode": ("sync" if sync else "background") if info.installed else None,
                       "own_hook_kept": info.installed and not info.created,
                       "problem": info.problem or None}
    has_index = (idx / INDEX_DB).exists()
    queued = pending(idx) if has_index else Batch()
    return {"repo": str(root), "hooks_dir": str(directory), "core_hooks_path": hooks_path_config(root),
            "hooks": hooks, "index_dir": str(idx), "index": has_index,
            "pending_paths": len(queued.paths) + (1 if queued.stale else 0),
            "worker_running": has_index and drainer_running(idx),
            "worker_pid": _lock_pid(idx) if has_index and drainer_running(idx) else None,
            "linger_s": linger_seconds(root),
            "last_error": last_error(idx) if has_index else None,
            "log": str(idx / LOG_FILE)}
