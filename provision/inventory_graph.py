"""``ansible-inventory``'s views of an inventory: ``--graph``, ``--list`` (JSON) and ``--list --yaml``.

``--list`` is ``ansible_list``; ``--graph [GROUP]`` draws the tree as ansible-inventory does::

    @all:
      |--@ungrouped:
      |  |--lonely.example.com
      |--@prod:
      |  |--@web:
      |  |  |--app01.example.com

Groups and hosts in file order; each host under the groups it is directly in (never under
``all``). ``--limit`` keeps only the hosts it selects; ansible-core 2.19 ignores ``--limit`` for
``--graph``, we honour it there too. ``--list --yaml`` prints the YAML inventory shape, each
host's variables at its first appearance, as ``ansible-inventory --list --yaml`` does.

``--graph --roles`` (ours) adds each host's server roles (``role_groups``) after its name; plain
``--graph`` never does, so it stays identical to ansible-inventory's for every inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InventoryError
from .hostpatterns import ALL
from .inventory import Inventory


def graph_lines(inventory: Inventory, group: str = ALL, *, hosts: set[str] | None = None,
                roles: Mapping[str, list[str]] | None = None) -> list[str]:
    """The lines of ``ansible-inventory --graph GROUP``; ``hosts`` (from --limit) keeps only those.

    ``roles`` (``--graph --roles``) appends ``  [db, db_replica]`` to each host line that has roles:
    without it the output is ansible-inventory's, byte for byte.
    """
    if group not in inventory.groups:
        raise InventoryError(f"no group named {group!r} in {inventory.file}",
                             hint=f"groups: {', '.join(sorted(inventory.groups))}")
    lines: list[str] = []

    def name_at(name: str, depth: int) -> str:
        return "  |" * depth + "--" + name if depth else name

    # A stack, not recursion: groups may nest a thousand deep. An entry is a group to open, or a
    # finished line (a host) to print once the group's children are done.
    todo: list[tuple[str, int] | str] = [(group, 0)]
    while todo:
        entry = todo.pop()
        if isinstance(entry, str):
            lines.append(entry)
            continue
        name, depth = entry
        lines.append(name_at(f"@{name}:", depth))
        node = inventory.groups[name]
        if name != ALL:
            todo.extend(name_at(host, depth + 1) + _roles_note(roles, host)
                        for host in reversed(node.hosts) if hosts is None or host in hosts)
        todo.extend((child, depth + 1) for child in reversed(node.children))
    return lines


def _roles_note(roles: Mapping[str, list[str]] | None, host: str) -> str:
    return f"  [{', '.join(roles[host])}]" if roles and roles.get(host) else ""
def ansible_list(inventory: Inventory, *, show_secrets: bool = False) -> dict[str, Any]:
    """The JSON ``ansible-inventory -i FILE --list`` prints for this inventory."""
    result: dict[str, Any] = {}
    seen: set[str] = set()

    todo = [inventory.groups[ALL]]  # depth first, in file order, without recursion (deep group chains)
    while todo:
        group = todo.pop()
        entry: dict[str, Any] = {}
        if group.name != ALL and group.hosts:
            entry["hosts"] = list(group.hosts)
        if group.children:
            entry["children"] = list(group.children)
        if entry:
            result[group.name] = entry
        fresh = [child for child in group.children if child not in seen]
        seen.update(fresh)
        todo.extend(inventory.groups[child] for child in reversed(fresh))
    hostvars = {name: inventory.host_vars(name, show_secrets=show_secrets) for name in inventory.hosts}
    result["_meta"] = {"hostvars": {name: values for name, values in hostvars.items() if values}}
    return result


def limited_list(listing: dict[str, Any], hosts: set[str]) -> dict[str, Any]:
    """An ``--list`` result cut to ``hosts``, as ansible-inventory cuts it for ``--limit``."""
    result: dict[str, Any] = {}
    for name, entry in listing.items():
        if name == "_meta":
            continue
        kept = dict(entry)
        if "hosts" in kept:
            kept["hosts"] = [h for h in kept["hosts"] if h in hosts]
            if not kept["hosts"]:
                del kept["hosts"]
        if kept:
            result[name] = kept
    result["_meta"] = {"hostvars": {h: v for h, v in listing["_meta"]["hostvars"].items() if h in hosts}}
    return result


def yaml_inventory(inventory: Inventory, *, hosts: set[str] | None = None,
                   show_secrets: bool = False) -> dict[str, Any]:
    """What ``ansible-inventory --list --yaml`` builds before dumping it (keys sorted by the dumper)."""
    seen_hosts: set[str] = set()
    seen_groups: set[str] = set()

    def group_entry(name: str) -> dict[str, Any]:
        node = inventory.groups[name]
        body: dict[str, Any] = {"children": {}, "hosts": {}}
        for child in node.children:
            if child in seen_groups:
                body["children"][child] = {}
            else:
                body["children"].update(group_entry(child))
                seen_groups.add(child)
        if name != ALL:
            for host in node.hosts:
                if hosts is not None and host not in hosts:
                    continue
                values: dict[str, Any] = {}
                if host not in seen_hosts:
                    seen_hosts.add(host)
                    values = inventory.host_vars(host, show_secrets=show_secrets)
                body["hosts"][host] = values
        body = {key: value for key, value in body.items() if value}
        return {name: body} if body else {}

    return group_entry(ALL) or {ALL: {}}


def dump_yaml(data: Any) -> str:
    """YAML as ansible-inventory writes it: block style, sorted keys."""
    import yaml

    return str(yaml.safe_dump(data, default_flow_style=False, sort_keys=True, allow_unicode=True))
