"""Which inventory groups play the multi-server roles, for the jobs that run outside the engine (update, backup).

The names come from ``role_groups`` (the deploy defaults, overridden by the inventory), as the
deploy's own templates read them (provision/server_roles.py on the deploy side); a role whose
group is unset or empty has no hosts. Without role groups, every host is a one-host bench.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .inventory import Inventory

ROLES = ("db", "db_replica", "redis", "files", "app", "lb")


def role_groups(inventory: Inventory) -> dict[str, str]:
    """Each role's group name; roles set to null or "" are left out."""
    from .backup.targets import deploy_defaults

    names: dict[str, Any] = {role: role for role in ROLES}
    default = deploy_defaults().get("role_groups")
    if isinstance(default, Mapping):
        names.update(default)
    for host in inventory.hosts.values():
        value = host.vars.get("role_groups")
        if isinstance(value, Mapping):
            names.update(value)
            break
    return {role: str(names[role]) for role in ROLES if names.get(role)}


def role_members(inventory: Inventory) -> dict[str, list[str]]:
    """Each role's hosts in inventory order (every role present, maybe empty)."""
    groups = role_groups(inventory)
    return {role: list(inventory.members.get(groups[role], [])) if role in groups else [] for role in ROLES}
