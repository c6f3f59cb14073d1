"""One play on one host: the task loop with when/loop/register/notify, blocks, handlers, retries.

The runner starts one ``HostRun`` per host per play in a worker thread. Everything that is about
a single host lives here; what is about many hosts (batches, forks, failure thresholds, recap)
lives in ``runner.py``.
"""

from __future__ import annotations

import fnmatch
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import AfterChange, HostContext
from .errors import ConnectError, ProvisionError, TemplateError
from .events import HostStats, TaskDone, TaskStarted
from .lookahead import Lookahead
from .playbook import Play, Task
from .runstate import HostState, RunShared
from .tasks import get_module
from .tasks.base import Module, TaskResult


@dataclass(frozen=True)
class Inherited:
    """What a task takes from the blocks around it."""

    when: tuple[Any, ...] = ()
    become: Any = None
    become_user: Any = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    ignore_errors: Any = False


@dataclass
class _Outcome:
    """A task's aggregate result on this host (all loop items)."""

    status: str
    register: dict[str, Any]


class HostRun:
    """Runs one play's tasks (and handlers) on one host."""

    def __init__(self, play: Play, host: HostState, shared: RunShared, play_vars: Mapping[str, Any]) -> None:
        self.play = play
        self.host = host
        self.shared = shared
        self.play_vars = play_vars
        self.notified: list[str] = []
        self.shown_names: dict[int, str] = {}  # task id -> its rendered name
        self.failed = False
        self.ended = False
        self.inherited: dict[int, Inherited] = {}
        self.schedule: list[Task] = []
        self.position: dict[int, int] = {}
        for tasks in (play.pre_tasks, play.tasks, play.post_tasks):
            self._plan(tasks, Inherited())
        for handler in play.handlers:
            self.inherited[handler.id] = Inherited()
        self.lookahead = Lookahead(self)
        self._warned: set[int] = set()  # tasks already warned about a secret on their command line

    # -- structure ---------------------------------------------------------------------------------

    def _plan(self, tasks: list[Task], outer: Inherited) -> None:
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
                self._plan(task.block, inherited)
                self._plan(task.rescue, inherited)
                self._plan(task.always, inherited)
            else:
                self.position[task.id] = len(self.schedule)
                self.schedule.append(task)

    # -- the play ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Run pre_tasks, tasks, post_tasks, flushing handlers after each section, as Ansible does."""
        for section in (self.play.pre_tasks, self.play.tasks, self.play.post_tasks):
            self.run_tasks(section)
            if self.failed or self.ended or self.host.unreachable:
                break
            self.flush_handlers()
        if self.failed and self.notified and (self.play.force_handlers or self.shared.options.force_handlers):
            # A config that changed must not stay unloaded because a later task failed: a re-run would
            # find the file converged and never notify again.
            self.flush_handlers(force=True)

    def stopped(self) -> bool:
        return (self.failed or self.ended or self.host.unreachable or self.shared.cancel.is_set()
                or self.shared.batch_aborted())

    def run_tasks(self, tasks: list[Task]) -> None:
        for task in tasks:
            if self.stopped():
                return
            if task.is_block:
                self.run_block(task)
            else:
                self.run_task(task)

    def run_block(self, block: Task) -> None:
        assert block.block is not None
        self.run_tasks(block.block)
        if self.failed and block.rescue and not self.host.unreachable and not self.shared.cancel.is_set():
            self.failed = False
            self.host.stats.rescued += 1
            self.host.stats.failed = max(0, self.host.stats.failed - 1)
            self.run_tasks(block.rescue)
        if block.always and not self.host.unreachable and not self.shared.cancel.is_set():
            failed_before, self.failed = self.failed, False
            self.run_tasks(block.always)
            self.failed = self.failed or failed_before

    def flush_handlers(self, *, force: bool = False) -> None:
        """Run the notified handlers once each, in the order they are defined.

        ``force`` (force_handlers) runs them on a failed host too, and a failing handler does not
        keep the others from running.
        """
        if not self.notified:
            return
        pending, self.notified = self.notified, []
        failed = self.failed
        for handler in self.play.handlers:
            if force:
                if self.host.unreachable or self.shared.cancel.is_set():
                    return
                self.failed = False
            elif self.stopped():
                return
            if handler.name in pending or any(topic in pending for topic in handler.listen):
                self.run_task(handler, handler=True)
            failed = failed or self.failed
        self.failed = failed

    # -- one task ----------------------------------------------------------------------------------

    def selected(self, task: Task) -> bool:
        """Tag selection as Ansible does, with the special tags ``always`` and ``never``."""
        tags, wanted, skipped = task.tags, self.shared.options.tags, self.shared.options.skip_tags
        if tags & skipped or ("always" in tags and "always" in skipped):
            return False
        if "always" in tags:
            return True
        if "never" in tags:
            return bool(tags & wanted - {"all"})
        if not wanted or "all" in wanted:
            return True
        return bool(tags & wanted) or ("untagged" in wanted and not tags)

    def variables(self, task: Task) -> dict[str, Any]:
        """The variables a task sees, by precedence (see ``variables.py``)."""
        inherited = self.inherited.get(task.id, Inherited())
        return {
            **self.play_vars,
            **inherited.vars,
            **task.vars,
            **self.host.runtime,
            **self.shared.options.extra_vars,
            **self.host.magic,
        }

    def run_task(self, task: Task, *, handler: bool = False) -> None:
        if not handler and not self.selected(task):
            return
        if not handler and not self._reached_start(task):
            return
        if task.module == "meta":
            self._meta(task)
            return
        variables = self.variables(task)
        inherited = self.inherited.get(task.id, Inherited())
        conditions = [*inherited.when, *task.when]
        self.shown_names[task.id] = self._shown_name(task, variables)
        self.shared.reporter.task_started(TaskStarted(self.host.name, self.shown_names[task.id], task.module or ""))
        try:
            items = self.loop_items(task, variables)
        except ProvisionError as exc:
            self._finish(task, _Outcome("failed", {"failed": True, "msg": str(exc)}), [], handler,
                         inherited, variables)
            self._report(task, TaskResult.failed(str(exc)), 0.0, None, handler, self._ignored(task, inherited,
                                                                                           variables))
            return
        results: list[tuple[TaskResult, Any]] = []
        pause = float(self.shared.templar.render_value(task.loop_pause, variables) or 0) if task.loop_pause else 0.0
        for index, item in enumerate(items):
            if self.shared.cancel.is_set() or self.host.unreachable:
                break
            if index and pause and self.shared.cancel.wait(pause):
                break
            scope = self.item_scope(task, variables, item, index=index, items=items)
            started = time.monotonic()
            result = self._execute_item(task, scope, conditions, inherited)
            if self.host.unreachable:
                return
            results.append((result, item))
            ignored = result.status == "failed" and self._ignored(task, inherited, scope)
            self._report(task, result, time.monotonic() - started, None if item is _NO_ITEM else
                         self._item_label(task, scope, item), handler, ignored, item_value=item)
        if self.host.unreachable:
            return
        outcome = _aggregate(results, looped=items is not _SINGLE)
        self._finish(task, outcome, results, handler, inherited, variables)

    def _execute_item(self, task: Task, scope: dict[str, Any], conditions: list[Any],
                      inherited: Inherited) -> TaskResult:
        try:
            if not self.conditions_hold(task, conditions, scope):
                return TaskResult.skipped("conditional result was false")
            return self.execute(task, scope, inherited)
        except ConnectError as exc:
            self.host.mark_unreachable(str(exc), self.shared)
            return TaskResult.failed(str(exc))
        except ProvisionError as exc:
            return TaskResult.failed(str(exc))

    def _finish(self, task: Task, outcome: _Outcome, results: list[tuple[TaskResult, Any]], handler: bool,
                inherited: Inherited, variables: dict[str, Any]) -> None:
        if task.register:
            self.host.runtime[task.register] = outcome.register
        for result, _item in results:
            facts = result.data.get("facts") if task.module == "set_fact" else None
            if facts and result.status != "failed":
                self.host.runtime.update(facts)
        ignored = outcome.status == "failed" and self._ignored(task, inherited, variables)
        _count(self.host.stats, outcome.status, ignored)
        if outcome.status == "changed":
            for name in task.notify:
                if name not in self.notified:
                    self.notified.append(name)
        if outcome.status == "failed" and not ignored:
            self.failed = True
            self.shared.host_failed(self.host.name)

    def execute(self, task: Task, scope: dict[str, Any], inherited: Inherited) -> TaskResult:
        """Render, probe, run, then apply until/changed_when/failed_when: one item of one task."""
        cls = get_module(task.module or "")
        assert cls is not None
        module = cls()
        what = f"task {task.name!r}"
        templar = self.shared.templar
        args = templar.render_value(task.args, scope, source=task.source, what=what)
        if task.module == "debug" and args.get("var"):
            args["value"] = templar.evaluate(str(args["var"]), scope, source=task.source, what=what)
        if task.module == "assert":
            that = args.get("that")
            conditions = that if isinstance(that, list) else [that]
            args["that"] = [str(c) for c in conditions]
            args["results"] = [bool(templar.evaluate(str(c), scope, source=task.source, what=what)) if isinstance(
                c, str) else bool(c) for c in conditions]
        try:
            args = cls.coerce(args)
            module.check_args(args)
        except ProvisionError as exc:
            exc.source = exc.source or task.source
            raise
        self.shared.redactor.add(str(args[name]) for name in cls.secret_args() if args.get(name))
        if task.module in ("command", "shell"):
            self._warn_secret_on_command_line(task, args)
        become_user = self.become_user_of(task, scope, inherited)
        check = self.shared.options.check if task.check_mode is None else _truthy(
            templar.render_value(task.check_mode, scope))
        connection = self.shared.local if task.delegate_to else self.host.connect(self.shared)
        ctx = HostContext(connection, host=self.host.name, variables=templar.variables(scope), check=check,
                          diff=self.shared.options.diff, become_user=become_user, renderer=self.shared.render_file,
                          file_dirs=self.shared.file_dirs,
                          after_change=AfterChange(self.host.probes, become_user,
                                                   lambda: self.lookahead.next_probes(task, become_user,
                                                                                      module.probe(args))),
                          timeout=_number(templar, task.timeout, scope, task, "timeout"))
        timeout = ctx.timeout
        retries = int(_number(templar, task.retries, scope, task, "retries") or 0)
        delay = _number(templar, task.delay, scope, task, "delay") or 0.0
        attempt = 0
        while True:
            state = self.lookahead.probe(task, module, args, become_user, connection, fresh=attempt > 0)
            result = self._run_module(module, args, ctx, state, timeout)
            result = self._apply_conditions(task, result, scope)
            if not task.until or (result.status == "failed" and attempt >= retries):
                break
            registered = {**scope, **({task.register: _register(result)} if task.register else {})}
            if all(templar.evaluate(str(c), registered, source=task.source, what="until") for c in task.until):
                break
            attempt += 1
            if attempt > retries:
                result = TaskResult.failed(f"gave up after {retries} retries: until condition never held\n"
                                           f"{result.msg}".rstrip(), **result.data)
                break
            if self.shared.cancel.wait(delay):
                break
        if result.data.get("attempts") is None and task.until:
            result.data["attempts"] = attempt + 1
        return result

    def _warn_secret_on_command_line(self, task: Task, args: dict[str, Any]) -> None:
        line = " ".join(str(part) for part in _list_of(args.get("cmd") or args.get("argv") or ""))
        if self.shared.redactor(line) == line or task.id in self._warned:
            return
        self._warned.add(task.id)
        self.shared.reporter.warning(
            f"task {task.name!r} ({task.source}) puts a secret on a command line: any user on the host can "
            "read it in `ps` or /proc while it runs; pass it on stdin (the stdin: argument) or in a file "
            "with mode 0600 instead", host=self.host.name)

    def _run_module(self, module: Module, args: dict[str, Any], ctx: HostContext, state: str | None,
                    timeout: float | None) -> TaskResult:
        try:
            return module.run(args, ctx, state)
        except ProvisionError:
            raise
        except Exception as exc:  # a module bug must fail one task, not the whole run
            detail = traceback.format_exc() if self.shared.options.verbosity >= 2 else ""
            return TaskResult.failed(f"internal error in module {module.name!r}: {type(exc).__name__}: {exc}\n"
                                     f"{detail}".rstrip())

    def _apply_conditions(self, task: Task, result: TaskResult, scope: dict[str, Any]) -> TaskResult:
        if task.changed_when is None and task.failed_when is None:
            return result
        templar = self.shared.templar
        registered = {**scope, **(result.data or {}), **{"rc": result.data.get("rc")}}
        if task.register:
            registered[task.register] = _register(result)
        if task.failed_when is not None:
            failed = any(_truthy(templar.evaluate(str(c), registered, source=task.source, what="failed_when"))
                         if isinstance(c, str) else bool(c) for c in task.failed_when)
            if failed:
                return TaskResult("failed", result.msg or "failed_when condition held", result.diff, result.data)
            if result.status == "failed":
                result = TaskResult("ok", result.msg, result.diff, result.data)
        if task.changed_when is not None and result.status != "failed":
            changed = all(_truthy(templar.evaluate(str(c), registered, source=task.source, what="changed_when"))
                          if isinstance(c, str) else bool(c) for c in task.changed_when)
            result = TaskResult("changed" if changed else "ok", result.msg, result.diff, result.data)
        return result

    # -- helpers -----------------------------------------------------------------------------------

    def item_scope(self, task: Task, variables: dict[str, Any], item: Any, *, index: int = 0,
                   items: list[Any] | None = None) -> dict[str, Any]:
        """The variables of one loop item (the task's own when it has no loop), with loop_control's."""
        if item is _NO_ITEM:
            return variables
        scope = {**variables, task.loop_var: item, "ansible_loop_var": task.loop_var}
        if task.loop_index_var:
            scope[task.loop_index_var] = index
            scope["ansible_index_var"] = task.loop_index_var
        if task.loop_extended and _truthy(self.shared.templar.render_value(task.loop_extended, variables)):
            scope["ansible_loop"] = loop_details(items or [item], index)
        return scope

    def loop_items(self, task: Task, variables: dict[str, Any]) -> list[Any]:
        """The rendered loop, or one pseudo-item for a task without a loop."""
        if task.loop is None:
            return _SINGLE
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
            if not _truthy(value):
                return False
        return True

    def become_user_of(self, task: Task, scope: dict[str, Any], inherited: Inherited) -> str | None:
        """The user a task runs as via sudo, or None for the login user (task, block, play, host)."""
        templar = self.shared.templar
        spec = self.host.spec
        become = next((v for v in (task.become, inherited.become, self.play.become) if v is not None), None)
        enabled = spec.become if become is None else _truthy(templar.render_value(become, scope))
        if not enabled:
            return None
        user = next((v for v in (task.become_user, inherited.become_user, self.play.become_user) if v), None)
        return str(templar.render_value(user, scope)) if user else (spec.become_user or "root")

    def _ignored(self, task: Task, inherited: Inherited, scope: dict[str, Any]) -> bool:
        value = task.ignore_errors or inherited.ignore_errors
        return _truthy(self.shared.templar.render_value(value, scope)) if value else False

    def _item_label(self, task: Task, scope: dict[str, Any], item: Any) -> str:
        if task.loop_label is not None:
            return str(self.shared.templar.render_value(task.loop_label, scope))
        if isinstance(item, dict) and "name" in item:
            return str(item["name"])
        return json.dumps(item, default=str) if isinstance(item, dict | list) else str(item)

    def _shown_name(self, task: Task, variables: dict[str, Any]) -> str:
        """The task's name rendered (``install {{ app }}``); as written when it cannot be (``{{ item }}``)."""
        if "{" not in task.name:
            return task.name
        try:
            return str(self.shared.templar.render_string(task.name, variables, source=task.source, what="name"))
        except ProvisionError:
            return task.name

    def _report(self, task: Task, result: TaskResult, duration: float, item: str | None, handler: bool,
                ignored: bool, *, item_value: Any = None) -> None:
        data = {} if task.no_log else result.data
        msg = "(output hidden: no_log)" if task.no_log and result.msg else result.msg
        self.shared.reporter.task_done(TaskDone(
            host=self.host.name, task=self.shown_names.get(task.id, task.name), module=task.module or "",
            status=result.status, msg=msg, diff=None if task.no_log else result.diff, duration=duration, item=item,
            ignored=ignored, handler=handler, check=self.shared.options.check, data=data,
            item_value=None if task.no_log else item_value))
        # A module's warnings (e.g. a certificate about to expire) are shown as warning lines/events.
        for warning in [] if task.no_log else result.data.get("warnings") or []:
            self.shared.reporter.warning(str(warning), host=self.host.name)

    def _reached_start(self, task: Task) -> bool:
        """--start-at-task: False for the tasks before the first one whose name matches (a glob)."""
        pattern = self.shared.options.start_at_task
        if pattern is None or self.host.reached_start:
            return True
        if task.name == pattern or fnmatch.fnmatchcase(task.name, pattern):
            self.host.reached_start = True
        return self.host.reached_start

    def _meta(self, task: Task) -> None:
        action = task.args.get("action")
        if action == "flush_handlers":
            self.flush_handlers()
        elif action == "end_host":
            self.ended = True


