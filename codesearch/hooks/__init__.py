"""Git hooks that keep a repository's index fresh without slowing commits down.

events.py   what a git event changed (paths from `git diff`)
install.py  our marked block in the user's hook files, in and out byte for byte
queue.py    the queue of changed paths and the drainer that applies it
worker.py   the background worker, sync mode, and `run_hook`, what git calls

Only the standard library (and filelock) is imported on the hook's own path: its cost is
Python start-up, click and one `git diff`; the model is loaded by the worker (or a --sync run).
"""

from .events import HOOK_NAMES, Change, changed_paths, hooks_dir, parse_name_status, work_tree
from .install import BEGIN, END, install, uninstall
from .queue import CLAIMED_FILE, QUEUE_FILE, Batch, drain, drainer_running, enqueue, hook_lock, pending, work_left
from .worker import LOG_FILE, last_error, run_hook, run_worker, spawn_worker, status_report, stop_worker

__all__ = ["BEGIN", "CLAIMED_FILE", "END", "HOOK_NAMES", "LOG_FILE", "QUEUE_FILE", "Batch", "Change",
           "changed_paths", "drain", "drainer_running", "enqueue", "hook_lock", "hooks_dir", "install",
           "last_error", "parse_name_status", "pending", "run_hook", "run_worker", "spawn_worker",
           "status_report", "stop_worker", "uninstall", "work_left", "work_tree"]
