"""YAML loading that remembers where each mapping came from.

Inventories, playbooks and vars files are read through ``load_yaml``: mappings come back as
``YamlDict`` and sequences as ``YamlList``, each knowing its file and line, so that a later
validation error can name ``file:line``. A scalar tagged ``!secret`` becomes a ``Secret`` string,
redacted in every output; so does a ``!vault`` scalar (decrypted), and every value of a file that
is a vault as a whole (see ``vaultkeys``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Source
from .secrets import Secret
from .yaml_hints import yaml_hint


class YamlDict(dict[str, Any]):
    """A mapping that knows its source, and the source of each of its keys."""

    source: Source | None = None
    key_sources: dict[str, Source]
    typed_keys: dict[str, Any]  # keys YAML read as numbers, booleans or null, by their str()

    def source_of(self, key: str) -> Source | None:
        """The line of ``key`` if known, else of the mapping itself."""
        return getattr(self, "key_sources", {}).get(key, self.source)


class YamlList(list[Any]):
    """A sequence that knows its source."""

    source: Source | None = None


def source_of(node: object) -> Source | None:
    """The source of a loaded mapping or sequence, if it has one."""
    return getattr(node, "source", None)


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds YamlDict/YamlList with positions."""

    filename = "<string>"


def _mark(loader: _Loader, node: yaml.Node) -> Source:
    return Source(loader.filename, node.start_mark.line + 1)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YamlDict:
    loader.flatten_mapping(node)
    result = YamlDict()
    result.source = _mark(loader, node)
    result.key_sources = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable or complex key {key!r}", key_node.start_mark
            )
        if not isinstance(key, str):  # kept, so a host name YAML read as 1.5, true or null can be refused
            result.typed_keys = {**getattr(result, "typed_keys", {}), str(key): key}
            key = str(key)
        if key in result:
            first = result.key_sources[key].line
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (also on line {first})", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_sources[key] = _mark(loader, key_node)
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.source = _mark(loader, node)
    return result


def _construct_secret(loader: _Loader, node: yaml.Node) -> Secret:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!secret applies to a single value, not a list or mapping", node.start_mark
        )
    return Secret(loader.construct_scalar(node))


def _construct_vault(loader: _Loader, node: yaml.Node) -> Secret:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!vault applies to a single value (paste `provision vault encrypt-string`)", node.start_mark
        )
    from .vaultkeys import open_value

    return open_value(loader.construct_scalar(node), _mark(loader, node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("!secret", _construct_secret)
_Loader.add_constructor("!vault", _construct_vault)


def parse_yaml(text: str, filename: str, *, error: type[InputError] = InputError) -> Any:
    """Parse YAML text; a syntax error becomes ``error`` naming ``filename:line``."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        raise error(
            f"YAML syntax error: {problem}",
            source=Source(filename, line),
            hint=yaml_hint(text, line, problem),
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", source=Source(filename)) from None
    finally:
        loader.dispose()


def load_yaml(path: Path | str, *, error: type[InputError] = InputError) -> Any:
    """Read and parse a YAML file; missing or unreadable files become ``error``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"file not found: {path}", hint="check the path, or run from the project directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {exc}") from None
    from .vault import is_encrypted

    if is_encrypted(text):  # a whole-file vault: every value in it is a secret
        from .vaultkeys import open_file_text, secret_leaves

        return secret_leaves(parse_yaml(open_file_text(text, str(path)), str(path), error=error))
    return parse_yaml(text, str(path), error=error)
