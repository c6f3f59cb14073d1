"""Vars files and ``-e``: how Ansible finds ``group_vars/``/``host_vars/`` files and reads extra vars.

What the values then mean, level by level, is ``provision.variables``.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import InputError, InventoryError, OptionsError, Source
from .yamlfile import load_yaml, parse_yaml, source_of

# Ansible's YAML_FILENAME_EXTENSIONS, "" first so that a directory <name>/ is found before a file.
VARS_FILE_EXTENSIONS = ("", ".yml", ".yaml", ".json")


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
