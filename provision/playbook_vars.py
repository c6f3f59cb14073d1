"""``group_vars/`` and ``host_vars/`` beside the playbook, read as Ansible reads them.

Ansible loads these directories both beside the inventory and beside the playbook; at each
level the playbook's come after the inventory's, so they win there (``all_plugins_play`` after
``all_plugins_inventory``, ``groups_plugins_play`` after ``groups_plugins_inventory``,
``host_vars`` of the play after those of the inventory). They are pushed into each host's
variable layers at those same levels, so ``--explain``-style sources stay right.
"""

from __future__ import annotations

from pathlib import Path

from .hostpatterns import ALL
from .inventory import Inventory
from .variables import GROUP_VARS, GROUP_VARS_ALL, HOST_VARS, load_vars_dir


def add_playbook_vars(inventory: Inventory, playbook_dir: Path) -> list[str]:
    """Push ``playbook_dir``'s group_vars/host_vars into every host; returns warnings for unused files."""
    if inventory.base_dir is not None and inventory.base_dir.resolve() == playbook_dir.resolve():
        return []  # the same directories the inventory already read
    if not (playbook_dir / "group_vars").is_dir() and not (playbook_dir / "host_vars").is_dir():
        return []
    group_files, unused_groups = load_vars_dir(playbook_dir / "group_vars", inventory.groups)
    host_files, unused_hosts = load_vars_dir(playbook_dir / "host_vars", inventory.hosts)
    for host in inventory.hosts.values():
        ordered = sorted((inventory.groups[g] for g in host.groups if g != ALL),
                         key=lambda g: (g.depth, g.priority, g.name))
        for path, values in group_files.get(ALL, []):
            host.layers.push(GROUP_VARS_ALL, path, values)
        for group in ordered:
            for path, values in group_files.get(group.name, []):
                host.layers.push(GROUP_VARS, path, values)
        for path, values in host_files.get(host.name, []):
            host.layers.push(HOST_VARS, path, values)
    return [f"{path}: no group of that name in the inventory" for path in unused_groups] + [
        f"{path}: no host of that name in the inventory" for path in unused_hosts]
