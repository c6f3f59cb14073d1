"""YAML loading that remembers where each mapping came from.

Inventories, playbooks and vars files are read through ``load_yaml``: mappings come back as
``YamlDict`` and sequences as ``YamlList``, each knowing its file and line, so that a later
validation error can name ``file:line``. A scalar tagged ``!secret`` becomes a ``Secret`` string,
redacted in every output; so does a ``!vault`` scalar (decrypted), and every value of a file that
is a vault as a whole (see ``vaultkeys``).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Source
from .secrets import Secret
from .yaml_hints import yaml_hint

# Work is bounded on any input: libyaml's C parser when PyYAML has it (a 5 MB inventory parses in
# seconds, not minutes; its marks keep line numbers), and nesting deeper than MAX_DEPTH or aliases
# expanding past MAX_EXPANDED_NODES values are refused before anything is built (an alias bomb
# would otherwise hang every later walk over the data).
# Deeper YAML is not a real inventory or playbook, and Python's recursion limit is near.
MAX_DEPTH = 100
# Values a document may hold once its aliases are expanded (a plain 50k-host inventory has ~400k).
MAX_EXPANDED_NODES = 2_000_000


class KeySources(Mapping[str, Source]):
    """Where each key of a mapping is written; a ``Source`` is built only when one is asked for
    (a 50k-host inventory has 450k keys, and errors or ``--explain`` need a few)."""

    __slots__ = ("file", "lines")

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, int] = {}  # key -> its 1-based line

    def __getitem__(self, key: str) -> Source:
        return Source(self.file, self.lines[key])

    def __contains__(self, key: object) -> bool:
        return key in self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


class YamlDict(dict[str, Any]):
    """A mapping that knows its source, and the source of each of its keys."""

    source: Source | None = None
    key_sources: Mapping[str, Source]
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
    shares_nodes = True  # False when the text has no anchor, so no alias


try:
    from yaml import cyaml as _cyaml

    _CParser: Any = getattr(_cyaml, "CParser")  # noqa: B009 (not re-exported in the stubs)
except (ImportError, AttributeError):  # PyYAML built without libyaml: the pure-Python parser, slower
    _CParser = None
_LOADERS: list[type[Any]] = [_Loader]
if _CParser is not None:

    class _CLoader(_CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        """The same constructors on libyaml's parser (several times faster on big files)."""

        filename = "<string>"
        shares_nodes = True

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LOADERS.append(_CLoader)


def _mark(loader: _Loader, node: yaml.Node) -> Source:
    return Source(loader.filename, node.start_mark.line + 1)


