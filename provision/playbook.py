"""Playbooks: plays, tasks, handlers, blocks and includes, validated before anything runs.

Everything a playbook can get wrong statically — YAML syntax, unknown keywords, unknown modules,
unknown module arguments, notify without a handler, a missing include — is an error here, naming
``file:line`` and the fix, so a bad playbook never touches a host. Values stay unrendered: Jinja2
runs later, per host, in the runner.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArgumentError, PlaybookError, Source
from .registry import get_module, module_names
from .yamlfile import YamlDict, load_yaml, source_of

PLAY_KEYS = {
    "name", "hosts", "become", "become_user", "vars", "vars_files", "serial", "max_fail_percentage",
    "any_errors_fatal", "gather_facts", "tasks", "handlers", "pre_tasks", "post_tasks", "tags",
    "defaults", "defaults_files", "force_handlers",
}
TASK_KEYS = {
    "name", "when", "tags", "register", "notify", "loop", "with_items", "loop_control", "become",
    "become_user", "ignore_errors", "changed_when", "failed_when", "retries", "delay", "until",
    "delegate_to", "vars", "no_log", "listen", "check_mode", "timeout", "block", "rescue", "always",
}
INCLUDE_KEYS = {"include", "include_tasks", "import_tasks"}
LOOP_CONTROL_KEYS = {"loop_var", "label", "index_var", "pause", "extended", "extended_allitems"}
PLAYBOOK_INCLUDE_KEYS = {"import_playbook", "include"}  # `include:` of a playbook: Ansible's old spelling

_ids = itertools.count(1)


@dataclass
class Task:
    """One task, a block of tasks, or a handler; values unrendered."""

    name: str
    source: Source
    module: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    when: list[Any] = field(default_factory=list)
    tags: frozenset[str] = frozenset()
    register: str | None = None
    notify: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    loop: Any = None
    loop_var: str = "item"
    loop_label: str | None = None
    loop_index_var: str | None = None
    loop_pause: Any = None
    loop_extended: Any = False
    become: Any = None
    become_user: Any = None
    ignore_errors: Any = False
    changed_when: list[Any] | None = None
    failed_when: list[Any] | None = None
    retries: Any = None
    delay: Any = 5
    until: list[Any] | None = None
    delegate_to: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    no_log: bool = False
    check_mode: Any = None
    timeout: Any = None
    include_dir: Path | None = None  # a dynamic include_tasks: the including file's directory
    block: list[Task] | None = None
    rescue: list[Task] = field(default_factory=list)
    always: list[Task] = field(default_factory=list)
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def is_block(self) -> bool:
        return self.block is not None

    def label(self) -> str:
        return self.name or (self.module or "block")


@dataclass
class Play:
    """One play of a playbook."""

    name: str
    hosts: str
    source: Source
    become: Any = None
    become_user: Any = None
    vars: dict[str, Any] = field(default_factory=dict)
    vars_files: list[Any] = field(default_factory=list)
    # Like an Ansible role's defaults: below the inventory, so any inventory value overrides them.
    defaults: dict[str, Any] = field(default_factory=dict)
    defaults_files: list[Any] = field(default_factory=list)
    serial: list[int | str] = field(default_factory=list)
    max_fail_percentage: float | None = None
    any_errors_fatal: bool = False
    force_handlers: bool = False
    gather_facts: bool = True
    pre_tasks: list[Task] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    post_tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    base_dir: Path = Path(".")
    tags: frozenset[str] = frozenset()


@dataclass
class Playbook:
    """A parsed playbook file."""

    path: Path
    plays: list[Play]


def load_playbook(path: Path | str) -> Playbook:
    """Read, parse and validate a playbook file."""
    path = Path(path)
    data = load_yaml(path, error=PlaybookError)
    if not isinstance(data, list) or not data:
        raise PlaybookError("a playbook is a non-empty list of plays", source=Source(str(path), 1),
                            hint="start the file with '- name: ...' and 'hosts: ...'")
    return Playbook(path, _parse_plays(data, path, (path.resolve(),)))


def _parse_plays(data: list[Any], path: Path, seen: tuple[Path, ...]) -> list[Play]:
    plays: list[Play] = []
    for item in data:
        key = next((k for k in PLAYBOOK_INCLUDE_KEYS if isinstance(item, Mapping) and k in item), None)
        if key is not None and "hosts" not in item:
            plays.extend(_import_playbook(item, key, path, seen))
        else:
            plays.append(_parse_play(item, path))
    return plays


def _import_playbook(raw: Mapping[str, Any], key: str, path: Path, seen: tuple[Path, ...]) -> list[Play]:
    """``- import_playbook: other.yml`` (with optional name, vars, tags): its plays, in place."""
    where = source_of(raw) or Source(str(path))
    extra = set(raw) - {key, "name", "vars", "tags"}
    if extra:
        raise PlaybookError(f"{key} takes only name, vars and tags, not {sorted(extra)}", source=where)
    target = raw[key]
    if not isinstance(target, str) or not target:
        raise PlaybookError(f"{key} needs a playbook file name", source=where)
    file = (path.parent / target).resolve()
    if file in seen:
        raise PlaybookError(f"{target} imports itself", source=where)
    if not file.exists():
        raise PlaybookError(f"imported playbook not found: {file}", source=where,
                            hint="the path is relative to the importing playbook")
    data = load_yaml(file, error=PlaybookError)
    if not isinstance(data, list) or not data:
        raise PlaybookError("a playbook is a non-empty list of plays", source=Source(str(file), 1))
    plays = _parse_plays(data, file, (*seen, file))
    variables, tags = _mapping(raw, "vars", where), _tags(raw.get("tags"))
    for play in plays:
        play.vars = {**variables, **play.vars}
        play.tags = play.tags | tags
        for task in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks]):
            task.tags = task.tags | tags
    return plays


def _parse_play(raw: Any, path: Path) -> Play:
    where = source_of(raw) or Source(str(path))
    if not isinstance(raw, Mapping):
        raise PlaybookError("each play must be a mapping with at least 'hosts'", source=where)
    _check_keys(raw, PLAY_KEYS, "play")
    if "hosts" not in raw:
        raise PlaybookError("play has no 'hosts'", source=where, hint="add e.g. 'hosts: all' or a group name")
    base = path.parent
    play = Play(
        name=str(raw.get("name") or raw["hosts"]),
        hosts=_hosts_pattern(raw["hosts"], where),
        source=where,
        become=raw.get("become"),
        become_user=raw.get("become_user"),
        vars=_mapping(raw, "vars", where),
        vars_files=_list(raw.get("vars_files")),
        defaults=_mapping(raw, "defaults", where),
        defaults_files=_list(raw.get("defaults_files")),
        serial=_serial(raw.get("serial"), _key_source(raw, "serial", where)),
        max_fail_percentage=_percentage(raw.get("max_fail_percentage"), _key_source(raw, "max_fail_percentage", where)),
        any_errors_fatal=bool(raw.get("any_errors_fatal", False)),
        force_handlers=bool(raw.get("force_handlers", False)),
        gather_facts=bool(raw.get("gather_facts", True)),
        base_dir=base,
    )
    play_tags = _tags(raw.get("tags"))
    play.tags = play_tags
    for key in ("pre_tasks", "tasks", "post_tasks"):
        setattr(play, key, parse_tasks(raw.get(key), path, inherited_tags=play_tags, where=where))
    play.handlers = parse_tasks(raw.get("handlers"), path, where=where, handlers=True)
    _check_notify(play)
    return play


def parse_tasks(raw: Any, path: Path, *, inherited_tags: frozenset[str] = frozenset(),
                where: Source | None = None, handlers: bool = False, seen: tuple[Path, ...] = ()) -> list[Task]:
    """Parse a list of tasks (with blocks and static includes)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PlaybookError("tasks must be a list", source=source_of(raw) or where)
    out: list[Task] = []
    for item in raw:
        out.extend(_parse_task(item, path, inherited_tags, handlers, seen))
    return out


