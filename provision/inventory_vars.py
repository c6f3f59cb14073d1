"""Each host's inventory variables: levels ``inventory: all`` to ``host_vars/*``, plus ``magic``.

The order is ``provision.variables``'s (levels 2-7). Levels 2-5 (``inventory: all``, ``inventory:
groups``, ``group_vars/all``, ``group_vars/*``) depend only on the groups a host is in, so they
are pushed once per distinct set of groups and each host starts from a copy of that set's layers
(the value mappings are shared, never copied): 50k hosts in 20 groups push 20 group chains, not
50k. Only the host's own levels and its magic variables are pushed per host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .hostpatterns import ALL
from .variables import (
    GROUP_VARS,
    GROUP_VARS_ALL,
    HOST_VARS,
    INVENTORY_ALL,
    INVENTORY_GROUPS,
    INVENTORY_HOST,
    MAGIC,
    VariableLayers,
    VarsMap,
    plain_value,
)

VarsFiles = Mapping[str, Sequence[tuple[str, VarsMap]]]


class GroupVars(Protocol):
    """What the merge reads of a group (``inventory.Group``)."""

    @property
    def name(self) -> str: ...
    @property
    def var_maps(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def depth(self) -> int: ...
    @property
    def priority(self) -> int: ...


class HostVars(Protocol):
    """What the merge reads of a host, and where it puts the layers (``inventory.Host``)."""

    layers: VariableLayers

    @property
    def name(self) -> str: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def var_maps(self) -> Sequence[Mapping[str, Any]]: ...


G = TypeVar("G", bound=GroupVars)
H = TypeVar("H", bound=HostVars)


def fill_host_layers(hosts: Iterable[H], groups: Mapping[str, GroupVars], file: str, *, group_files: VarsFiles,
                     host_files: VarsFiles, magic: Callable[[H], Mapping[str, Any]]) -> None:
    """Give every host its layers: from the inventory ``file``, the vars dirs, and ``magic(host)``."""
    chains: dict[tuple[str, ...], VariableLayers] = {}
    for host in hosts:
        base = chains.get(host.groups)
        if base is None:
            base = chains[host.groups] = group_layers(groups, host.groups, file, group_files)
        layers = base.copy()
        for values in host.var_maps:
            layers.push(INVENTORY_HOST, file, values, scope=f"host {host.name}")
        for path, values in host_files.get(host.name, ()):
            layers.push(HOST_VARS, path, values)
        layers.push(MAGIC, file, magic(host))
        host.layers = layers


def ordered_groups(groups: Mapping[str, G], group_names: Iterable[str]) -> list[G]:
    """The groups of a host but ``all``, in merge order: (depth, priority, name), as Ansible sorts them."""
    return sorted((groups[g] for g in group_names if g != ALL), key=lambda g: (g.depth, g.priority, g.name))


def group_layers(groups: Mapping[str, GroupVars], group_names: Iterable[str], file: str,
                 group_files: VarsFiles) -> VariableLayers:
    """Levels 2-5 for a host in ``group_names``: the part every host of those groups shares."""
    layers = VariableLayers()
    for values in groups[ALL].var_maps:
        layers.push(INVENTORY_ALL, file, values, scope="group all")
    ordered = ordered_groups(groups, group_names)
    for group in ordered:
        for values in group.var_maps:
            layers.push(INVENTORY_GROUPS, file, values, scope=f"group {group.name}")
    for path, values in group_files.get(ALL, ()):
        layers.push(GROUP_VARS_ALL, path, values)
    for group in ordered:
        for path, values in group_files.get(group.name, ()):
            layers.push(GROUP_VARS, path, values)
    return layers


def listed_vars(layers: VariableLayers, *, show_secrets: bool = False) -> dict[str, Any]:
    """A host's variables as ``ansible-inventory --host`` shows them: no magic, names sorted.

    The merged values, not an explanation: ``--list`` asks this of every host.
    """
    merged = layers.merged(without=(MAGIC,))
    return plain_value({name: merged[name] for name in sorted(merged)}, show_secrets=show_secrets)  # type: ignore[no-any-return]