# Objects a paused section may leave before they are frozen (see paused_gc); a 1k-host inventory
# leaves some 30k, a 50k-host one some 1.3M.
FREEZE_AFTER_OBJECTS = 200_000


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: building a big tree only allocates.

    The collector's passes over a growing heap cost 3-6x the build itself (a 50k-host inventory:
    7 of 8 CPU seconds). When the section left more than ``FREEZE_AFTER_OBJECTS`` new objects,
    they are frozen (``gc.freeze``): later collections skip them instead of walking a long-lived
    tree again (0.7 s each at 50k hosts); freed by reference counting as usual, only a cycle among
    them is never collected. Nested sections pause once, for the outermost.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_count()[0] > FREEZE_AFTER_OBJECTS:
                gc.freeze()
            gc.enable()


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def _construct_value(loader: _Loader, node: yaml.Node) -> Any:
    # A plain string is its node's value, and in a document without anchors (no node reached
    # twice) a plain mapping or list is built directly: construct_object's bookkeeping is for
    # aliases. Anything else (tags, aliases) goes the usual way.
    tag = node.tag
    if tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value
    if not loader.shares_nodes:
        if tag == _MAP_TAG and isinstance(node, yaml.MappingNode):
            return _construct_mapping(loader, node)
        if tag == _SEQ_TAG and isinstance(node, yaml.SequenceNode):
            return _construct_sequence(loader, node)
    return loader.construct_object(node, deep=True)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YamlDict:
    loader.flatten_mapping(node)
    result = YamlDict()
    result.source = _mark(loader, node)
    result.key_sources = key_sources = KeySources(loader.filename)
    lines = key_sources.lines
    for key_node, value_node in node.value:
        key = _construct_value(loader, key_node)
        if not isinstance(key, str):
            if not isinstance(key, int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable or complex key {key!r}", key_node.start_mark
                )
            # kept, so a host name YAML read as 1.5, true or null can be refused
            result.typed_keys = {**getattr(result, "typed_keys", {}), str(key): key}
            key = str(key)
        if key in result:
            first = lines[key]
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (also on line {first})", key_node.start_mark
            )
        result[key] = _construct_value(loader, value_node)
        lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList(_construct_value(loader, child) for child in node.value)
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
    loader = _new_loader(text)
    loader.filename = filename
    loader.shares_nodes = "&" in text
    try:
        with paused_gc():
            node = loader.get_single_node()
            if node is None:
                return None
            if "&" in text:  # anchors, so maybe aliases: depth and expansion
                check_bounds(node, filename, error=error)
            elif _may_exceed_bounds(text):  # no alias can expand: depth alone, a lighter walk
                check_depth(node, filename, error=error)
            return loader.construct_document(node)
    except RecursionError:
        raise error(
            f"YAML nested too deeply to read (more than {MAX_DEPTH} levels)", source=Source(filename),
            hint="flatten the structure",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        hint = yaml_hint(text, line, problem)
        if "nesting depth" in problem:  # libyaml's own bound (1000 levels)
            hint = f"flatten the structure: at most {MAX_DEPTH} levels are read"
        raise error(f"YAML syntax error: {problem}", source=Source(filename, line), hint=hint) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", source=Source(filename)) from None
    finally:
        loader.dispose()


def _new_loader(text: str) -> Any:
    loader_class = _LOADERS[-1]
    # One table for both parsers: every constructor added to _Loader serves libyaml's loader too.
    loader_class.yaml_constructors = _Loader.yaml_constructors
    return loader_class(text)


def check_bounds(node: yaml.Node, filename: str, *, error: type[InputError] = InputError) -> None:
    """Refuse a node tree nested deeper than ``MAX_DEPTH`` or expanding past ``MAX_EXPANDED_NODES``.

    Iterative, and each node is counted once however many aliases point at it, so the check itself
    stays linear in the file's size.
    """
    expanded: dict[int, int] = {}  # id(node) -> values under it, aliases expanded
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 1, False)]
    while stack:
        current, depth, children_done = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(current, filename, error)
        children = _children(current)
        if children_done:
            total = 1 + sum(expanded[id(child)] for child in children)
            expanded[id(current)] = total
            if total > MAX_EXPANDED_NODES:
                raise error(
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values",
                    source=Source(filename, current.start_mark.line + 1),
                    hint="this looks like an alias bomb (&anchor/*alias nested many times); "
                    "write the values out, or use fewer nested aliases",
                )
            continue
        if id(current) in expanded:
            continue
        stack.append((current, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in expanded)


def check_depth(node: yaml.Node, filename: str, *, error: type[InputError] = InputError) -> None:
    """``check_bounds`` for a tree without aliases: the same error on the same node, for less work.

    Only collections are walked; a collection at ``MAX_DEPTH`` with children is refused at its
    last child, the node ``check_bounds`` (same order, scalars pushed too) pops first.
    """
    stack: list[tuple[yaml.Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        children = _children(current)
        if not children:
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(children[-1], filename, error)
        stack.extend((child, depth + 1) for child in children if not isinstance(child, yaml.ScalarNode))


def _too_deep(node: yaml.Node, filename: str, error: type[InputError]) -> InputError:
    return error(
        f"YAML nested deeper than {MAX_DEPTH} levels",
        source=Source(filename, node.start_mark.line + 1),
        hint="flatten the structure (groups can be listed at the top level and linked by name under 'children:')",
    )


def _may_exceed_bounds(text: str) -> bool:
    """False when ``text`` cannot hold aliases nor nest deeper than ``MAX_DEPTH``: a fast path for big files.

    A level of nesting takes a bracket or brace (flow), or at most two characters of ' ', '-',
    '?' or ':' at the start of a line (block: "- - x", or "a:" then "- b:" then "  - c:"); a
    document may mix both, so they are counted together (the root is a level of its own).
    """
    if "&" in text:
        return True
    room = MAX_DEPTH - 2 - text.count("[") - text.count("{")
    return room <= 0 or re.search(rf"^[ \t?:-]{{{room // 2},}}", text, re.M) is not None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


# A Secret dumps as the string it is (to_yaml, written files); safe_dump refuses str subclasses.
yaml.SafeDumper.add_representer(Secret, lambda dumper, value: dumper.represent_str(str.__str__(value)))


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
