"""The inventory: hosts, groups and their variables, read from Ansible's YAML (or INI) inventory.

    all:
      vars: {...}
      hosts: {lonely.example.com: {...}}
      children:
        prod:
          children:
            web: {hosts: {"app[01:10].example.com": {}}}

Groups nest to any depth, a host may sit in several groups, ``group_vars/`` and ``host_vars/``
beside the inventory file are read as Ansible reads them, and the implicit groups ``all`` and
``ungrouped`` exist as in Ansible. Every host gets its variables as ``VariableLayers`` (levels
``inventory: all`` to ``host_vars/*``, plus ``magic``), see ``provision.variables``. A
comma-separated ``-i host1,host2:2222,`` is an inventory too. Where we are stricter than Ansible
(unknown keys in a group, a pattern that matches nothing), it is an error with a fix, not a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .connspec import ConnectionSpec, connection_spec
from .errors import InventoryError, Source
from .hostpatterns import ALL, UNGROUPED, expand_host_range, parse_host_address, select_hosts
from .inventory_checks import name_clashes, refuse_typed_names, unknown_key_hint, yaml_kind
from .inventory_vars import fill_host_layers, listed_vars
from .variables import MAGIC, Explained, VariableLayers, VarsMap, load_vars_dir, magic_variables
from .yamlfile import load_yaml, paused_gc

__all__ = ["ConnectionSpec", "Group", "Host", "Inventory", "connection_spec", "host_magic"]

# Characters that would make a name unusable in a host pattern.
_BAD_NAME_CHARS = frozenset(" \t\n,:")
_PRIORITY_VAR = "ansible_group_priority"


@dataclass(eq=False)
class Group:
    """A group: its own hosts and children, in file order, and its inventory-file vars."""

    name: str
    source: Source | None = None
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    var_maps: list[Mapping[str, Any]] = field(default_factory=list)
    depth: int = 0
    priority: int = 1

    @property
    def vars(self) -> dict[str, Any]:
        """The group's inventory-file vars (later definitions win)."""
        merged: dict[str, Any] = {}
        for values in self.var_maps:
            merged.update(values)
        return merged


@dataclass(eq=False)
class Host:
    """A host, every group it belongs to (ancestors and ``all`` included), and its variables."""

    name: str
    source: Source | None = None
    groups: tuple[str, ...] = ()
    layers: VariableLayers = field(default_factory=VariableLayers)
    var_maps: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def vars(self) -> dict[str, Any]:
        """The merged variables (levels up to ``host_vars/*``, and magic)."""
        return self.layers.merged()

    def connection(self, rendered: Mapping[str, Any] | None = None) -> ConnectionSpec:
        """How to reach this host: from ``rendered`` variables, or its raw ones when none hold templates."""
        return connection_spec(self.name, self.layers.merged() if rendered is None else rendered)