_NO_ITEM: Any = object()
_SINGLE: list[Any] = [_NO_ITEM]


def loop_details(items: list[Any], index: int) -> dict[str, Any]:
    """``ansible_loop`` of ``loop_control: {extended: true}``, as Ansible fills it."""
    length = len(items)
    return {
        "allitems": items, "index": index + 1, "index0": index, "revindex": length - index,
        "revindex0": length - index - 1, "first": index == 0, "last": index == length - 1, "length": length,
        "previtem": items[index - 1] if index else None, "nextitem": items[index + 1] if index + 1 < length else None,
    }
def _list_of(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _number(templar: Any, value: Any, scope: dict[str, Any], task: Task, keyword: str) -> float | None:
    """A task keyword holding seconds or a count (``timeout``, ``retries``, ``delay``), rendered and checked."""
    if value is None or value == "":
        return None
    rendered = templar.render_value(value, scope, source=task.source, what=f"task {task.name!r} {keyword}")
    try:
        number = float(rendered)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0 or isinstance(rendered, bool):
        raise TemplateError(f"task {task.name!r}: {keyword} must be a number of at least 0, not {rendered!r}",
                            source=task.source)
    return number or None if keyword == "timeout" else number


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


def _register(result: TaskResult) -> dict[str, Any]:
    data = dict(result.data)
    data.update(changed=result.status == "changed", failed=result.status == "failed", msg=result.msg)
    if result.status == "skipped":
        data["skipped"] = True
    return data


def _aggregate(results: list[tuple[TaskResult, Any]], *, looped: bool) -> _Outcome:
    statuses = [r.status for r, _ in results]
    if "failed" in statuses:
        status = "failed"
    elif "changed" in statuses:
        status = "changed"
    elif statuses and all(s == "skipped" for s in statuses):
        status = "skipped"
    else:
        status = "ok"
    if not looped:
        return _Outcome(status, _register(results[0][0]) if results else {"skipped": True})
    per_item = [{**_register(r), "item": item} for r, item in results]
    return _Outcome(status, {"results": per_item, "changed": status == "changed", "failed": status == "failed",
                             "skipped": status == "skipped", "msg": "All items completed"})


def _count(stats: HostStats, status: str, ignored: bool) -> None:
    if status == "failed":
        if ignored:
            stats.ignored += 1
        else:
            stats.failed += 1
    elif status == "skipped":
        stats.skipped += 1
    else:
        stats.ok += 1
        if status == "changed":
            stats.changed += 1

