"""INI inventories, read as ansible-core's ``ini`` inventory plugin reads them.

    web1 ansible_host=10.0.0.5          # before any section: an ungrouped host
    [web]
    app[01:03].example.com ansible_user=deploy
    db1:2222                            # a port after the name
    [web:vars]
    http_port=8080
    [prod:children]
    web

Values are read as Ansible reads them: ``ast.literal_eval`` where that succeeds (``8080`` is a
number, ``True`` a boolean, ``"[1, 2]"`` a list, ``'a b'`` the string without its quotes), the text
as written otherwise; host lines are split like a shell line, with ``#`` comments. A ``[g:vars]``
or ``[g:children]`` naming a group that is never declared is an error, as in Ansible. The result
is the same data the YAML inventory reader builds, so ``group_vars/``, patterns and
``inventory --list`` work the same for both formats.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from .errors import InventoryError, Source

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_COMMENT_MARKERS = ("#", ";")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_INI_SUFFIXES = (".ini", ".cfg")


def looks_like_ini(path: Path, text: str | None = None) -> bool:
    """True for an INI inventory: by its suffix, else by its first meaningful line."""
    suffix = path.suffix.lower()
    if suffix in _INI_SUFFIXES:
        return True
    if suffix in _YAML_SUFFIXES:
        return False
    if text is None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(_COMMENT_MARKERS):
            continue
        return not (line.startswith(("---", "{")) or line.endswith(":") or ": " in line)
    return False


def parse_value(text: str) -> Any:
    """An INI value as Ansible types it: a Python literal where it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if value is ... or isinstance(value, complex | bytes):
        return "..." if value is ... else str(value)
    return value


def parse_ini(text: str, file: str) -> dict[str, Any]:
    """INI inventory text as the YAML inventory's data: ``{group: {hosts, children, vars}}``, in order."""
    groups: dict[str, dict[str, Any]] = {"all": {}, "ungrouped": {}}
    declared = {"all", "ungrouped"}
    pending: dict[str, tuple[int, str]] = {}  # group -> (line, "vars" | "children") until declared
    group, state = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        where = Source(file, number)
        line = raw.strip()
        if not line or line.startswith(_COMMENT_MARKERS):
            continue
        section = _SECTION.match(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventoryError(f"section [{group}:{state}] has unknown type {state!r}", source=where,
                                     hint="a section is [group], [group:vars] or [group:children]")
            groups.setdefault(group, {})
            if state == "vars":
                pending.setdefault(group, (number, "vars"))
            else:
                declared.add(group)
                pending.pop(group, None)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(f"invalid section {line!r}", source=where,
                                 hint="write [group], [group:vars] or [group:children], without spaces")
        body = groups[group]
        if state == "hosts":
            pattern, variables = _host_line(line, where)
            body.setdefault("hosts", {}).setdefault(pattern, {}).update(variables)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise InventoryError(f"expected name=value in [{group}:vars], got {line!r}", source=where)
            body.setdefault("vars", {})[key.strip()] = parse_value(value.strip())
        else:
            child = _GROUP_NAME.match(line)
            if not child:
                raise InventoryError(f"expected a group name in [{group}:children], got {line!r}", source=where)
            name = child.group(1)
            body.setdefault("children", {})[name] = None
            groups.setdefault(name, {})
            if name not in declared:
                pending.setdefault(name, (number, "children"))
    for name, (number, kind) in pending.items():
        if name in declared:
            continue
        what = f"[{name}:vars] is for a group" if kind == "vars" else f"a [..:children] section names group {name!r},"
        raise InventoryError(f"{what} that is never declared", source=Source(file, number),
                             hint=f"add a [{name}] section (it may be empty), as Ansible requires")
    return {name: _clean(body) for name, body in groups.items() if body or name not in ("all", "ungrouped")}


def _host_line(line: str, where: Source) -> tuple[str, dict[str, Any]]:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot split host line {line!r}: {exc}", source=where,
                             hint="close the quotes around a value with spaces") from None
    if not tokens:
        raise InventoryError(f"no host on line {line!r}", source=where)
    pattern = tokens[0]
    if pattern.endswith(":"):
        raise InventoryError(f"host {pattern!r} ends in ':'", source=where,
                             hint="a ':' after a host name gives its port: web1:2222 (or is this a YAML file?)")
    if pattern == "---":
        raise InventoryError("'---' is not a host name", source=where,
                             hint="this looks like a YAML file: name it .yml so it is read as YAML")
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep:
            raise InventoryError(f"expected name=value after host {pattern!r}, got {token!r}", source=where,
                                 hint="host variables are written name=value, quoted when they hold spaces")
        variables[key] = parse_value(value)
    return pattern, variables


def _clean(body: dict[str, Any]) -> dict[str, Any] | None:
    """Empty host variables as ``None`` (the YAML shape); an empty group as ``None``."""
    if "hosts" in body:
        body["hosts"] = {name: values or None for name, values in body["hosts"].items()}
    return body or None


def load_ini(path: Path) -> Any:
    """Read an INI inventory file into the inventory data the YAML reader would build."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read {path}: {exc}", source=Source(str(path))) from None
    return parse_ini(text, str(path))
