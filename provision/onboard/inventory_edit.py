"""Adding a host to the user's inventory file without disturbing it.

The file is a person's: its comments, key order, quoting and indentation must survive. It is
edited with ruamel.yaml's round-trip mode (pinned in pyproject), with the indentation measured
from the file itself, so an added host is the only difference; the change is shown as a unified
diff before the file is replaced atomically.
"""

from __future__ import annotations

import difflib
import io
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InventoryError, Source
from ..localfiles import write_atomic

_KEY_LINE = re.compile(r"^( *)(?!- )[^#\s][^#]*:\s*(#.*)?$")
_SEQ_LINE = re.compile(r"^( *)- ")


@dataclass(frozen=True)
class InventoryEdit:
    """The inventory text before and after adding one host."""

    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """Unified diff of the change (empty when nothing changes)."""
        return "".join(difflib.unified_diff(self.before.splitlines(True), self.after.splitlines(True),
                                            fromfile=f"{self.path} (before)", tofile=f"{self.path} (after)"))

    def write(self) -> None:
        """Replace the file atomically (temp file beside it, fsync, rename); its mode is kept."""
        write_atomic(self.path, self.after, mode=0o644)


def detect_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) the file uses, for ruamel.yaml's ``indent()``."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping_steps: list[int] = []
    sequence: tuple[int, int] | None = None
    for current, following in itertools.pairwise(lines):
        key = _KEY_LINE.match(current)
        if not key:
            continue
        parent = len(key.group(1))
        child = len(following) - len(following.lstrip(" "))
        if child <= parent:
            continue
        dash = _SEQ_LINE.match(following)
        if dash:
            after_dash = len(following) - len(following[child + 1:].lstrip(" "))
            sequence = sequence or (after_dash - parent, child - parent)
        else:
            mapping_steps.append(child - parent)
    mapping = min(mapping_steps) if mapping_steps else 2
    seq_indent, offset = sequence if sequence else (mapping + 2, mapping)
    return mapping, max(seq_indent, offset + 2), offset


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a person's long lines
    mapping, sequence, offset = detect_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _load(yaml: Any, text: str, path: Path) -> Any:
    from ruamel.yaml.error import MarkedYAMLError

    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InventoryError(f"YAML syntax error: {exc.problem}", source=Source(str(path), mark.line + 1 if mark
                                                                                  else None)) from None


def find_group(document: Any, group: str) -> Any | None:
    """The mapping of ``group`` (top level, or among ``children`` at any depth), or None."""
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(document, CommentedMap):
        return None
    if group in document and group != "all":
        return document
    pending = [document[name] for name in document if isinstance(document[name], CommentedMap)]
    while pending:
        node = pending.pop(0)
        children = node.get("children")
        if isinstance(children, CommentedMap):
            if group in children:
                return children
            pending.extend(value for value in children.values() if isinstance(value, CommentedMap))
    return None


def host_entry(path: Path, group: str, name: str) -> dict[str, Any] | None:
    """The variables of host ``name`` under ``group`` in the file, or None if it is not there."""
    if not path.exists():
        return None
    text = path.read_text()
    document = _load(_yaml(text), text, path)
    parent = find_group(document, group)
    if parent is None or not isinstance(parent[group], Mapping):
        return None
    hosts = parent[group].get("hosts")
    if not isinstance(hosts, Mapping) or name not in hosts:
        return None
    return dict(hosts[name] or {})


def plan_host(path: Path, *, group: str, name: str, host_vars: Mapping[str, Any]) -> InventoryEdit:
    """The edit that puts host ``name`` with ``host_vars`` under ``group`` (other variables of it are kept)."""
    from ruamel.yaml.comments import CommentedMap

    before = path.read_text() if path.exists() else ""
    yaml = _yaml(before)
    document = _load(yaml, before, path) if before.strip() else None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise InventoryError("the inventory is not a mapping of groups", source=Source(str(path), 1),
                             hint="an inventory starts with `all:` (Ansible's YAML inventory shape)")
    parent = find_group(document, group)
    if parent is None:
        top = document.setdefault("all", CommentedMap())
        if top is None:
            top = document["all"] = CommentedMap()
        children = top.setdefault("children", CommentedMap())
        if children is None:
            children = top["children"] = CommentedMap()
        children[group] = CommentedMap()
        parent = children
    if parent[group] is None:
        parent[group] = CommentedMap()
    hosts = parent[group].get("hosts")
    if hosts is None:
        hosts = parent[group]["hosts"] = CommentedMap()
    if not isinstance(hosts, CommentedMap):
        raise InventoryError(f"hosts of group {group!r} is not a mapping", source=Source(str(path)),
                             hint="write hosts as `hosts:` followed by `name:` lines")
    entry = hosts.get(name)
    if entry is None:
        entry = hosts[name] = CommentedMap()
    for key, value in host_vars.items():
        if value is None:  # e.g. ssh_port on port 22: not written, and an old value goes
            entry.pop(key, None)
        elif entry.get(key) != value:
            entry[key] = value
    out = io.StringIO()
    yaml.dump(document, out)
    after = out.getvalue()
    if after.rstrip("\n") == before.rstrip("\n"):
        after = before  # nothing changed: not even a final newline
    _check_parses(after, path)
    return InventoryEdit(path, before, after)


def _check_parses(text: str, path: Path) -> None:
    """The edited text must load with the project's own loader before it may replace the file."""
    from ..yamlfile import parse_yaml

    parse_yaml(text, f"{path} (edited)", error=InventoryError)
