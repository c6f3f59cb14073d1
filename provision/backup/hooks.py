"""Hooks of a backup run: shell commands on the control host with the run's summary as JSON on stdin.

Variables: ``backup_hooks: {pre_backup: CMD, post_backup: CMD, on_backup_failure: CMD}``. A hook
runs with ``sh -c`` in the inventory's directory, with ``PROVISION_HOOK`` (its name) and
``PROVISION_BACKUP_DIR`` in its environment, bounded by ``backup_hook_timeout`` (default 600 s).
A failing ``pre_backup`` stops the run before any host is touched.
"""

from __future__ import annotations

import json
import os
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
    try:
        proc = subprocess.run(["sh", "-c", command], input=json.dumps(summary, default=str).encode(), cwd=cwd,
                              env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return HookOutcome(name, -1, f"timed out after {timeout:g}s")
    output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    return HookOutcome(name, proc.returncode, output)
