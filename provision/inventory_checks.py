"""Inventory mistakes Ansible lets through silently: we refuse or warn.

- A host or group name that YAML read as a number, a boolean or null (``yes:``, ``1.10:``,
  ``~:``) is refused: its name would be ``True`` or ``1.1``, never what was written.
- A group and a host of the same name are a warning: a pattern naming it selects the group.

Also the words the inventory's messages use: ``yaml_kind`` of a value, ``unknown_key_hint``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .errors import InventoryError, Source
from .hostpatterns import ALL, UNGROUPED

GROUP_KEYS = ("hosts", "children", "vars")


def refuse_typed_names(data: Any, file: str) -> None:
    """Raise for a group or host key that YAML typed (``typed_keys`` from the loader)."""
    if isinstance(data, Mapping):
        for name, body in data.items():
            _check(data, name, "group", file)
            _walk_group(body, file)


def _walk_group(body: Any, file: str) -> None:
    if not isinstance(body, Mapping):
        return
    hosts, children = body.get("hosts"), body.get("children")
    if isinstance(hosts, Mapping):
        for name in hosts:
            _check(hosts, name, "host", file)
    if isinstance(children, Mapping):
        for name, child in children.items():
            _check(children, name, "group", file)
            _walk_group(child, file)


def _check(mapping: Mapping[str, Any], name: str, kind: str, file: str) -> None:
    typed = getattr(mapping, "typed_keys", {})
    if name not in typed:
        return
    value = typed[name]
    what = "null (empty)" if value is None else "a boolean" if isinstance(value, bool) else "a number"
    source = mapping.source_of(name) if hasattr(mapping, "source_of") else None
    written = "the name as you meant it" if value is None or isinstance(value, bool) else name
    raise InventoryError(
        f"{kind} name {name!r}: YAML read it as {what}, not as a name",
        source=source if isinstance(source, Source) else Source(file),
        hint=f"quote it: \"{written}\": (YAML reads yes/no/on/off/true/false, ~/null and numbers as values)",
    )


def name_clashes(groups: Mapping[str, Any], hosts: Mapping[str, Any]) -> list[str]:
    """Warnings for names that are both a group and a host."""
    return [f"{name!r} is both a group and a host: a pattern {name!r} selects the group"
            for name in hosts if name in groups and name not in (ALL, UNGROUPED)]


def yaml_kind(value: Any) -> str:
    """A YAML word for the type of ``value``, for messages."""
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def unknown_key_hint(key: str) -> str:
    """The fix for an unknown key in a group: the closest group key, or where a name belongs."""
    close = difflib.get_close_matches(key, GROUP_KEYS, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return (
        f"if {key!r} is a host, put it under 'hosts:'; if it is a group, under 'children:'; "
        "if it is a variable, under 'vars:'"
    )
