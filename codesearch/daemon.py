"""A warm background process per index, so repeated queries skip loading the model.

A query itself takes milliseconds; loading what answers it (torch and a model for most
indexes, the dictionaries for Chinese questions) takes far longer. The first `codesearch
query` in a repository answers in-process and starts this server; later queries send their
request over a Unix socket and print the answer, importing nothing heavy. The server answers
through the application layer's SearchSession (the same backend choice as an in-process
query), reloads the index when `codesearch index` changes it, and exits after an idle
timeout or on `codesearch daemon stop`.

The socket appears only once the server is ready (it is bound under a temporary name and
renamed): a query never waits for a server that is still loading; it answers in-process.

Protocol: one JSON request per connection, one JSON reply, each a single line.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import CodesearchError, CorruptIndexError, user_error
from .fsutil import FileLock, UnsafeFolderError, private_folder, terminate

SOCKET_NAME = "daemon.sock"
LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"


def runtime_folder() -> Path:
    """This user's private folder for sockets: $XDG_RUNTIME_DIR/codesearch when that is set and
    sound (platformdirs checks it; else /run/user/<uid>/codesearch), else codesearch-<uid> in
    the temporary folder. Whichever it is, fsutil.private_folder checks owner and mode: a
    folder of that name made first by another user (with mode 0777, say) is refused, never used."""
    import warnings

    try:
        import platformdirs

        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            base = Path(platformdirs.user_runtime_dir("codesearch", appauthor=False))
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        chosen = bool(xdg) and base.is_relative_to(xdg)  # platformdirs accepted $XDG_RUNTIME_DIR
        system = base.parent.is_dir() and not base.is_relative_to(tempfile.gettempdir())  # /run/user/<uid>
        if chosen or system:
            return private_folder(base)
    except (ImportError, OSError):
        pass
    return private_folder(Path(tempfile.gettempdir()) / f"codesearch-{os.getuid()}")


def socket_path(index_dir: Path) -> Path:
    """The socket in the index folder, or one in this user's private runtime folder when that
    path is too long for a Unix socket address (about 100 bytes). Raises UnsafeFolderError
    when that folder is not this user's alone."""
    path = Path(index_dir) / SOCKET_NAME
    if len(str(path).encode()) < 100:
        return path
    digest = hashlib.sha1(str(index_dir).encode()).hexdigest()[:16]
    return runtime_folder() / f"{digest}.sock"


def _read_line(sock) -> bytes:
    """One newline-terminated message (or whatever came before the peer closed)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


# -- client --------------------------------------------------------------------------------

def request(index_dir: Path, payload: dict, timeout: float = 60.0) -> dict | None:
    """Send one request; None when no server answers (then the caller works in-process). A
    socket folder that is not this user's alone is never connected to."""
    try:
        path = socket_path(index_dir)
    except UnsafeFolderError:
        return None
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n")
        data = _read_line(sock)
    except OSError:
        return None
    finally:
        sock.close()
    try:
        return json.loads(data)
    except ValueError:
        return None


def reply_error(reply: dict) -> CodesearchError:
    """The user error a server reported, with its exit code."""
    error = CodesearchError(reply.get("error") or "the query daemon failed")
    error.exit_code = int(reply.get("code", 1))
    return error


STARTED_NOTICE = ("started a background process (pid {pid}) that keeps this index's model loaded, so the next "
                  "queries answer fast; it exits after {idle} without a query, `codesearch daemon stop` ends it now, "
                  "--no-daemon or CODESEARCH_DAEMON=0 never starts it")


def loading(index_dir: Path) -> bool:
    """Whether a server for this index is starting (it holds the lock, its socket is not there yet)."""
    try:
        return FileLock(Path(index_dir) / LOCK_NAME).held_elsewhere()
    except OSError:
        return False


def start(ws, notice=None) -> int | None:
    """Start a server for workspace `ws` in the background (a new session, so it outlives the
    caller); `notice` gets one line saying so and how to stop it (or why it could not start).
    Returns the pid, or None when one already answers for this index or is still loading (it
    holds the server lock before its socket exists; nothing is said then) or the socket folder
    is unsafe."""
    try:
        socket_path(ws.index_dir)
    except UnsafeFolderError as error:
        if notice:
            notice(f"warning: no background query process: {error}")
        return None
    index_dir = Path(ws.index_dir)
    if loading(index_dir) or request(index_dir, {"op": "ping"}, timeout=2):
        return None
    log = open(index_dir / LOG_NAME, "ab")
    cmd = [sys.executable, "-m", "codesearch.daemon", str(index_dir), str(ws.root), ws.settings.device,
           str(ws.settings.daemon_idle)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            close_fds=True)
    log.close()
    if notice:
        notice(STARTED_NOTICE.format(pid=proc.pid, idle=_duration(ws.settings.daemon_idle)))
    return proc.pid


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def loading_pid(index_dir: Path) -> int | None:
    """The pid of a server for this index that is still loading (it holds the lock and has no
    socket yet), or None. Checked against the process's command line, so a pid reused by
    another program is never taken for it."""
    lock = FileLock(Path(index_dir) / LOCK_NAME)
    if not lock.held_elsewhere():
        return None
    pid = lock.holder()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if pid else []
    except OSError:
        return pid  # no /proc here: trust the lock's owner file
    return pid if b"codesearch.daemon" in cmdline else None