def _parse_task(raw: Any, path: Path, tags: frozenset[str], handler: bool, seen: tuple[Path, ...]) -> list[Task]:
    where = source_of(raw) or Source(str(path))
    if not isinstance(raw, Mapping):
        raise PlaybookError(f"a task must be a mapping, got {type(raw).__name__}", source=where)
    include_keys = INCLUDE_KEYS & set(raw)
    if include_keys:
        return _parse_include(raw, include_keys.pop(), path, tags, handler, seen, where)
    unknown = [k for k in raw if k not in TASK_KEYS]
    modules = [k for k in unknown if get_module(k) is not None]
    strays = [k for k in unknown if k not in modules]
    name = str(raw.get("name") or "")
    if strays:
        key = strays[0]
        close = difflib.get_close_matches(key, [*TASK_KEYS, *module_names()], n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `provision modules` for the module list"
        raise PlaybookError(f"unknown module or keyword {key!r} in task {name!r}",
                            source=_key_source(raw, key, where), hint=hint)
    task_tags = tags | _tags(raw.get("tags"))
    task = Task(name=name, source=where, tags=task_tags)
    _fill_keywords(task, raw, where)
    if "block" in raw:
        if modules:
            raise PlaybookError(f"a block cannot also name a module ({modules[0]})", source=where)
        task.block = parse_tasks(raw["block"], path, inherited_tags=task_tags, where=where, seen=seen)
        task.rescue = parse_tasks(raw.get("rescue"), path, inherited_tags=task_tags, where=where, seen=seen)
        task.always = parse_tasks(raw.get("always"), path, inherited_tags=task_tags, where=where, seen=seen)
        return [task]
    if "rescue" in raw or "always" in raw:
        raise PlaybookError("'rescue' and 'always' belong to a task with 'block'", source=where)
    if len(modules) != 1:
        raise PlaybookError(
            f"task {name!r} names {'no module' if not modules else 'several modules: ' + ', '.join(modules)}",
            source=where, hint="a task is one module with its arguments, e.g. 'file: {path: /srv, state: directory}'")
    module = modules[0]
    cls = get_module(module)
    assert cls is not None
    try:
        task.args = cls.normalize(raw[module])
    except ArgumentError as exc:
        raise ArgumentError(exc.message, source=_key_source(raw, module, where), hint=exc.hint) from None
    task.module = module
    if not task.name:
        task.name = module
    if handler and not raw.get("name"):
        raise PlaybookError("a handler needs a 'name' (notify refers to it)", source=where)
    return [task]


def _fill_keywords(task: Task, raw: Mapping[str, Any], where: Source) -> None:
    task.when = _list(raw.get("when"))
    task.register = _identifier(raw.get("register"), "register", where)
    task.notify = [str(n) for n in _list(raw.get("notify"))]
    task.listen = [str(n) for n in _list(raw.get("listen"))]
    if "loop" in raw and "with_items" in raw:
        raise PlaybookError("use either 'loop' or 'with_items', not both", source=where)
    task.loop = raw.get("loop", raw.get("with_items"))
    control = raw.get("loop_control") or {}
    if not isinstance(control, Mapping):
        raise PlaybookError("loop_control must be a mapping (loop_var, label)", source=where)
    for key in control:
        if key not in LOOP_CONTROL_KEYS:
            raise PlaybookError(f"unknown loop_control field {key!r}", source=_key_source(raw, "loop_control", where),
                                hint=f"loop_control takes {', '.join(sorted(LOOP_CONTROL_KEYS))}")
    task.loop_var = str(control.get("loop_var", "item"))
    task.loop_label = control.get("label")
    task.loop_index_var = _identifier(control.get("index_var"), "loop_control.index_var", where)
    task.loop_pause = control.get("pause")
    task.loop_extended = control.get("extended", False)
    task.become = raw.get("become")
    task.become_user = raw.get("become_user")
    task.ignore_errors = raw.get("ignore_errors", False)
    task.changed_when = _list(raw["changed_when"]) if "changed_when" in raw else None
    task.failed_when = _list(raw["failed_when"]) if "failed_when" in raw else None
    task.until = _list(raw["until"]) if "until" in raw else None
    task.retries = raw.get("retries", 3 if "until" in raw else None)
    task.delay = raw.get("delay", 5)
    delegate = raw.get("delegate_to")
    if delegate is not None and str(delegate) not in ("localhost", "127.0.0.1"):
        raise PlaybookError(f"delegate_to: {delegate!r} is not supported; only 'localhost' (the control host)",
                            source=_key_source(raw, "delegate_to", where))
    task.delegate_to = "localhost" if delegate is not None else None
    task.vars = _mapping(raw, "vars", where)
    task.no_log = bool(raw.get("no_log", False))
    task.check_mode = raw.get("check_mode")
    task.timeout = raw.get("timeout")
    for keyword in ("timeout", "retries", "delay"):  # a typo here is bad input now, not a failure mid-run
        value = raw.get(keyword)
        literal = not (isinstance(value, str) and "{{" in value)
        if value is not None and literal and (isinstance(value, bool) or not _non_negative(value)):
            raise PlaybookError(f"{keyword} must be a number of at least 0 (seconds for timeout and delay), "
                                f"not {value!r}", source=_key_source(raw, keyword, where),
                                hint=f"e.g. {keyword}: {'600' if keyword == 'timeout' else '3'}")


def _non_negative(value: Any) -> bool:
    try:
        return float(value) >= 0
    except (TypeError, ValueError):
        return False


def _parse_include(raw: Mapping[str, Any], key: str, path: Path, tags: frozenset[str], handler: bool,
                   seen: tuple[Path, ...], where: Source) -> list[Task]:
    target = raw[key]
    if isinstance(target, Mapping):
        target = target.get("file")
    if not isinstance(target, str) or not target:
        raise PlaybookError(f"{key} needs a file name", source=where)
    loop_keys = {"loop", "with_items", "loop_control"}
    if key == "include_tasks" and (loop_keys & set(raw) or "{{" in target):
        return [_dynamic_include(raw, target, path, tags, where)]
    extra = set(raw) - {key, "name", "when", "tags", "vars"}
    if extra:
        hint = "a loop goes on include_tasks (read when reached), not on import_tasks" if extra & loop_keys else None
        raise PlaybookError(f"{key} takes only name, when, tags and vars, not {sorted(extra)}", source=where,
                            hint=hint)
    file = (path.parent / target).resolve()
    if not file.exists():
        alt = (path.parent / "includes" / target).resolve()
        file = alt if alt.exists() else file
    if file in seen:
        raise PlaybookError(f"{target} includes itself", source=where)
    data = load_yaml(file, error=PlaybookError) if file.exists() else None
    if data is None and not file.exists():
        raise PlaybookError(f"included file not found: {file}", source=where,
                            hint="paths are relative to the including file (or its includes/ dir)")
    tasks = parse_tasks(data, file, inherited_tags=tags | _tags(raw.get("tags")), where=where,
                        handlers=handler, seen=(*seen, file))
    conditions = _list(raw.get("when"))
    variables = _mapping(raw, "vars", where)
    for task in tasks:
        task.when = conditions + task.when
        task.vars = {**variables, **task.vars}
    return tasks


def _dynamic_include(raw: Mapping[str, Any], target: str, path: Path, tags: frozenset[str], where: Source) -> Task:
    """``include_tasks`` with a loop or a templated file name: one task, its file read when reached."""
    extra = set(raw) - {"include_tasks", "name", "when", "tags", "vars", "loop", "with_items", "loop_control"}
    if extra:
        raise PlaybookError(f"include_tasks takes only name, when, tags, vars and a loop, not {sorted(extra)}",
                            source=where)
    task = Task(name=str(raw.get("name") or f"include_tasks: {target}"), source=where,
                tags=tags | _tags(raw.get("tags")))
    _fill_keywords(task, raw, where)
    task.module, task.args, task.include_dir = "include_tasks", {"file": target}, path.parent
    return task


def included_tasks(task: Task, name: str, *, handler: bool = False) -> list[Task]:
    """The tasks of a dynamic include's file ``name`` (rendered), found as a static include finds it."""
    assert task.include_dir is not None
    file = (task.include_dir / name).resolve()
    if not file.exists() and (task.include_dir / "includes" / name).exists():
        file = (task.include_dir / "includes" / name).resolve()
    if not file.exists():
        raise PlaybookError(f"included file not found: {file}", source=task.source,
                            hint="paths are relative to the including file (or its includes/ dir)")
    return parse_tasks(load_yaml(file, error=PlaybookError), file, inherited_tags=task.tags, where=task.source,
                       handlers=handler, seen=(file,))


def _check_notify(play: Play) -> None:
    names = {h.name for h in play.handlers} | {topic for h in play.handlers for topic in h.listen}
    for task in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers]):
        for target in task.notify:
            if target not in names:
                close = difflib.get_close_matches(target, sorted(names), n=1)
                raise PlaybookError(f"task {task.name!r} notifies {target!r}, but no handler has that name",
                                    source=task.source,
                                    hint=f"did you mean {close[0]!r}?" if close else "add it under 'handlers:'")


