"""`codesearch hook ...`: git hooks that keep the index fresh (see codesearch/hooks/).

Kept light on purpose: `hook run` is what git calls on every commit, so this module and
codesearch.hooks import only click, filelock and the standard library; the model is loaded
by the background worker (or a --sync run), and only when something must be embedded.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import hooks as _hooks
from .errors import say_error
from .options import device_option, index_dir_option, repo_option


_repo_option = repo_option("The repository (default: the one around the current folder).")
_index_dir_option = index_dir_option("Indexes live under this folder, as for `codesearch index --index-dir` "
                                     "(env CODESEARCH_INDEX_DIR).")
_device_option = device_option("Where the model runs when the hook re-embeds.")


@click.group()
def hook():
    """Git hooks that keep the index fresh after commits, checkouts and merges.

    \b
      codesearch hook install     # pre-commit, post-checkout, post-merge
      codesearch hook status
      codesearch hook uninstall

    The hook re-indexes only the paths a commit, checkout or merge changes, in a
    background process by default, so `git commit` is not held up.
    """


@hook.command()
@_repo_option
@click.option("--sync", is_flag=True,
              help="Update the index inside the hook (the commit waits for it) instead of in the background.")
@_index_dir_option
@device_option("Where the hook's model runs (default: auto).")
@click.option("--hook", "names", multiple=True, type=click.Choice(_hooks.HOOK_NAMES),
              help="Only this hook (repeatable; default: all three).")
def install(repo, sync, index_dir, device, names):
    """Add codesearch to the repository's git hooks (keeps existing hooks; safe to repeat)."""
    root = _hooks.work_tree(repo)
    options = []
    if sync:
        options.append("--sync")
    if index_dir:
        options += ["--index-dir", str(Path(index_dir).expanduser().resolve())]
    if device and device != "auto":
        options += ["--device", device]
    for line in _hooks.install(root, options, names or _hooks.HOOK_NAMES):
        click.echo(line)
    from ..app import open_workspace

    if not open_workspace(root, warn=say_error, index_dir=index_dir).has_index:
        click.echo(f"note: {root} has no index yet; run `codesearch index {root}` so the hooks have one to update")


@hook.command()
@_repo_option
@click.option("--hook", "names", multiple=True, type=click.Choice(_hooks.HOOK_NAMES),
              help="Only this hook (repeatable; default: all three).")
def uninstall(repo, names):
    """Remove the codesearch block from the hooks, restoring them as they were."""
    root = _hooks.work_tree(repo)
    for line in _hooks.uninstall(root, names or _hooks.HOOK_NAMES):
        click.echo(line)


@hook.command()
@_repo_option
@_index_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(repo, index_dir, as_json):
    """Which hooks are installed, and whether updates are queued, running or failing."""
    from ..app import open_workspace

    info = _hooks.status_report(open_workspace(_hooks.work_tree(repo), warn=say_error, index_dir=index_dir))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    where = info["hooks_dir"] + (f" (core.hooksPath = {info['core_hooks_path']})" if info["core_hooks_path"] else "")
    click.echo(f"hooks folder   {where}")
    for name, h in info["hooks"].items():
        if h["installed"]:
            state = f"installed, {h['mode']}" + (", alongside your own hook" if h["own_hook_kept"] else "")
        else:
            state = "not installed"
        if h["problem"]:
            state += f" ({h['problem']})"
        click.echo(f"{name:<14} {state}")
    if not info["index"]:
        click.echo(f"index          none yet at {info['index_dir']}; run `codesearch index`")
        return
    queue = f"{info['pending_paths']} path(s) queued" if info["pending_paths"] else "nothing queued"
    worker = f"; a background worker is running (pid {info['worker_pid']})" if info["worker_running"] else ""
    click.echo(f"index          {info['index_dir']}: {queue}{worker}")
    if info["last_error"]:
        click.echo(f"last failure   {info['last_error']} (log: {info['log']})")


@hook.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", type=click.Choice(_hooks.HOOK_NAMES))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--sync/--background", default=None,
              help="Update inline, or in a detached process (default: background, unless the hook_sync "
                   "setting, CODESEARCH_HOOK_SYNC=1 or `git config codesearch.hookSync true`).")
@_repo_option
@_index_dir_option
@_device_option
def run(name, args, sync, repo, index_dir, device):
    """Run the NAME hook's update (what git calls; ARGS are git's hook arguments).

    Always exits 0: a problem is one warning line, and the next run repairs it.
    """
    _hooks.run_hook(name, tuple(args), repo, index_dir, sync, device)


@hook.command()
@_repo_option
@_index_dir_option
def stop(repo, index_dir):
    """End the background worker now (it otherwise exits when idle a while)."""
    from ..app import open_workspace

    ws = open_workspace(_hooks.work_tree(repo), warn=say_error, index_dir=index_dir)
    pid = _hooks.stop_worker(ws.index_dir)
    click.echo(f"stopped the worker (pid {pid})" if pid else "no worker is running")


@hook.command(hidden=True)
@click.option("--repo", type=click.Path(path_type=Path), required=True)
@click.option("--index-path", type=click.Path(path_type=Path), required=True)
@_device_option
@click.option("--nice", is_flag=True, help="Run at a lower CPU priority.")
@click.option("--linger", type=float, default=None, help="Seconds to stay, warm, after the queue is empty.")
def drain(repo, index_path, device, nice, linger):
    """The background worker: apply the queued paths until the queue is empty, then linger."""
    from ..app import open_workspace

    ws = open_workspace(repo, must_exist=False, device=device)
    ws.index_dir = Path(index_path)
    raise SystemExit(_hooks.run_worker(ws, nice=nice, linger=linger))
