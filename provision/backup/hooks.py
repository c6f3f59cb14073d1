"""Hooks of a backup run: shell commands on the control host with the run's summary as JSON on stdin.

Variables: ``backup_hooks: {pre_backup: CMD, post_backup: CMD, on_backup_failure: CMD}``. A hook
runs with ``sh -c`` in the inventory's directory, with ``PROVISION_HOOK`` (its name) and
``PROVISION_BACKUP_DIR`` in its environment, bounded by ``backup_hook_timeout`` (default 600 s).
A failing ``pre_backup`` stops the run before any host is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InventoryError

HOOKS = ("pre_backup", "post_backup", "on_backup_failure")


@dataclass(frozen=True)
class HookOutcome:
    name: str
    returncode: int
    output: str


def hook_commands(variables: Mapping[str, Any]) -> dict[str, str]:
    """The configured hooks, checked: unknown names and non-strings are bad input."""
    raw = variables.get("backup_hooks") or {}
    if not isinstance(raw, Mapping):
        raise InventoryError("backup_hooks must be a mapping of hook name to shell command",
                             hint="backup_hooks: {post_backup: 'rclone sync backups remote:'} "
                                  f"(names: {', '.join(HOOKS)})")
    commands = {}
    for name, command in raw.items():
        if name not in HOOKS:
            raise InventoryError(f"backup_hooks: unknown hook {name!r}", hint=f"the hooks are {', '.join(HOOKS)}")
        if command:
            commands[str(name)] = str(command)
    return commands


def run_hook(name: str, command: str, summary: Mapping[str, Any], *, cwd: Path, backup_dir: Path,
             timeout: float = 600) -> HookOutcome:
    """Run one hook; its exit code and output (stdout and stderr together)."""
    env = {**os.environ, "PROVISION_HOOK": name, "PROVISION_BACKUP_DIR": str(backup_dir)}
    # A session of its own, so a timeout stops the hook's children too (a sync it started, say).
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(json.dumps(summary, default=str).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return HookOutcome(name, -1, f"timed out after {timeout:g}s")
    return HookOutcome(name, proc.returncode, out.decode(errors="replace").strip())
