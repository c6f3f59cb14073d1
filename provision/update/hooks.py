"""The update's hooks: ``pre_update``, ``post_backup``, ``post_update``, ``on_update_failure``.

Each is an inventory variable in ``update_hooks``: a shell command run on the host as root, or a
mapping ``{command, delegate_to: localhost, become_user}``. The run's summary (host, releases,
sites and their decisions, backups, and for a failure its step and error) arrives as JSON on the
command's stdin. A hook that fails (non-zero exit) stops an update before the switch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..connection import Connection
from ..errors import OptionsError

HOOKS = ("pre_update", "post_backup", "post_update", "on_update_failure")
HOOK_TIMEOUT = 900.0


@dataclass(frozen=True)
class Hook:
    name: str
    command: str
    local: bool = False
    become_user: str | None = "root"


def hooks_of(raw: Mapping[str, Any], host: str) -> dict[str, Hook]:
    """The hooks an inventory declares, checked: unknown names and bad shapes are bad input."""
    found: dict[str, Hook] = {}
    for name, spec in raw.items():
        if name not in HOOKS:
            raise OptionsError(f"host {host}: update_hooks has an unknown hook {name!r}",
                               hint=f"the hooks are {', '.join(HOOKS)}")
        if spec in (None, ""):
            continue
        if isinstance(spec, str):
            found[name] = Hook(name, spec)
        elif isinstance(spec, Mapping) and isinstance(spec.get("command"), str):
            delegate = str(spec.get("delegate_to") or "")
            if delegate not in ("", "localhost"):
                raise OptionsError(f"host {host}: update_hooks.{name}.delegate_to must be localhost or absent")
            found[name] = Hook(name, spec["command"], local=delegate == "localhost",
                               become_user=spec.get("become_user") or (None if delegate else "root"))
        else:
            raise OptionsError(f"host {host}: update_hooks.{name} must be a command or {{command, delegate_to}}")
    return found


def run_hook(hook: Hook, summary: Mapping[str, Any], *, remote: Connection, local: Connection) -> tuple[bool, str]:
    """Run one hook with the summary on stdin; (ok, output tail)."""
    connection = local if hook.local else remote
    become = None if hook.local else hook.become_user
    result = connection.run(hook.command, stdin=json.dumps(summary, default=str).encode(), become_user=become,
                            timeout=HOOK_TIMEOUT)
    return result.ok, (f"exit {result.rc}: " if not result.ok else "") + result.tail(5)
