"""One play on one host: the task loop with when/loop/register/notify, blocks, handlers, retries.

The runner starts one ``HostRun`` per host per play in a worker thread. Everything that is about
a single host lives here; what is about many hosts (batches, forks, failure thresholds, recap)
lives in ``runner.py``. How a task is evaluated (its variables, loop, conditions, become user) is
``evaluation.py``; which facts travel when is ``lookahead.py``; applying a module is ``apply.py``.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from .apply import execute_module
from .context import AfterChange, HostContext
from .contract import Module, TaskResult
from .errors import ConnectError, ProvisionError
from .evaluation import NO_ITEM, SINGLE, Inherited, TaskEvaluation, truthy
from .events import HostStats, TaskDone, TaskStarted
from .lookahead import Lookahead
from .playbook import Play, Task
from .registry import get_module
from .runstate import HostState, RunShared
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
        self.failed = False
        self.ended = False
        self.lookahead = Lookahead(self.evaluation)

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
        if _module_class(task).steers_run:
            self._meta(task)
            return
        variables = self.evaluation.variables(task)
        inherited = self.evaluation.inherited.get(task.id, Inherited())
        conditions = [*inherited.when, *task.when]
        self.shared.reporter.task_started(TaskStarted(self.host.name, task.name, task.module or ""))
        try:
            items = self.evaluation.loop_items(task, variables)
        except ProvisionError as exc:
            self._finish(task, _Outcome("failed", {"failed": True, "msg": str(exc)}), [], handler,
                         inherited, variables)
            self._report(task, TaskResult.failed(str(exc)), 0.0, None, handler, self.evaluation.ignored(task, inherited,
                                                                                           variables))
            return
        results: list[tuple[TaskResult, Any]] = []
        for item in items:
            if self.shared.cancel.is_set() or self.host.unreachable:
                break
            scope = self.evaluation.item_scope(task, variables, item)
            started = time.monotonic()
            result = self._execute_item(task, scope, conditions, inherited)
            if self.host.unreachable:
                return
            results.append((result, item))
            ignored = result.status == "failed" and self.evaluation.ignored(task, inherited, scope)
            self._report(task, result, time.monotonic() - started, None if item is NO_ITEM else
                         self.evaluation.item_label(task, scope, item), handler, ignored)
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
        become_user = self.evaluation.become_user_of(task, scope, inherited)
        check = self.shared.options.check if task.check_mode is None else truthy(
            templar.render_value(task.check_mode, scope))
        connection = self.shared.local if task.delegate_to else self.host.connect(self.shared)
        ctx = HostContext(connection, host=self.host.name, variables=templar.variables(scope), check=check,
                          diff=self.shared.options.diff, become_user=become_user, renderer=self.shared.render_file,
                          file_dirs=self.shared.file_dirs,
                          after_change=AfterChange(self.host.probes, become_user,
                                                   lambda: self.lookahead.next_probes(task, become_user,
                                                                                      module.probe(args))))
        timeout = float(task.timeout) if task.timeout else None
        retries = int(templar.render_value(task.retries, scope)) if task.retries is not None else 0
        delay = float(templar.render_value(task.delay, scope) or 0)
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

    def _report(self, task: Task, result: TaskResult, duration: float, item: str | None, handler: bool,
                ignored: bool) -> None:
        data = {} if task.no_log else result.data
        msg = "(output hidden: no_log)" if task.no_log and result.msg else result.msg
        self.shared.reporter.task_done(TaskDone(
            host=self.host.name, task=task.name, module=task.module or "", status=result.status,
            msg=msg, diff=None if task.no_log else result.diff, duration=duration, item=item, ignored=ignored,
            handler=handler, check=self.shared.options.check, data=data))

    def _meta(self, task: Task) -> None:
        action = task.args.get("action")
        if action == "flush_handlers":
            self.flush_handlers()
        elif action == "end_host":
            self.ended = True



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
