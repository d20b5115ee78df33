"""Real embedding servers for the tests, started on loopback: `codesearch serve` and Infinity.

`codesearch serve --port 0` picks a free port and prints its URL when it listens; the helper
waits for that line. Infinity (an independent OpenAI-compatible server from PyPI) is found on
PATH or at $CODESEARCH_TEST_INFINITY (its `infinity_emb` executable, e.g. in a virtual
environment of its own, since it pins transformers<5 and numpy<2); tests skip without it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"serving .* at (http://\S+/v1)")


class Server:
    """A server process and its base URL (…/v1)."""

    def __init__(self, proc: subprocess.Popen, url: str, log: list[str]):
        self.proc = proc
        self.url = url
        self.log = log

    def health(self) -> dict:
        return httpx.get(self.url.rsplit("/v1", 1)[0] + "/health", timeout=10).json()

    def stop(self, sig=signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _pump(stream, lines: list[str], found: threading.Event, url: list[str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        m = URL_LINE.search(line)
        if m and not url:
            url.append(m.group(1))
            found.set()
    found.set()


def _env(extra: dict | None) -> dict:
    """The tests' environment for a codesearch process: this checkout first on the path."""
    path = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def start_serve(*args: str, env: dict | None = None, timeout: float = 180) -> Server:
    """`codesearch serve ARGS --port 0`, once it listens."""
    full_env = _env(env)
    proc = subprocess.Popen([sys.executable, "-m", "codesearch", "serve", "--port", "0", *args], cwd=ROOT,
                            env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    url: list[str] = []
    found = threading.Event()
    threading.Thread(target=_pump, args=(proc.stderr, lines, found, url), daemon=True).start()
    found.wait(timeout)
    if not url:
        proc.kill()
        raise RuntimeError("codesearch serve did not start:\n" + "\n".join(lines[-20:]))
    return Server(proc, url[0], lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def infinity_executable() -> str | None:
    path = os.environ.get("CODESEARCH_TEST_INFINITY") or shutil.which("infinity_emb")
    return path if path and os.access(path, os.X_OK) else None


def start_infinity(model_folder: Path, name: str = "e5-small", timeout: float = 240) -> Server:
    """Infinity serving a local model folder offline, OpenAI-compatible under /v1."""
    exe = infinity_executable()
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    env.pop("PYTHONPATH", None)  # its own environment, not ours
    workdir = tempfile.mkdtemp(prefix="infinity-")  # it writes a cache folder where it runs
    proc = subprocess.Popen([exe, "v2", "--model-id", str(model_folder), "--served-model-name", name,
                             "--url-prefix", "/v1", "--engine", "torch", "--device", "cpu", "--no-model-warmup",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=_pump, args=(proc.stderr, lines, threading.Event(), []), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return Server(proc, f"http://127.0.0.1:{port}/v1", lines)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("infinity did not start:\n" + "\n".join(lines[-20:]))


def run_cli(*args: str, env: dict | None = None, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`codesearch ARGS` in a subprocess (a real process: its own imports, its own exit code)."""
    full_env = _env(env)
    return subprocess.run([sys.executable, "-m", "codesearch", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
