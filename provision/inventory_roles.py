"""Each host's server roles (``role_groups``: db, db_replica, redis, files, app, lb), for the views.

``provision inventory --roles`` and ``--graph --roles``, and ``provision facts``, show them. The group
names come from ``role_groups`` as the inventory sets it, else from the deploy defaults (the
project's ``playbooks/vars/deploy_defaults.yml`` when there is one, else the built-in file) — the
same value the deploy reads. The derivation itself is ``provision.server_roles``'s, as in templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .inventory import Inventory
from .server_roles import roles_of, server_roles

DEFAULTS = Path("playbooks") / "vars" / "deploy_defaults.yml"


def default_role_groups(project_dir: Path | None = None) -> Mapping[str, Any]:
    """``role_groups`` of the deploy defaults (the project's file shadows the built-in one)."""
    import yaml

    from .runner import builtin_dir

    project = (project_dir or Path.cwd()) / DEFAULTS
    path = project if project.is_file() else builtin_dir("playbooks") / "vars" / "deploy_defaults.yml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    groups = data.get("role_groups") if isinstance(data, dict) else None
    return groups if isinstance(groups, Mapping) else {}


def role_groups_of(inventory: Inventory, project_dir: Path | None = None) -> Mapping[str, Any]:
    """The inventory's ``role_groups`` (a host's or group's variable), else the deploy default."""
    for host in inventory.hosts.values():
        value = host.vars.get("role_groups")
        if isinstance(value, Mapping):
            return value
    return default_role_groups(project_dir)


def inventory_roles(inventory: Inventory, project_dir: Path | None = None) -> dict[str, list[str]]:
    """Every host's roles, in inventory order (an empty list: a one-host bench, no role)."""
    roles = server_roles(inventory.magic_groups, role_groups_of(inventory, project_dir))
    return {name: roles_of(roles, name) for name in inventory.hosts}


def roles_lines(roles: Mapping[str, list[str]], hosts: set[str] | None = None) -> list[str]:
    """``host  role, role`` per host (``-`` for none), names aligned."""
    shown = [(name, values) for name, values in roles.items() if hosts is None or name in hosts]
    width = max((len(name) for name, _ in shown), default=0)
    return [f"{name.ljust(width)}  {', '.join(values) or '-'}" for name, values in shown]
