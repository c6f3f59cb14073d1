"""How a variable gets its value: every level in one structure, each kept apart, so the winning
source of every value can be shown (``provision inventory --host H --explain``,
``provision playbook FILE --explain-var NAME --limit H``).

Levels, lowest to highest (``LEVELS``); a higher level replaces a key whole (no deep merge, as
Ansible's default ``hash_behaviour=replace``), and within one level later pushes win. Who pushes:

    1. ``play defaults``      a play's ``defaults_files`` then ``defaults:`` (runner; like role defaults)
    2. ``inventory: all``     vars of group ``all`` in the inventory file (inventory)
    3. ``inventory: groups``  vars of the other groups in the inventory file, by (depth, priority, name)
    4. ``group_vars/all``     ``group_vars/all`` beside the inventory
    5. ``group_vars/*``       ``group_vars/<group>`` beside the inventory, same group order as 3
    6. ``inventory: host``    the host's vars in the inventory file
    7. ``host_vars/*``        ``host_vars/<host>`` beside the inventory
    8. ``play vars``          a play's ``vars:`` (runner)
    9. ``vars_files``         a play's ``vars_files``, in order (runner)
   10. ``facts``              the ``facts`` variable, gathered per play (runner)
   11. ``block/task vars``    ``vars:`` of the blocks around a task and of the task (``view``, per task)
   12. ``runtime``            ``register`` and ``set_fact`` (host run); they outlive the play
   13. ``extra vars``         ``-e key=value``, ``-e '{"k": 1}'``, ``-e @file.yml``: always win over 1-12
   14. ``magic``              ``inventory_hostname``, ``group_names``, ``groups``, ``hostvars``,
                              ``ansible_check_mode`` ... built by ``inventory.magic_variables`` only

Levels 2-7 are Ansible's actual order, not the one its precedence page suggests: ansible-core's
``VARIABLE_PRECEDENCE`` default is ``all_inventory, groups_inventory, all_plugins_inventory,
all_plugins_play, groups_plugins_inventory, groups_plugins_play`` (``lib/ansible/config/base.yml``),
so every inventory-file group var loses to ``group_vars/all`` (ansible/ansible#80825); the parity
test against ``ansible-inventory --list`` pins it. Magic vars are on top as in Ansible, which
merges them after extra vars (``vars/manager.py``): they describe the inventory and cannot be
overridden. The inventory builds levels 2-7 (and magic) per host; the runner copies them per run
and per play and pushes the rest; a task sees ``view(TASK_VARS, its block and task vars)``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .secrets import REDACTED, Secret, is_secret_name

# Loading vars files and -e lives in provision.varsfiles; these names stay importable from here.
from .varsfiles import (
    VARS_FILE_EXTENSIONS,
    VarsMap,
    find_vars_files,
    load_vars_dir,
    load_vars_file,
    parse_extra_vars,
)
from .yamlfile import YamlDict, YamlList

DEFAULTS = "play defaults"
INVENTORY_ALL = "inventory: all"
INVENTORY_GROUPS = "inventory: groups"
GROUP_VARS_ALL = "group_vars/all"
GROUP_VARS = "group_vars/*"
INVENTORY_HOST = "inventory: host"
HOST_VARS = "host_vars/*"
PLAY_VARS = "play vars"
VARS_FILES = "vars_files"
FACTS = "facts"
TASK_VARS = "block/task vars"
RUNTIME = "runtime"
EXTRA_VARS = "extra vars"
MAGIC = "magic"

LEVELS: tuple[str, ...] = (
    DEFAULTS,
    INVENTORY_ALL,
    INVENTORY_GROUPS,
    GROUP_VARS_ALL,
    GROUP_VARS,
    INVENTORY_HOST,
    HOST_VARS,
    PLAY_VARS,
    VARS_FILES,
    FACTS,
    TASK_VARS,
    RUNTIME,
    EXTRA_VARS,
    MAGIC,
)
_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# Row values longer than this are cut in the explain view.
SHORT_VALUE_WIDTH = 60


class Layer(NamedTuple):  # a tuple, not a frozen dataclass: pushed for every host of an inventory
    """One push: a mapping of values from one source at one level."""

    level: str
    source: str
    values: Mapping[str, Any]
    scope: str = ""


@dataclass(frozen=True)
class Explained:
    """The winning value of one variable, where it came from, and what it overrode (closest first)."""

    name: str
    value: Any
    level: str
    source: str
    overridden: list[tuple[str, str, Any]] = field(default_factory=list)


class VariableLayers:
    """Variables by precedence level; ``merged()`` is kept up to date incrementally."""

    __slots__ = ("_layers", "_merged", "_winner")

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._merged: dict[str, Any] = {}
        self._winner: dict[str, int] = {}  # key -> rank of the level that set the merged value

    def push(self, level: str, source: str, values: Mapping[str, Any], *, scope: str = "") -> None:
        """Add ``values`` from ``source`` at ``level``; ``scope`` (e.g. ``group web``) is shown by explain.

        Levels may be pushed in any order (the merge compares ranks), so a ``register`` after the
        magic level costs only its own keys.
        """
        rank = _RANK.get(level)
        if rank is None:
            raise ValueError(f"unknown variable level {level!r}; known: {', '.join(LEVELS)}")
        if not values:
            return
        self._layers.append(Layer(level, source, values, scope))
        merged, winner = self._merged, self._winner
        for key, value in values.items():
            if winner.get(key, -1) <= rank:
                merged[key] = value
                winner[key] = rank

    def view(self, level: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """The merged variables with ``values`` slotted in at ``level``, without storing them.

        This is how a task gets its block/task vars: above the play's levels, below runtime,
        extra vars and magic.
        """
        merged = dict(self._merged)
        if values:
            rank = _RANK[level]
            winner = self._winner
            for key, value in values.items():
                if winner.get(key, -1) <= rank:
                    merged[key] = value
        return merged

    def drop(self, level: str) -> None:
        """Forget every push at ``level`` (e.g. the previous play's vars)."""
        if level not in _RANK:
            raise ValueError(f"unknown variable level {level!r}")
        kept = [layer for layer in self._layers if layer.level != level]
        if len(kept) != len(self._layers):
            self._layers = kept
            self._rebuild()

    def _rebuild(self) -> None:
        self._merged = {}
        self._winner = {}
        for layer in self.layers:
            rank = _RANK[layer.level]
            for key, value in layer.values.items():
                self._merged[key] = value
                self._winner[key] = rank

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every push, lowest precedence first (pushes of one level in push order)."""
        return tuple(sorted(self._layers, key=lambda layer: _RANK[layer.level]))

    def merged(self, *, without: Iterable[str] = ()) -> dict[str, Any]:
        """The variables as a task sees them (a new dict; values are shared, not copied).

        ``without`` leaves out the keys whose winning value is at those levels (e.g. ``magic``).
        """
        if not without:
            return dict(self._merged)
        skipped = {_RANK[level] for level in without}
        return {key: value for key, value in self._merged.items() if self._winner[key] not in skipped}

    def get(self, name: str, default: Any = None) -> Any:
        """One merged value."""
        return self._merged.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._merged

    def copy(self, *, drop: Iterable[str] = ()) -> VariableLayers:
        """An independent copy (the value mappings themselves are shared), without the ``drop`` levels."""
        twin = VariableLayers.__new__(VariableLayers)
        twin._layers = list(self._layers)
        twin._merged = dict(self._merged)
        twin._winner = dict(self._winner)
        dropped = set(drop)
        if dropped:
            twin._layers = [layer for layer in twin._layers if layer.level not in dropped]
            twin._rebuild()
        return twin

    def explain(self, *, levels: Iterable[str] | None = None) -> list[Explained]:
        """Every variable with its winning level and source, sorted by name."""
        wanted = set(levels) if levels is not None else None
        history: dict[str, list[tuple[str, str, Any]]] = {}
        for layer in self.layers:
            if wanted is not None and layer.level not in wanted:
                continue
            for key, value in layer.values.items():
                history.setdefault(key, []).append((layer.level, _source_of_key(layer, key), value))
        explained = []
        for name in sorted(history):
            *lost, (level, source, value) = history[name]
            explained.append(Explained(name, value, level, source, list(reversed(lost))))
        return explained


def _source_of_key(layer: Layer, key: str) -> str:
    """``file:line`` of ``key`` when the mapping came from YAML, else the pushed source."""
    where = layer.source
    key_sources = getattr(layer.values, "key_sources", None)
    if key_sources and key in key_sources and key_sources[key].line:
        where = str(key_sources[key])
    return f"{where} ({layer.scope})" if layer.scope else where


def short_json(value: Any, *, show_secrets: bool = False, secret: bool = False) -> str:
    """``value`` as compact JSON, secrets redacted, cut to ``SHORT_VALUE_WIDTH`` characters."""
    text = json.dumps(
        plain_value(value, show_secrets=show_secrets, secret=secret), ensure_ascii=False, default=str
    )
    if len(text) > SHORT_VALUE_WIDTH:
        text = text[: SHORT_VALUE_WIDTH - 1] + "…"
    return text


def plain_value(value: Any, *, show_secrets: bool = False, secret: bool = False) -> Any:
    """A JSON-ready copy of ``value``: plain dicts/lists, dates as ISO text, secrets redacted.

    A value is secret when it is a ``Secret`` (tagged ``!secret``) or sits under a key whose
    name looks like a credential (``secret`` is True for the caller's own key).
    """
    kind = type(value)  # exact types first: `--list` runs this over every value of every host
    if kind is str or kind is int:
        return (str(value) if show_secrets else REDACTED) if secret else value
    if kind is float or kind is bool or value is None:
        return value
    if kind is dict or kind is YamlDict:
        return {
            str(k): plain_value(v, show_secrets=show_secrets, secret=secret or is_secret_name(str(k)))
            for k, v in value.items()
        }
    if kind is list or kind is YamlList:
        return [plain_value(v, show_secrets=show_secrets, secret=secret) for v in value]
    if isinstance(value, Secret) or (secret and isinstance(value, str | int) and not isinstance(value, bool)):
        return str(value) if show_secrets else REDACTED
    if isinstance(value, Mapping):
        return {
            str(k): plain_value(v, show_secrets=show_secrets, secret=secret or is_secret_name(str(k)))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [plain_value(v, show_secrets=show_secrets, secret=secret) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):  # dates and datetimes from YAML
        return value.isoformat()
    return str(value)


def explain_rows(explained: Iterable[Explained], *, show_secrets: bool = False) -> list[tuple[str, str, str, str]]:
    """Rows ``(name, value as short JSON, level, source)`` for ``provision inventory --host H --explain``."""
    return [
        (item.name, short_json(item.value, show_secrets=show_secrets, secret=is_secret_name(item.name)),
         item.level, item.source)
        for item in explained
    ]


def magic_variables(
    host: str,
    groups_of_host: Iterable[str],
    members: Mapping[str, list[str]],
    *,
    inventory_file: str | None = None,
    check: bool | None = None,
    diff: bool | None = None,
    hostvars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The magic variables of ``host``, with ansible-core's values (the only place they are built).

    The inventory pushes the ones it knows; a run adds its mode (``check``/``diff``) and
    ``hostvars``. ``inventory_hostname_short`` is the first label of a name, an IP address whole;
    ``group_names`` holds every group but ``all`` (``ungrouped`` included), sorted.
    """
    magic: dict[str, Any] = {
        "inventory_hostname": host,
        "inventory_hostname_short": _short_name(host),
        "group_names": sorted(g for g in groups_of_host if g != "all"),
        "groups": members,
    }
    if inventory_file is not None:
        magic["inventory_file"] = inventory_file
        magic["inventory_dir"] = _parent_dir(inventory_file)
    if check is not None:
        magic["ansible_check_mode"] = check
    if diff is not None:
        magic["ansible_diff_mode"] = diff
    if hostvars is not None:
        magic["hostvars"] = hostvars
    return magic


@functools.lru_cache(maxsize=16)  # one inventory file, asked for each of its hosts
def _parent_dir(path: str) -> str:
    return str(Path(path).parent)


def _short_name(name: str) -> str:
    """The first label of a host name; an IP address stays whole (as in Ansible)."""
    if ":" not in name and not name.replace(".", "").isdigit():
        return name.split(".")[0]  # not an address: skip ipaddress, slow on 50k hosts
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.split(".")[0]
    return name

__all__ = [
    "DEFAULTS",
    "EXTRA_VARS",
    "FACTS",
    "GROUP_VARS",
    "GROUP_VARS_ALL",
    "HOST_VARS",
    "INVENTORY_ALL",
    "INVENTORY_GROUPS",
    "INVENTORY_HOST",
    "LEVELS",
    "MAGIC",
    "PLAY_VARS",
    "RUNTIME",
    "TASK_VARS",
    "VARS_FILES",
    "VARS_FILE_EXTENSIONS",
    "Explained",
    "Layer",
    "VariableLayers",
    "VarsMap",
    "explain_rows",
    "find_vars_files",
    "load_vars_dir",
    "load_vars_file",
    "magic_variables",
    "parse_extra_vars",
    "plain_value",
    "short_json",
]