def stop(index_dir: Path) -> bool:
    """Stop this index's server: by request when it answers, by SIGTERM while it loads (a
    `daemon stop` right after the first query would otherwise say "not running" and leave it)."""
    reply = request(index_dir, {"op": "stop"}, timeout=5)
    if reply and reply.get("ok"):
        return True
    return terminate(loading_pid(index_dir))


# -- server --------------------------------------------------------------------------------

class Server:
    def __init__(self, ws):
        from .app import SearchSession

        self.ws = ws
        self.idle = ws.settings.daemon_idle
        self.session = SearchSession(ws)

    def handle(self, req: dict) -> dict:
        from .app import Query

        if req.get("op") == "ping":
            return {"ok": True, "pid": os.getpid()}
        if req.get("op") != "query":
            return {"ok": False, "error": f"unknown op {req.get('op')!r}"}
        self.session.check_model(req.get("model"))
        out, notes = [], []
        for q in req.get("queries", []):
            answer = self.session.answer(Query(**q))
            out.append([h.to_json() for h in answer.hits])
            notes.append(answer.notes)
        return {"ok": True, "results": out, "notes": notes}

    def warm_up(self) -> None:
        """Load what a question needs (the index, the model, the Chinese dictionaries), and on a
        GPU capture the graph of a typical question's length (on its second use)."""
        from .app import Query

        for _ in range(2):
            self.session.search(Query("read the configuration file and return its settings", k=1))
        try:
            self.session.search(Query("读取配置文件", k=1))
        except Exception as error:  # noqa: BLE001 - Chinese questions then load their part on first use
            print(f"codesearch daemon: Chinese warm-up failed ({error}); continuing", file=sys.stderr)

    def serve(self) -> int:
        lock = FileLock(self.ws.index_dir / LOCK_NAME)
        deadline = time.monotonic() + 15
        while not lock.acquire(wait=0.2):
            # a server that answers owns the index; one that does not is shutting down
            if request(self.ws.index_dir, {"op": "ping"}, timeout=5) or time.monotonic() > deadline:
                return 0
        try:
            path = socket_path(self.ws.index_dir)
            self.warm_up()  # before the socket exists: no client waits for the loading
        except Exception as error:  # noqa: BLE001 - log and exit; clients answer in-process
            print(f"codesearch daemon: cannot start: {error}", file=sys.stderr)
            lock.release()
            return 1
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is for this user only
        try:
            srv.bind(str(tmp))
        finally:
            os.umask(old_umask)
        srv.listen(16)
        srv.settimeout(1.0)
        os.replace(tmp, path)  # ready: from now on queries come here
        last = time.monotonic()
        try:
            while time.monotonic() - last < self.idle:
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    continue
                with conn:
                    op = self._answer(conn)
                if op == "stop":
                    break
                if op == "query":
                    last = time.monotonic()  # only real work keeps the server alive
        finally:
            path.unlink(missing_ok=True)
            srv.close()
            self.session.close()
            lock.release()  # at once: a new server may be waiting for it
        return 0

    def _answer(self, conn) -> str:
        """Answer one connection; returns its op."""
        conn.settimeout(30)
        req: dict = {}
        try:
            req = json.loads(_read_line(conn) or b"{}")
            if req.get("op") == "stop":
                conn.sendall(b'{"ok": true}\n')
                return "stop"
            reply = self.handle(req)
        except Exception as error:  # noqa: BLE001 - one bad request must not kill the server
            failure = user_error(error)
            if failure is not None:
                reply = {"ok": False, "error": str(failure), "code": failure.exit_code}
                if isinstance(failure, CorruptIndexError):
                    self.session.close_index()  # reopened (and checked) on the next question
            else:
                reply = {"ok": False, "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
        try:
            conn.sendall(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
        except OSError:
            pass
        return str(req.get("op")) if isinstance(req, dict) else ""


def main(argv: list[str]) -> int:
    from .app import open_workspace

    index_dir, repo, device, idle = argv[1], argv[2], argv[3], float(argv[4])
    ws = open_workspace(Path(repo), must_exist=False, device=device, daemon_idle=idle)
    ws.index_dir = Path(index_dir)
    return Server(ws).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
