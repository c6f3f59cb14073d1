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

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, InventoryError, OptionsError, Source
from .secrets import REDACTED, Secret, is_secret_name
from .yamlfile import load_yaml, parse_yaml, source_of

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

# Ansible's YAML_FILENAME_EXTENSIONS, "" first so that a directory <name>/ is found before a file.
VARS_FILE_EXTENSIONS = ("", ".yml", ".yaml", ".json")
# Row values longer than this are cut in the explain view.
SHORT_VALUE_WIDTH = 60


@dataclass(frozen=True)
class Layer:
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
        for key, value in values.items():
            if self._winner.get(key, -1) <= rank:
                self._merged[key] = value
                self._winner[key] = rank

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


def find_vars_files(directory: Path, name: str) -> list[Path]:
    """The files Ansible reads for ``name`` in ``directory`` (``group_vars/`` or ``host_vars/``).

    The first of ``name``, ``name.yml``, ``name.yaml``, ``name.json`` that exists wins; a
    directory is read whole, recursively, in sorted order, skipping hidden and ``~`` files.
    """
    for extension in VARS_FILE_EXTENSIONS:
        candidate = directory / f"{name}{extension}"
        if candidate.is_dir():
            return _files_in_vars_dir(candidate)
        if candidate.is_file():
            return [candidate]
    return []


def _files_in_vars_dir(directory: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found.extend(_files_in_vars_dir(entry))
        elif entry.is_file() and entry.suffix in VARS_FILE_EXTENSIONS:
            found.append(entry)
    return found


VarsMap = Mapping[str, Any]


def load_vars_dir(directory: Path, names: Iterable[str]) -> tuple[dict[str, list[tuple[str, VarsMap]]], list[Path]]:
    """Load ``directory/<name>`` vars files for each of ``names`` (each file once).

    Returns the loaded ``(path, mapping)`` pairs by name, and the entries of ``directory`` that
    match no name (a typo in a group_vars file name is otherwise silently ignored).
    """
    if not directory.is_dir():
        return {}, []
    wanted = set(names)
    loaded: dict[str, list[tuple[str, VarsMap]]] = {}
    for name in wanted:
        files = find_vars_files(directory, name)
        if files:
            loaded[name] = [(str(path), load_vars_file(path)) for path in files]
    unused = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        stem = entry.name if entry.is_dir() or entry.suffix not in VARS_FILE_EXTENSIONS else entry.stem
        if stem not in wanted and entry.name not in wanted:
            unused.append(entry)
    return loaded, unused


def load_vars_file(path: Path, *, error: type[InputError] = InventoryError) -> Mapping[str, Any]:
    """A vars file's mapping (empty for an empty file); anything else is ``error`` naming the file."""
    data = load_yaml(path, error=error)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise error(
            f"a vars file must hold a mapping of variable names to values, not a {_yaml_kind(data)}",
            source=source_of(data) or Source(str(path)),
            hint="write one 'name: value' per line at the top level",
        )
    return data


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    return "string" if isinstance(value, str) else type(value).__name__


def parse_extra_vars(items: Iterable[str]) -> dict[str, Any]:
    """Merge ``-e`` arguments as Ansible does: ``@file``, inline YAML/JSON, or ``key=value`` words.

    ``key=value`` values stay strings (``-e n=3`` gives ``"3"``, as in Ansible); use
    ``-e '{"n": 3}'`` for typed values. Later arguments win, key by key.
    """
    merged: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if not text:
            continue
        if text.startswith("@"):
            path = text[1:]
            if not path:
                raise OptionsError("-e @ needs a file name", hint="write -e @vars.yml")
            data = load_vars_file(Path(path), error=OptionsError)
        elif text[0] in "{[":
            data = parse_yaml(text, "-e argument", error=OptionsError)
            if not isinstance(data, Mapping):
                raise OptionsError(
                    f"-e {item!r} is not a mapping", hint="write -e '{\"name\": \"value\"}' or -e name=value"
                )
        else:
            data = _parse_key_values(item)
        merged.update(data)
    return merged


def _parse_key_values(item: str) -> dict[str, str]:
    try:
        words = shlex.split(item)
    except ValueError as exc:
        raise OptionsError(f"-e {item!r}: {exc}", hint="balance the quotes around values with spaces") from None
    result: dict[str, str] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            raise OptionsError(
                f"-e {item!r}: {word!r} is not name=value",
                hint="write -e name=value (a variable name is letters, digits and _), "
                "-e '{\"name\": 1}' or -e @file.yml",
            )
        result[name] = value
    return result
