"""A warm background process per index, so repeated queries skip loading torch and the model.

Importing torch and transformers costs seconds and loading a model more; a query itself
takes milliseconds. The first `codesearch query` in a repository answers in-process and
starts this server; later queries send their request over a Unix socket and print the
answer, importing nothing heavy. The server reloads the index when `codesearch index`
changes it, and exits after an idle timeout or on `codesearch daemon stop`.

Protocol: one JSON request per connection, one JSON reply, each a single line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOCKET_NAME = "daemon.sock"
LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"
DEFAULT_IDLE = 900.0  # seconds without a request before the server exits


def enabled() -> bool:
    return os.environ.get("CODESEARCH_DAEMON", "1").lower() not in ("0", "no", "off", "false")


def socket_path(index_dir: Path) -> Path:
    """The socket in the index folder, or a short path under /tmp when that one is too long
    for a Unix socket address (about 100 bytes)."""
    path = Path(index_dir) / SOCKET_NAME
    if len(str(path).encode()) < 100:
        return path
    digest = hashlib.sha1(str(index_dir).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"codesearch-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.sock"


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
    """Send one request; None when no server answers (then the caller works in-process)."""
    path = socket_path(index_dir)
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


def start(index_dir: Path, repo: Path, device: str = "auto", idle: float | None = None) -> None:
    """Start a server in the background (a new session, so it outlives the caller)."""
    index_dir = Path(index_dir)
    log = open(index_dir / LOG_NAME, "ab")
    cmd = [sys.executable, "-m", "codesearch.daemon", str(index_dir), str(repo), device,
           str(idle if idle is not None else float(os.environ.get("CODESEARCH_DAEMON_IDLE", DEFAULT_IDLE)))]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                     close_fds=True)
    log.close()


def stop(index_dir: Path) -> bool:
    reply = request(index_dir, {"op": "stop"}, timeout=5)
    return bool(reply and reply.get("ok"))


# -- server --------------------------------------------------------------------------------

class Server:
    def __init__(self, index_dir: Path, repo: Path, device: str, idle: float):
        self.index_dir = Path(index_dir)
        self.repo = repo
        self.device = device
        self.idle = idle
        self.searcher = None
        self.store = None
        self.embedder = None
        self.version = None

    def _index_version(self):
        from .ann import STAMP_FILE
        from .store import DB_NAME

        parts = []
        for name in (STAMP_FILE, DB_NAME, DB_NAME + "-wal"):
            try:
                st = (self.index_dir / name).stat()
                parts.append((st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append(None)
        return tuple(parts)

    def _ensure_current(self):
        """(Re)open the index when it changed since the last request."""
        from .search import Searcher
        from .store import Store

        version = self._index_version()
        if self.searcher is not None and version == self.version:
            return
        if self.store is not None:
            self.store.close()
        self.store = Store(self.index_dir).open()
        meta = self.store.get_meta("model") or {}
        if self.embedder is None or self.embedder.spec.id != meta.get("id"):
            from .cli import _load_embedder, _resolve_spec

            self.embedder = _load_embedder(_resolve_spec(None, meta.get("id")), self.device)
        self.searcher = Searcher(self.store, embedder=self.embedder)
        self.version = version

    def handle(self, req: dict) -> dict:
        if req.get("op") == "ping":
            return {"ok": True, "pid": os.getpid()}
        if req.get("op") != "query":
            return {"ok": False, "error": f"unknown op {req.get('op')!r}"}
        self._ensure_current()
        if req.get("model") and req["model"] != self.embedder.spec.id:
            return {"ok": False, "fallback": True}
        out = []
        self.searcher.translate = bool(req.get("translate", True))
        for q in req.get("questions", []):
            hits = self.searcher.search(q, req.get("k", 10), req.get("mode", "hybrid"),
                                        req.get("langs") or None, req.get("paths") or None)
            out.append([h.to_json() for h in hits])
        return {"ok": True, "results": out}

    def serve(self) -> int:
        lock_fd = os.open(self.index_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + 15
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                # a server that answers owns the index; one that does not is shutting down
                if request(self.index_dir, {"op": "ping"}, timeout=5) or time.monotonic() > deadline:
                    os.close(lock_fd)
                    return 0
                time.sleep(0.2)
        path = socket_path(self.index_dir)
        path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is for this user only
        try:
            srv.bind(str(path))
        finally:
            os.umask(old_umask)
        srv.listen(16)
        srv.settimeout(1.0)
        try:
            self._ensure_current()  # load the model before the first client waits for it
        except Exception as error:  # noqa: BLE001 - log and exit; clients fall back
            print(f"codesearch daemon: cannot start: {error}", file=sys.stderr)
            path.unlink(missing_ok=True)
            return 1
        last = time.monotonic()
        try:
            while time.monotonic() - last < self.idle:
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.settimeout(30)
                    try:
                        req = json.loads(_read_line(conn) or b"{}")
                        if req.get("op") == "stop":
                            conn.sendall(b'{"ok": true}\n')
                            break
                        reply = self.handle(req)
                        if req.get("op") == "query":
                            last = time.monotonic()  # only real work keeps the server alive
                    except Exception as error:  # noqa: BLE001 - one bad request must not kill the server
                        reply = {"ok": False, "error": str(error).splitlines()[0] if str(error) else
                                 type(error).__name__}
                    try:
                        conn.sendall(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
                    except OSError:
                        pass
        finally:
            path.unlink(missing_ok=True)
            srv.close()
            os.close(lock_fd)  # release at once: a new server may be waiting for it
        return 0


def main(argv: list[str]) -> int:
    index_dir, repo, device, idle = argv[1], argv[2], argv[3], float(argv[4])
    return Server(Path(index_dir), Path(repo), device, idle).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
