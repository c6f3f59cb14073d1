"""One play on one host: the task loop with when/loop/register/notify, blocks, handlers, retries.

The runner starts one ``HostRun`` per host per play in a worker thread. Everything that is about
a single host lives here; what is about many hosts (batches, forks, failure thresholds, recap)
lives in ``runner.py``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .connection import Connection
from .context import AfterChange, HostContext
from .errors import ConnectError, ProvisionError, TemplateError
from .events import HostStats, TaskDone, TaskStarted
from .playbook import Play, Task
from .probes import ProbeKey, batch_script, new_nonce, split_answers
from .runstate import HostState, RunShared
from .tasks import get_module
from .tasks.base import Module, TaskResult

LOOKAHEAD = 64  # tasks probed ahead in one batch
MAX_LOOKAHEAD_KEYS = 512  # probes in one batch (loops expand to one per item)
POST_CHANGE_PROBES = 4  # probes re-sent at the end of a changing script
_STOP_LOOKAHEAD = {"set_fact", "meta", "pause"}


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
        self.failed = False
        self.ended = False
        self.inherited: dict[int, Inherited] = {}
        self.schedule: list[Task] = []
        self.position: dict[int, int] = {}
        for tasks in (play.pre_tasks, play.tasks, play.post_tasks):
            self._plan(tasks, Inherited())
        for handler in play.handlers:
            self.inherited[handler.id] = Inherited()

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
        if task.module == "meta":
            self._meta(task)
            return
        variables = self.variables(task)
        inherited = self.inherited.get(task.id, Inherited())
        conditions = [*inherited.when, *task.when]
        self.shared.reporter.task_started(TaskStarted(self.host.name, task.name, task.module or ""))
        try:
            items = self._loop_items(task, variables)
        except ProvisionError as exc:
            self._finish(task, _Outcome("failed", {"failed": True, "msg": str(exc)}), [], handler,
                         inherited, variables)
            self._report(task, TaskResult.failed(str(exc)), 0.0, None, handler, self._ignored(task, inherited,
                                                                                           variables))
            return
        results: list[tuple[TaskResult, Any]] = []
        for item in items:
            if self.shared.cancel.is_set() or self.host.unreachable:
                break
            scope = variables if item is _NO_ITEM else {**variables, task.loop_var: item}
            started = time.monotonic()
            result = self._execute_item(task, scope, conditions, inherited)
            if self.host.unreachable:
                return
            results.append((result, item))
            ignored = result.status == "failed" and self._ignored(task, inherited, scope)
            self._report(task, result, time.monotonic() - started, None if item is _NO_ITEM else
                         self._item_label(task, scope, item), handler, ignored)
        if self.host.unreachable:
            return
        outcome = _aggregate(results, looped=items is not _SINGLE)
        self._finish(task, outcome, results, handler, inherited, variables)

    def _execute_item(self, task: Task, scope: dict[str, Any], conditions: list[Any],
                      inherited: Inherited) -> TaskResult:
        try:
            if not self._conditions_hold(task, conditions, scope):
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
        become_user = self._become_user(task, scope, inherited)
        check = self.shared.options.check if task.check_mode is None else _truthy(
            templar.render_value(task.check_mode, scope))
        connection = self.shared.local if task.delegate_to else self.host.connect(self.shared)
        ctx = HostContext(connection, host=self.host.name, variables=templar.variables(scope), check=check,
                          diff=self.shared.options.diff, become_user=become_user, renderer=self.shared.render_file,
                          file_dirs=self.shared.file_dirs,
                          after_change=AfterChange(self.host.probes, become_user,
                                                   lambda: self._next_probes(task, become_user,
                                                                             module.probe(args))))
        timeout = float(task.timeout) if task.timeout else None
        retries = int(templar.render_value(task.retries, scope)) if task.retries is not None else 0
        delay = float(templar.render_value(task.delay, scope) or 0)
        attempt = 0
        while True:
            state = self.probe(task, module, args, become_user, connection, fresh=attempt > 0)
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

    # -- probing with lookahead --------------------------------------------------------------------

    def probe(self, task: Task, module: Module, args: dict[str, Any], become_user: str | None,
              connection: Connection, *, fresh: bool) -> str | None:
        """The module's probe answer: from the cache, or from one batch covering upcoming tasks too."""
        script = module.probe(args)
        if script is None:
            return None
        if task.delegate_to or fresh:
            return HostContext(connection, host=self.host.name, variables={},
                               become_user=become_user).run(script, readonly=True).stdout
        key: ProbeKey = (become_user, script)
        cached = self.host.probes.get(key)
        if cached is not None:
            return cached
        ahead = [k for k in (*self._own_items(task), *self._lookahead(task)) if self.host.probes.get(k) is None]
        answers = self._send_batch([key, *ahead], connection)
        return answers.get(key, "")

    def _send_batch(self, keys: list[ProbeKey], connection: Connection) -> dict[ProbeKey, str]:
        """Run the probes, one script per user; ``keys[0]`` is the current task's, the rest lookahead."""
        by_user: dict[str | None, list[str]] = {}
        for user, script in dict.fromkeys(keys):
            by_user.setdefault(user, []).append(script)
        answers: dict[ProbeKey, str] = {}
        current_user = keys[0][0]
        for user, scripts in by_user.items():
            nonce = new_nonce()
            result = HostContext(connection, host=self.host.name, variables={}, become_user=user).run(
                batch_script(scripts, nonce), readonly=True)
            if result.rc != 0 and not result.stdout:
                if user != current_user:
                    # A look ahead as a user that does not exist yet (an earlier task creates it):
                    # those tasks are probed when they come.
                    continue
                if result.rc < 0:
                    raise ConnectError(f"host {self.host.name}: state check cut off: {result.tail()}")
                raise ProvisionError(f"state check as {user or 'the login user'} failed (exit {result.rc}): "
                                     f"{result.tail()}")
            for script, answer in zip(scripts, split_answers(result.stdout, len(scripts), nonce), strict=True):
                if answer is not None:
                    answers[(user, script)] = answer
        self.host.probes.store(answers)
        self.host.probes.batches += 1
        return answers

    def _next_probes(self, task: Task, user: str | None, current: str | None) -> list[str]:
        """Probes to run right after a change by ``task``: its next loop items, then the next tasks'.

        Only a few: when one task changes, the next often does too (a cold run), and every probe
        re-sent after each change would make a cold run quadratic. A converged run never gets
        here; its first batch covers everything.
        """
        if task.delegate_to or task.id not in self.position:
            return []
        own = [script for owner, script in self._own_items(task) if owner == user]
        if current in own:
            own = own[own.index(current) + 1:]
        scripts = list(dict.fromkeys(own))[:POST_CHANGE_PROBES]
        if len(scripts) < POST_CHANGE_PROBES:
            ahead = [s for owner, s in self._lookahead(task, max_keys=POST_CHANGE_PROBES * 4) if owner == user]
            scripts = list(dict.fromkeys([*scripts, *ahead]))[:POST_CHANGE_PROBES]
        return scripts

    def _own_items(self, task: Task) -> list[ProbeKey]:
        """Probe keys of every item of a loop task (the later items are probed with the first)."""
        if task.loop is None:
            return []
        try:
            return self._task_keys(task)
        except Exception:  # a task we cannot pre-render is probed item by item
            return []

    def _lookahead(self, current: Task, *, max_keys: int = MAX_LOOKAHEAD_KEYS) -> list[ProbeKey]:
        """Probe keys of the next tasks whose arguments can be known now (at most ``max_keys``)."""
        start = self.position.get(current.id)
        if start is None:
            return []
        keys: list[ProbeKey] = []
        registered = {current.register} if current.register else set()
        for task in self.schedule[start + 1:start + 1 + LOOKAHEAD]:
            if task.module in _STOP_LOOKAHEAD or any(_mentions(task, name) for name in registered):
                break
            if task.register:
                registered.add(task.register)
            if task.delegate_to or not self.selected(task):
                continue
            try:
                keys.extend(self._task_keys(task))
            except (ProvisionError, Exception):
                break
            if len(keys) >= max_keys:
                break
        return keys[:max_keys]

    def _task_keys(self, task: Task) -> list[ProbeKey]:
        cls = get_module(task.module or "")
        if cls is None or cls.probe is Module.probe:
            return []
        module = cls()
        variables = self.variables(task)
        inherited = self.inherited.get(task.id, Inherited())
        conditions = [*inherited.when, *task.when]
        keys: list[ProbeKey] = []
        for item in self._loop_items(task, variables):
            scope = variables if item is _NO_ITEM else {**variables, task.loop_var: item}
            if not self._conditions_hold(task, conditions, scope):
                continue
            args = cls.coerce(self.shared.templar.render_value(task.args, scope))
            script = module.probe(args)
            if script is not None:
                keys.append((self._become_user(task, scope, inherited), script))
        return keys

    # -- helpers -----------------------------------------------------------------------------------

    def _loop_items(self, task: Task, variables: dict[str, Any]) -> list[Any]:
        if task.loop is None:
            return _SINGLE
        items = self.shared.templar.render_value(task.loop, variables, source=task.source,
                                                 what=f"task {task.name!r} loop")
        if isinstance(items, str | bytes) or not isinstance(items, list | tuple):
            raise TemplateError(f"task {task.name!r}: loop must be a list, got {type(items).__name__}",
                                source=task.source, hint="e.g. loop: \"{{ range(1, 4) | list }}\"")
        return list(items)

    def _conditions_hold(self, task: Task, conditions: list[Any], scope: dict[str, Any]) -> bool:
        for condition in conditions:
            if isinstance(condition, bool):
                value: Any = condition
            else:
                value = self.shared.templar.evaluate(str(condition), scope, source=task.source, what="when")
            if not _truthy(value):
                return False
        return True

    def _become_user(self, task: Task, scope: dict[str, Any], inherited: Inherited) -> str | None:
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
        return str(item) if not isinstance(item, dict) else str(item.get("name", item))

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


_NO_ITEM: Any = object()
_SINGLE: list[Any] = [_NO_ITEM]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


def _mentions(task: Task, name: str) -> bool:
    text = repr((task.args, task.when, task.loop, task.vars))
    return name in text


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

