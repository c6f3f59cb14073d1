"""One play on one host: the task loop with when/loop/register/notify, blocks, handlers, retries.

The runner starts one ``HostRun`` per host per play in a worker thread. Everything that is about
a single host lives here; what is about many hosts (batches, forks, failure thresholds, recap)
lives in ``runner.py``. How a task is evaluated (its variables, loop, conditions, become user) is
``evaluation.py``; which facts travel when is ``lookahead.py``; applying a module is ``apply.py``.
"""

from __future__ import annotations

import fnmatch
import json
import time
import traceback
from dataclasses import dataclass
from typing import Any

from .apply import execute_module
from .context import AfterChange, HostContext
from .contract import Module, TaskResult
from .errors import ConnectError, ProvisionError, TemplateError
from .evaluation import NO_ITEM, SINGLE, Inherited, TaskEvaluation, truthy
from .events import HostStats, TaskDone, TaskStarted
from .lookahead import Lookahead
from .playbook import Play, Task
from .registry import get_module
from .runstate import HostState, RunShared
from .secrets import secret_values
from .variables import VariableLayers


@dataclass
class _Outcome:
    """A task's aggregate result on this host (all loop items)."""

    status: str
    register: dict[str, Any]


class HostRun:
    """Runs one play's tasks (and handlers) on one host."""

    def __init__(self, play: Play, host: HostState, shared: RunShared, layers: VariableLayers) -> None:
        self.play = play
        self.host = host
        self.shared = shared
        self.evaluation = TaskEvaluation(play, host, shared, layers)
        self.notified: list[str] = []
        self.shown_names: dict[int, str] = {}  # task id -> its rendered name
        self.failed = False
        self.ended = False
        self.lookahead = Lookahead(self.evaluation)
        self._warned: set[int] = set()  # tasks already warned about a secret on their command line

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

    def run_task(self, task: Task, *, handler: bool = False) -> None:
        if not handler and not self.evaluation.selected(task):
            return
        if not handler and not self._reached_start(task):
            return
        if _module_class(task).steers_run:
            self._meta(task)
            return
        variables = self.evaluation.variables(task)
        inherited = self.evaluation.inherited.get(task.id, Inherited())
        conditions = [*inherited.when, *task.when]
        self.shown_names[task.id] = self._shown_name(task, variables)
        self.shared.reporter.task_started(TaskStarted(self.host.name, self.shown_names[task.id], task.module or ""))
        try:
            items = self.evaluation.loop_items(task, variables)
        except ProvisionError as exc:
            self._finish(task, _Outcome("failed", {"failed": True, "msg": str(exc)}), [], handler,
                         inherited, variables)
            self._report(task, TaskResult.failed(str(exc)), 0.0, None, handler, self.evaluation.ignored(task, inherited,
                                                                                           variables))
            return
        results: list[tuple[TaskResult, Any]] = []
        pause = float(self.shared.templar.render_value(task.loop_pause, variables) or 0) if task.loop_pause else 0.0
        for index, item in enumerate(items):
            if self.shared.cancel.is_set() or self.host.unreachable:
                break
            if index and pause and self.shared.cancel.wait(pause):
                break
            scope = self.evaluation.item_scope(task, variables, item, index=index, items=items)
            started = time.monotonic()
            result = self._execute_item(task, scope, conditions, inherited)
            if self.host.unreachable:
                return
            results.append((result, item))
            ignored = result.status == "failed" and self.evaluation.ignored(task, inherited, scope)
            self._report(task, result, time.monotonic() - started, None if item is NO_ITEM else
                         self.evaluation.item_label(task, scope, item), handler, ignored, item_value=item)
        if self.host.unreachable:
            return
        outcome = _aggregate(results, looped=items is not SINGLE)
        self._finish(task, outcome, results, handler, inherited, variables)

    def _execute_item(self, task: Task, scope: dict[str, Any], conditions: list[Any],
                      inherited: Inherited) -> TaskResult:
        try:
            if not self.evaluation.conditions_hold(task, conditions, scope):
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
            self.evaluation.set_runtime({task.register: outcome.register},
                                        f"register of task {task.name!r} ({task.source})")
        sets_variables = _module_class(task).sets_variables
        for result, _item in results:
            facts = result.data.get("facts") if sets_variables else None
            if facts and result.status != "failed":
                self.evaluation.set_runtime(facts, f"set_fact task {task.name!r} ({task.source})")
        ignored = outcome.status == "failed" and self.evaluation.ignored(task, inherited, variables)
        _count(self.host.stats, outcome.status, ignored)
        if outcome.status == "changed":
            for name in task.notify:
                if name not in self.notified:
                    self.notified.append(name)
        if outcome.status == "failed" and not ignored:
            self.failed = True
            self.shared.host_failed(self.host.name)

    def execute(self, task: Task, scope: dict[str, Any], inherited: Inherited) -> TaskResult:
        """Render, read its facts, let the engine apply the module, then until/changed_when/failed_when: one item."""
        cls = get_module(task.module or "")
        assert cls is not None
        module = cls()
        what = f"task {task.name!r}"
        templar = self.shared.templar
        args = templar.render_value(task.args, scope, source=task.source, what=what)
        module.prepare(args, lambda expression: templar.evaluate(expression, scope, source=task.source, what=what))
        try:
            args = cls.coerce(args)
            module.check_args(args)
        except ProvisionError as exc:
            exc.source = exc.source or task.source
            raise
        self.shared.redactor.add(str(args[name]) for name in cls.secret_args() if args.get(name))
        self.shared.redactor.add(secret_values({"json_args": [_json_mapping(args[name]) for name in cls.secret_args()
                                                              if args.get(name)]}))
        if cls.runs_command_line:
            self._warn_secret_on_command_line(task, args)
        become_user = self.evaluation.become_user_of(task, scope, inherited)
        check = self.shared.options.check if task.check_mode is None else truthy(
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
            return execute_module(module, args, ctx, state)
        except ProvisionError:
            raise
        except Exception as exc:  # a module bug must fail one task, not the whole run
            detail = traceback.format_exc() if self.shared.options.verbosity >= 2 else ""
            return TaskResult.failed(f"internal error in module {module.name!r}: {type(exc).__name__}: {exc}\n"
                                     f"{detail}".rstrip())

    def _apply_conditions(self, task: Task, result: TaskResult, scope: dict[str, Any]) -> TaskResult:
        if (task.changed_when is None and task.failed_when is None) or result.status == "skipped":
            return result  # a skipped task (check mode, a guard) has no output to judge, as in Ansible
        templar = self.shared.templar
        registered = {**scope, **(result.data or {}), **{"rc": result.data.get("rc")}}
        if task.register:
            registered[task.register] = _register(result)
        if task.failed_when is not None:
            failed = any(truthy(templar.evaluate(str(c), registered, source=task.source, what="failed_when"))
                         if isinstance(c, str) else bool(c) for c in task.failed_when)
            if failed:
                return TaskResult("failed", result.msg or "failed_when condition held", result.diff, result.data)
            if result.status == "failed":
                result = TaskResult("ok", result.msg, result.diff, result.data)
        if task.changed_when is not None and result.status != "failed":
            changed = all(truthy(templar.evaluate(str(c), registered, source=task.source, what="changed_when"))
                          if isinstance(c, str) else bool(c) for c in task.changed_when)
            result = TaskResult("changed" if changed else "ok", result.msg, result.diff, result.data)
        return result

    # -- helpers -----------------------------------------------------------------------------------

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



def _json_mapping(value: Any) -> Any:
    """A secret argument holding a JSON object (a site_config.json): its credential-named values are secret too."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


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



def _module_class(task: Task) -> type[Module]:
    cls = get_module(task.module or "")
    assert cls is not None, task.module  # playbook.py refused unknown modules
    return cls
