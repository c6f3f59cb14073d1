"""Task evaluation for one host in one play: which tasks run, with which variables, as whom.

Everything a task's decision needs before a module runs — tag selection, the block vars and
``when`` it inherits, its variables (``provision.variables``), its loop items, its become user —
lives here, so the host run (``hostrun``) and the look-ahead (``lookahead``) both use it and
neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import TemplateError
from .playbook import Play, Task, tag_selected
from .runstate import HostState, RunShared
from .variables import RUNTIME, TASK_VARS, VariableLayers


@dataclass(frozen=True)
class Inherited:
    """What a task takes from the blocks around it."""

    when: tuple[Any, ...] = ()
    become: Any = None
    become_user: Any = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    ignore_errors: Any = False


class TaskEvaluation:
    """One play's tasks on one host: their order, what they inherit, and how each is evaluated."""

    def __init__(self, play: Play, host: HostState, shared: RunShared, layers: VariableLayers) -> None:
        self.play = play
        self.host = host
        self.shared = shared
        self.layers = layers  # the host's levels plus this play's (see provision.variables)
        self.inherited: dict[int, Inherited] = {}
        self.schedule: list[Task] = []
        self.position: dict[int, int] = {}
        for tasks in (play.pre_tasks, play.tasks, play.post_tasks):
            self._schedule(tasks, Inherited())
        for handler in play.handlers:
            self.inherited[handler.id] = Inherited()

    def _schedule(self, tasks: list[Task], outer: Inherited) -> None:
        for task in tasks:
            inherited = Inherited(
                when=(*outer.when, *task.when) if task.is_block else outer.when,
                become=task.become if task.is_block and task.become is not None else outer.become,
                become_user=task.become_user if task.is_block and task.become_user else outer.become_user,
                vars={**outer.vars, **task.vars} if task.is_block else outer.vars,
                ignore_errors=task.ignore_errors if task.is_block and task.ignore_errors else outer.ignore_errors,
            )
            self.inherited[task.id] = inherited if task.is_block else outer
            if task.is_block:
                assert task.block is not None
                self._schedule(task.block, inherited)
                self._schedule(task.rescue, inherited)
                self._schedule(task.always, inherited)
            else:
                self.position[task.id] = len(self.schedule)
                self.schedule.append(task)

    def schedule_included(self, block: Task, outer: Inherited) -> None:
        """A dynamic include's tasks (read at run time) join the schedule, inheriting from the include."""
        self._schedule([block], outer)

    def selected(self, task: Task) -> bool:
        """Tag selection as Ansible does, with the special tags ``always``, ``never``, ``tagged``, ``untagged``."""
        return tag_selected(task.tags, self.shared.options.tags, self.shared.options.skip_tags)

    def variables(self, task: Task) -> dict[str, Any]:
        """The variables a task sees, by precedence (see ``provision.variables``)."""
        inherited = self.inherited.get(task.id, Inherited())
        if not inherited.vars:
            return self.layers.view(TASK_VARS, task.vars)
        return self.layers.view(TASK_VARS, {**inherited.vars, **task.vars})

    def set_runtime(self, values: Mapping[str, Any], source: str) -> None:
        """``register``/``set_fact``: for the rest of this play, and for the host's later plays."""
        self.host.set_runtime(values, source)
        self.layers.push(RUNTIME, source, values)
        self.host.set_runtime(values, source)
        self.layers.push(RUNTIME, source, values)

    def item_scope(self, task: Task, variables: dict[str, Any], item: Any, *, index: int = 0,
                   items: list[Any] | None = None) -> dict[str, Any]:
        """The variables of one loop item (the task's own when it has no loop), with loop_control's."""
        if item is NO_ITEM:
            return variables
        scope = {**variables, task.loop_var: item, "ansible_loop_var": task.loop_var}
        if task.loop_index_var:
            scope[task.loop_index_var] = index
            scope["ansible_index_var"] = task.loop_index_var
        if task.loop_extended and truthy(self.shared.templar.render_value(task.loop_extended, variables)):
            scope["ansible_loop"] = loop_details(items or [item], index)
        return scope

    def loop_items(self, task: Task, variables: dict[str, Any]) -> list[Any]:
        """The rendered loop, or one pseudo-item for a task without a loop."""
        if task.loop is None:
            return SINGLE
        items = self.shared.templar.render_value(task.loop, variables, source=task.source,
                                                 what=f"task {task.name!r} loop")
        if isinstance(items, str | bytes) or not isinstance(items, list | tuple):
            raise TemplateError(f"task {task.name!r}: loop must be a list, got {type(items).__name__}",
                                source=task.source, hint="e.g. loop: \"{{ range(1, 4) | list }}\"")
        return list(items)

    def conditions_hold(self, task: Task, conditions: list[Any], scope: dict[str, Any]) -> bool:
        """True when every ``when`` condition (the blocks' around it included) holds."""
        for condition in conditions:
            if isinstance(condition, bool):
                value: Any = condition
            else:
                value = self.shared.templar.evaluate(str(condition), scope, source=task.source, what="when")
            if not truthy(value):
                return False
        return True

    def become_user_of(self, task: Task, scope: dict[str, Any], inherited: Inherited) -> str | None:
        """The user a task runs as via sudo, or None for the login user (task, block, play, host)."""
        templar = self.shared.templar
        spec = self.host.spec
        become = next((v for v in (task.become, inherited.become, self.play.become) if v is not None), None)
        enabled = spec.become if become is None else truthy(templar.render_value(become, scope))
        if not enabled:
            return None
        user = next((v for v in (task.become_user, inherited.become_user, self.play.become_user) if v), None)
        return str(templar.render_value(user, scope)) if user else (spec.become_user or "root")

    def ignored(self, task: Task, inherited: Inherited, scope: dict[str, Any]) -> bool:
        value = task.ignore_errors or inherited.ignore_errors
        return truthy(self.shared.templar.render_value(value, scope)) if value else False

    def item_label(self, task: Task, scope: dict[str, Any], item: Any) -> str:
        if task.loop_label is not None:
            return str(self.shared.templar.render_value(task.loop_label, scope))
        if isinstance(item, dict) and "name" in item:
            return str(item["name"])
        return json.dumps(item, default=str) if isinstance(item, dict | list) else str(item)


NO_ITEM: Any = object()  # the one pseudo-item of a task without a loop
SINGLE: list[Any] = [NO_ITEM]


def loop_details(items: list[Any], index: int) -> dict[str, Any]:
    """``ansible_loop`` of ``loop_control: {extended: true}``, as Ansible fills it."""
    length = len(items)
    return {
        "allitems": items, "index": index + 1, "index0": index, "revindex": length - index,
        "revindex0": length - index - 1, "first": index == 0, "last": index == length - 1, "length": length,
        "previtem": items[index - 1] if index else None, "nextitem": items[index + 1] if index + 1 < length else None,
    }


def truthy(value: Any) -> bool:
    """A condition's or flag's value as Ansible reads it (``"yes"``, ``"on"``, ``1`` ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)