class Inventory:
    """Hosts and groups in file order; build with ``load``, ``from_data`` or ``from_host_list``."""

    def __init__(self, file: str, base_dir: Path | None) -> None:
        self.file = file
        self.base_dir = base_dir
        self.groups: dict[str, Group] = {ALL: Group(ALL), UNGROUPED: Group(UNGROUPED)}
        self.hosts: dict[str, Host] = {}
        self.members: dict[str, list[str]] = {}  # group -> every host in it or its descendants
        self.magic_groups: dict[str, list[str]] = {}  # the `groups` magic variable (copies of members)
        self.warnings: list[str] = []
        self._direct: dict[str, set[str]] = {}  # group -> the hosts listed in it (lookups for group.hosts)
        self._resolved_file: str | None = None
        self._link(ALL, UNGROUPED, None)

    # ----- building -----

    @classmethod
    def load(cls, source: str | Path) -> Inventory:
        """Read a YAML inventory file, or a ``host1,host2,`` list when ``source`` is not a path."""
        path = Path(source)
        if not path.exists() and "," in str(source):
            return cls.from_host_list(str(source))
        if path.is_dir():
            raise InventoryError(
                f"{path} is a directory", hint="point -i at the inventory YAML file inside it"
            )
        from .inventory_ini import load_ini, looks_like_ini

        data = load_ini(path) if looks_like_ini(path) else load_yaml(path, error=InventoryError)
        return cls.from_data(data, path.parent, file=str(path))

    @classmethod
    def from_data(cls, data: Any, base_dir: Path | str | None = None, *, file: str = "<inventory>") -> Inventory:
        """Build from parsed YAML; ``group_vars/`` and ``host_vars/`` are read from ``base_dir``."""
        inventory = cls(file, Path(base_dir) if base_dir is not None else None)
        if data is None:
            raise InventoryError(
                "the inventory is empty", source=Source(file), hint="start with 'all:' and a 'hosts:' mapping"
            )
        if not isinstance(data, Mapping):
            raise InventoryError(
                f"an inventory must be a mapping of group names, not a {yaml_kind(data)}",
                source=getattr(data, "source", None) or Source(file),
                hint="write 'all:' with 'hosts:' and 'children:' (an INI inventory is read as INI when "
                "its name ends in .ini or its first line is a host or a [section])",
            )
        refuse_typed_names(data, file)
        with paused_gc():  # only allocations here: see paused_gc
            for name, body in data.items():
                inventory._parse_group(name, body, None, _key_source(data, name, file))
            inventory._finish()
        inventory.warnings.extend(name_clashes(inventory.groups, inventory.hosts))
        return inventory

    @classmethod
    def from_host_list(cls, text: str) -> Inventory:
        """``-i host1,host2:2222,`` as an inventory of ungrouped hosts."""
        inventory = cls("<host list>", None)
        for item in text.split(","):
            if item.strip():
                inventory._add_hosts(item.strip(), None, inventory.groups[ALL], Source("-i"))
        inventory._finish()
        return inventory

    def _parse_group(self, name: Any, body: Any, parent: Group | None, where: Source) -> Group:
        self._check_name(name, "group", where)
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name, where)
        if parent is not None:
            self._link(parent.name, name, where)
        if body is None:
            return group
        if not isinstance(body, Mapping):
            raise InventoryError(
                f"group {name!r} must be a mapping with 'hosts', 'children' or 'vars', "
                f"not a {yaml_kind(body)}",
                source=where,
                hint=f"write '{name}:' then an indented 'hosts:' mapping of host names",
            )
        for key, value in body.items():
            at = _key_source(body, key, where.file)
            if key == "vars":
                self._parse_group_vars(group, value, at)
            elif key == "children":
                for child, child_body in self._section(group, key, value, at).items():
                    self._parse_group(child, child_body, group, _key_source(value, child, at.file))
            elif key == "hosts":
                for pattern, host_vars in self._section(group, key, value, at).items():
                    self._add_hosts(pattern, host_vars, group, _key_source(value, pattern, at.file))
            else:
                raise InventoryError(
                    f"unknown key {key!r} in group {name!r}: a group has only 'hosts', 'children' and 'vars'",
                    source=at,
                    hint=unknown_key_hint(str(key)),
                )
        return group

    def _section(self, group: Group, key: str, value: Any, at: Source) -> Mapping[Any, Any]:
        if value is None:
            return {}
        if isinstance(value, str):  # Ansible accepts 'hosts: web1'
            return {value: None}
        if isinstance(value, Mapping):
            return value
        example = "hosts:\n    app1.example.com:" if key == "hosts" else "children:\n    web:"
        raise InventoryError(
            f"'{key}' of group {group.name!r} must be a mapping, not a {yaml_kind(value)}",
            source=at,
            hint=f"write each name as a key ending in ':' (not a '- ' list item), e.g.\n  {example}",
        )

    def _parse_group_vars(self, group: Group, value: Any, at: Source) -> None:
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise InventoryError(
                f"'vars' of group {group.name!r} must be a mapping, not a {yaml_kind(value)}",
                source=at,
                hint="write one 'name: value' per line under 'vars:'",
            )
        if _PRIORITY_VAR in value:  # sets the merge order, as in Ansible; not a variable
            priority = value[_PRIORITY_VAR]
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise InventoryError(
                    f"{_PRIORITY_VAR} of group {group.name!r} must be an integer",
                    source=_key_source(value, _PRIORITY_VAR, at.file),
                )
            group.priority = priority
            value = _without(value, _PRIORITY_VAR)
        group.var_maps.append(value)

    def _add_hosts(self, pattern: Any, host_vars: Any, group: Group, where: Source) -> None:
        if not isinstance(pattern, str):
            raise InventoryError(
                f"host name {pattern!r} in group {group.name!r} is not a string",
                source=where,
                hint=f"quote it: \"{pattern}\":",
            )
        address, port = parse_host_address(pattern)
        try:
            names = expand_host_range(address)
        except ValueError as exc:
            raise InventoryError(
                f"bad host range in {pattern!r}: {exc}",
                source=where,
                hint="write ranges as app[01:10].example.com, db-[a:f] or web[1:9:2]",
            ) from None
        if host_vars is not None and not isinstance(host_vars, Mapping):
            raise InventoryError(
                f"host {pattern!r} in group {group.name!r} must map to its variables, "
                f"not a {yaml_kind(host_vars)}",
                source=where,
                hint=f"write '{pattern}:' alone, or with an indented 'name: value' per variable",
            )
        for name in names:
            self._check_name(name, "host", where)
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = Host(name, where)
            listed = self._direct.setdefault(group.name, set())
            if name not in listed:
                listed.add(name)
                group.hosts.append(name)
            if port is not None:
                host.var_maps.append({"ansible_port": port})
            if host_vars:
                host.var_maps.append(host_vars)

    def _check_name(self, name: Any, kind: str, where: Source) -> None:
        # Hosts may hold ':' (IPv6 addresses); groups may not, it separates pattern parts.
        bad = _BAD_NAME_CHARS if kind == "group" else _BAD_NAME_CHARS - {":"}
        if not isinstance(name, str) or not name or bad & set(name) or name[0] in "&!~@":
            colon = ", ':'" if kind == "group" else ""
            raise InventoryError(
                f"{kind} name {name!r} is not usable",
                source=where,
                hint=f"a {kind} name is a non-empty string without spaces, ','{colon}, not starting "
                "with '&', '!', '~' or '@'",
            )

    def _link(self, parent: str, child: str, where: Source | None) -> None:
        if child in (ALL, parent) or child in self._ancestors(parent):
            raise InventoryError(
                f"group {child!r} cannot be a child of {parent!r}: it would be its own ancestor",
                source=where,
                hint=f"remove {child!r} from the children of {parent!r}",
            )
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
            self.groups[child].parents.append(parent)

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.groups[current].parents)
        return seen

    def _finish(self) -> None:
        """Attach orphans to ``all``, fill ``ungrouped``, compute depths, memberships and variables."""
        for name in list(self.groups):
            if name != ALL and not self.groups[name].parents:
                self._link(ALL, name, None)
        direct: dict[str, list[str]] = {name: [] for name in self.hosts}
        for group in self.groups.values():
            for host_name in group.hosts:
                direct[host_name].append(group.name)
        ungrouped = self.groups[UNGROUPED]
        grouped_elsewhere: set[str] = set()
        for host_name, names in direct.items():
            real = [g for g in names if g not in (ALL, UNGROUPED)]
            if real and UNGROUPED in names:
                grouped_elsewhere.add(host_name)
                names.remove(UNGROUPED)
            elif not real and UNGROUPED not in names:
                ungrouped.hosts.append(host_name)
                names.append(UNGROUPED)
        if grouped_elsewhere:  # one pass, not a list.remove per host
            ungrouped.hosts[:] = [h for h in ungrouped.hosts if h not in grouped_elsewhere]
        depths: dict[str, int] = {}
        for group in self.groups.values():
            group.depth = self._depth(group.name, depths)
        order = {name: index for index, name in enumerate(self.groups)}
        self.members = {name: [] for name in self.groups}
        ancestors: dict[str, set[str]] = {}
        closures: dict[tuple[str, ...], tuple[str, ...]] = {}  # a host's direct groups -> all its groups
        for host in self.hosts.values():
            listed_in = tuple(direct[host.name])
            groups = closures.get(listed_in)
            if groups is None:
                closure = {ALL, *listed_in}
                for name in listed_in:
                    if name not in ancestors:
                        ancestors[name] = self._ancestors(name)
                    closure.update(ancestors[name])
                groups = closures[listed_in] = tuple(sorted(closure, key=order.__getitem__))
            host.groups = groups
            for group_name in groups:
                self.members[group_name].append(host.name)
        group_files = self._vars_dir_files("group_vars", self.groups)
        host_files = self._vars_dir_files("host_vars", self.hosts)
        self.magic_groups = {name: list(hosts) for name, hosts in self.members.items()}
        fill_host_layers(self.hosts.values(), self.groups, self.file, group_files=group_files, host_files=host_files,
                         magic=lambda host: host_magic(self, host))

    def _depth(self, name: str, memo: dict[str, int]) -> int:
        # Iterative: a chain of a thousand nested groups must not hit Python's recursion limit.
        todo = [name]
        while todo:
            current = todo[-1]
            if current in memo:
                todo.pop()
                continue
            parents = self.groups[current].parents
            missing = [p for p in parents if p not in memo]
            if missing:
                todo.extend(missing)
                continue
            memo[current] = max((memo[p] + 1 for p in parents), default=0)
            todo.pop()
        return memo[name]

    def _vars_dir_files(self, kind: str, known: Mapping[str, Any]) -> dict[str, list[tuple[str, VarsMap]]]:
        if self.base_dir is None:
            return {}
        loaded, unused = load_vars_dir(self.base_dir / kind, known)
        self.warnings.extend(f"{path}: no {kind.split('_')[0]} of that name in the inventory" for path in unused)
        return loaded

    # ----- queries -----

    def resolved_file(self) -> str | None:
        """The inventory file's absolute path (magic ``inventory_file``); None for a host list or data."""
        if self.base_dir is None:
            return None
        if self._resolved_file is None:  # once, not per host
            self._resolved_file = str(Path(self.file).resolve())
        return self._resolved_file

    def host(self, name: str) -> Host:
        """One host by name; an unknown name is an error with the closest names."""
        try:
            return self.hosts[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.hosts), n=5, cutoff=0.5)
            raise InventoryError(
                f"no host named {name!r} in {self.file}",
                hint=f"did you mean {', '.join(close)}?" if close else "list hosts with 'provision inventory'",
            ) from None

    def select(self, pattern: str | Sequence[str] | None, *, source: Source | None = None) -> list[Host]:
        """The hosts a pattern (``--limit``, a play's ``hosts:``) selects, in inventory order."""
        names = select_hosts(pattern, list(self.hosts), self.members, source=source)
        return [self.hosts[name] for name in names]

    def host_vars(self, name: str, *, show_secrets: bool = False) -> dict[str, Any]:
        """A host's variables as ``ansible-inventory --host`` shows them (no magic vars)."""
        return listed_vars(self.host(name).layers, show_secrets=show_secrets)

    def explain(self, name: str) -> list[Explained]:
        """Every variable of a host with its winning level and source, magic ``groups`` left out."""
        return [e for e in self.host(name).layers.explain() if not (e.level == MAGIC and e.name == "groups")]

    def to_ansible_list(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """The JSON ``ansible-inventory -i FILE --list`` prints for this inventory."""
        from .inventory_graph import ansible_list

        return ansible_list(self, show_secrets=show_secrets)


def host_magic(inventory: Inventory, host: Host, **run: Any) -> dict[str, Any]:
    """``host``'s magic variables (``variables.magic_variables``), ``run`` adding check/diff/hostvars."""
    return magic_variables(host.name, host.groups, inventory.magic_groups,
                           inventory_file=inventory.resolved_file(), **run)


def _key_source(mapping: Any, key: Any, file: str) -> Source:
    """Where ``key`` is written, when the mapping was loaded from YAML."""
    found = mapping.source_of(key) if hasattr(mapping, "source_of") else None
    return found if isinstance(found, Source) else Source(file)


def _without(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A copy of ``values`` without ``key``, keeping YAML positions."""
    copy = type(values)() if isinstance(values, dict) else {}
    copy.update((k, v) for k, v in values.items() if k != key)
    for attribute in ("source", "key_sources"):
        if hasattr(values, attribute):
            setattr(copy, attribute, getattr(values, attribute))
    return copy