def walk_tasks(tasks: list[Task]) -> Iterator[Task]:
    """Every task, depth first, blocks included."""
    for task in tasks:
        yield task
        if task.block is not None:
            yield from walk_tasks(task.block)
            yield from walk_tasks(task.rescue)
            yield from walk_tasks(task.always)


# -- small validators ------------------------------------------------------------------------------


def _check_keys(raw: Mapping[str, Any], allowed: set[str], what: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            raise PlaybookError(f"unknown {what} keyword {key!r}",
                                source=_key_source(raw, key, source_of(raw) or Source("?")),
                                hint=f"did you mean {close[0]!r}?" if close
                                else f"{what} keywords: {', '.join(sorted(allowed))}")


def _key_source(raw: Mapping[str, Any], key: str, default: Source) -> Source:
    return raw.source_of(key) or default if isinstance(raw, YamlDict) else default


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _mapping(raw: Mapping[str, Any], key: str, where: Source) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PlaybookError(f"'{key}' must be a mapping of names to values", source=_key_source(raw, key, where))
    copy = YamlDict(value)  # keeps each key's line, for --explain-var
    copy.source = getattr(value, "source", None)
    copy.key_sources = dict(getattr(value, "key_sources", {}))
    return copy


def _tags(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(t.strip() for t in value.split(",") if t.strip())
    return frozenset(str(t) for t in _list(value))


def _identifier(value: Any, what: str, where: Source) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not text.isidentifier():
        raise PlaybookError(f"{what}: {text!r} is not a valid variable name", source=where)
    return text


def _hosts_pattern(value: Any, where: Source) -> str:
    if isinstance(value, list):
        return ":".join(str(v) for v in value)
    if not isinstance(value, str) or not value.strip():
        raise PlaybookError("'hosts' must be a pattern such as 'all', 'prod' or 'web:&eu'", source=where)
    return value.strip()


def _serial(value: Any, where: Source) -> list[int | str]:
    out: list[int | str] = []
    for item in _list(value):
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out.append(item)
        elif isinstance(item, str) and item.strip().endswith("%") and _is_number(item.strip()[:-1]):
            out.append(item.strip())
        elif isinstance(item, str) and item.strip().isdigit() and int(item) > 0:
            out.append(int(item))
        else:
            raise PlaybookError(f"serial: {item!r} is neither a positive number nor a percentage", source=where,
                                hint="e.g. 'serial: 1', 'serial: \"30%\"' or 'serial: [1, \"50%\", \"100%\"]'")
    return out


def _percentage(value: Any, where: Source) -> float | None:
    if value is None:
        return None
    text = str(value).rstrip("%")
    if not _is_number(text) or not 0 <= float(text) <= 100:
        raise PlaybookError(f"max_fail_percentage: {value!r} must be a number from 0 to 100", source=where)
    return float(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def tag_selected(tags: frozenset[str], wanted: frozenset[str], skipped: frozenset[str]) -> bool:
    """Ansible's tag selection, with ``always``, ``never``, ``tagged`` and ``untagged``."""
    if tags & skipped or ("always" in tags and "always" in skipped):
        return False
    if "always" in tags:
        return True
    if "never" in tags:
        return bool(tags & wanted - {"all"})
    if not wanted or "all" in wanted:
        return True
    return bool(tags & wanted) or ("untagged" in wanted and not tags) or ("tagged" in wanted and bool(tags))
