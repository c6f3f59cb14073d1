"""Change batching, the engine's side: which upcoming task items may travel with a change.

When a task item is about to change the host, ``ChangeBatcher.run`` plans the items that follow
(the rest of its loop, then the next tasks of the same list) from the probe answers already in
hand, and sends every qualifying change in one script on one channel (``provision.changebatch``).
The host checks each part's answer again just before the part, so a part runs only on the state
it was planned from; a part that fails, or whose answer changed, stops the batch there. The one
exception needs no check: a part planned from the exact prediction (``Plan.predicts_exactly``)
of the change right before it, which succeeded, or the batch would have stopped. The
results of the later parts wait in a queue until the host run reaches their task (``take``), so
each is reported, registered and counted as its own task, in order, exactly as without batching.

What may join a batch is decided conservatively, task by task; the first that does not qualify
ends it: a block, a meta/set_fact/lookahead-stopping or older ``run`` module, ``delegate_to``,
``until``/``retries``, ``loop_control.pause``, a task ``timeout``/``check_mode``, a different
become user, anything mentioning a ``register`` of the batch's tasks, a plan that reads the host
itself, fails, has ``then``/``control_host``/its own timeout, or an ``outcome`` that may fail on
exit 0; ``failed_when`` ends the batch after its item. Handlers, check mode, diff mode and plays
with ``any_errors_fatal``/``max_fail_percentage`` never batch. ``--no-batch`` (or
``PROVISION_NO_BATCH=1``) turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .apply import PlanReader, apply_plan, ran_result
from .changebatch import MAX_EXPECTED, BatchPart, batch_change_script, split_batch_output
from .context import HostContext
from .contract import CommandResult, Fact, Plan, T, TaskResult, outcome_rc_decides
from .evaluation import Inherited, TaskEvaluation
from .lookahead import MAX_LOOKAHEAD_KEYS, Lookahead
from .playbook import Task
from .probes import ProbeKey, new_nonce
from .registry import get_module

MAX_PARTS = 256  # task items in one batch script


def batching_enabled(options: Any) -> bool:
    """On unless ``--no-batch`` or ``PROVISION_NO_BATCH=1``; never in check or diff mode."""
    if os.environ.get("PROVISION_NO_BATCH", "") not in ("", "0"):
        return False
    return bool(getattr(options, "batch_changes", True)) and not options.check and not options.diff


@dataclass
class Current:
    """The task item that is about to change the host."""

    task: Task
    index: int
    items: list[Any]
    variables: dict[str, Any]
    inherited: Inherited
    become_user: str | None
    probe: str | None = None  # the read its plan was made from
    own_items_only: bool = False  # an earlier item of the loop failed: the tasks after it wait


@dataclass
class _Entry:
    task: Task
    index: int
    plan: Plan
    part: BatchPart
    probe: str | None = None  # the read it was planned from (the part checks it unless that is certain)


class _Stop(Exception):
    """This item (and so everything after it) does not join the batch."""


class ChangeBatcher:
    """Batches one host's changes within a play (see the module docstring)."""

    def __init__(self, evaluation: TaskEvaluation, lookahead: Lookahead) -> None:
        self.run_ = evaluation
        self.lookahead = lookahead
        self.enabled = (batching_enabled(evaluation.shared.options) and not evaluation.play.any_errors_fatal
                        and evaluation.play.max_fail_percentage is None)
        self._ready: dict[tuple[int, int], tuple[TaskResult, float | None]] = {}
        self._siblings: dict[int, tuple[list[Task], int]] = {}
        self._predicted: dict[str, str | None] = {}
        self._exact: str | None = None  # the probe the last change in the batch predicted exactly
        play = evaluation.play
        for tasks in (play.pre_tasks, play.tasks, play.post_tasks):
            self._index(tasks)
        self.batches = 0

    def index_included(self, tasks: list[Task]) -> None:
        """Tasks a dynamic include read at run time may batch with each other, as the play's do."""
        self._index(tasks)

    def _index(self, tasks: list[Task]) -> None:
        for position, task in enumerate(tasks):
            self._siblings[task.id] = (tasks, position)
            if task.is_block:
                for inner in (task.block or [], task.rescue, task.always):
                    self._index(inner)

    # -- the queue the host run reads --------------------------------------------------------------

    def take(self, task: Task, index: int) -> tuple[TaskResult, float | None] | None:
        """The result (and host-side duration) of an item that already ran in a batch, if it did."""
        return self._ready.pop((task.id, index), None)

    def forget(self) -> None:
        self._ready.clear()

    # -- one batch ---------------------------------------------------------------------------------

    def run(self, current: Current, plan: Plan, ctx: HostContext) -> tuple[TaskResult, float | None] | None:
        """Apply ``plan`` with the changes that may follow it in one script; None: it runs alone."""
        if not (self.enabled and _batchable(plan) and ctx.timeout is None and current.task.id in self._siblings
                and not _task_stops(current.task)):
            return None
        entries = [_Entry(current.task, current.index, plan,
                          BatchPart(plan.script, plan.stdin, direct=plan.reads_stdin_first, inline=plan.inline))]
        # What each read will answer by the time a later part runs, as far as the plans tell.
        self._predicted = {}
        self._exact = current.probe if plan.predicts_exactly else None
        if current.probe is not None:
            self._predicted[current.probe] = plan.predicts
        if current.task.failed_when is None:
            for entry in self._upcoming(current, ctx):
                entries.append(entry)
                if entry.task.failed_when is not None or len(entries) >= MAX_PARTS:
                    break
        if len(entries) == 1:
            return None
        user = current.become_user
        probes = self._follow_up(entries, user)
        nonce = new_nonce()
        script, stdin = batch_change_script([e.part for e in entries], probes, nonce)
        cache = self.run_.host.probes
        try:
            result = ctx.connection.run(script, stdin=stdin or None, become_user=user, timeout=None)
        finally:
            cache.invalidate()
        self.batches += 1
        outcome = split_batch_output(result, len(entries), len(probes), nonce)
        if outcome.stale is not None and result.rc >= 0:
            stale = entries[outcome.stale[0]].part.probe
            if stale is not None:
                cache.store({(user, stale): outcome.stale[1]})
        if outcome.answers is not None and result.rc >= 0:
            cache.store({(user, p): a for p, a in zip(probes, outcome.answers, strict=True) if a is not None})
        first: tuple[TaskResult, float | None] | None = None
        for run in outcome.runs:
            entry = entries[run.index]
            # A converged part only had its answer checked: its result is the plan's own (no host access).
            done = ran_result(entry.plan, run.result, None) if entry.part.script else apply_plan(entry.plan, ctx)
            if run.index == 0:
                first = (done, run.duration)
            else:
                self._ready[(entry.task.id, entry.index)] = (done, run.duration)
        if first is None:  # the script never reached the first part (cut, refused): as a lone run would
            first = (ran_result(plan, CommandResult(result.rc or 1, result.stdout, result.stderr), None), None)
        return first

    def _follow_up(self, entries: list[_Entry], user: str | None) -> list[str]:
        """Probes to run after the parts: the parts' own (for a stop), then the tasks after the last."""
        last = entries[-1].task
        keys: list[ProbeKey] = [(user, e.probe) for e in entries[1:] if e.probe is not None]
        keys += self.lookahead.own_items(last) + self.lookahead.keys_after(last)
        return list(dict.fromkeys(s for u, s in keys if u == user))[:MAX_LOOKAHEAD_KEYS]

    def _upcoming(self, current: Current, ctx: HostContext) -> Iterator[_Entry]:
        """The items after the current one that may join its batch, in order, up to the first that may not."""
        registered = {current.task.register} if current.task.register else set()
        try:
            for index in range(current.index + 1, len(current.items)):
                entry = self._item(current.task, current.variables, current.items, index, current, ctx)
                if entry is not None:
                    yield entry
            if current.own_items_only:
                return
            siblings, position = self._siblings[current.task.id]
            for task in siblings[position + 1:]:
                if task.is_block or _task_stops(task) or any(_mentions(task, self.run_.inherited.get(task.id), name)
                                                             for name in registered):
                    return
                if task.register:
                    registered.add(task.register)
                if not self.run_.selected(task):
                    continue
                variables = self.run_.variables(task)
                items = self.run_.loop_items(task, variables)
                for index in range(len(items)):
                    entry = self._item(task, variables, items, index, current, ctx)
                    if entry is not None:
                        yield entry
                    if task.failed_when is not None:
                        return
        except _Stop:
            return
        except Exception:  # anything not knowable now (a bad template, a later fact): stop here
            return

    def _item(self, task: Task, variables: dict[str, Any], items: list[Any], index: int, current: Current,
              ctx: HostContext) -> _Entry | None:
        """One later item's part, None when its ``when`` skips it; raises _Stop when it may not join."""
        run = self.run_
        templar = run.shared.templar
        inherited = run.inherited.get(task.id, Inherited())
        scope = run.item_scope(task, variables, items[index], index=index, items=items)
        if not run.conditions_hold(task, [*inherited.when, *task.when], scope):
            return None
        cls = get_module(task.module or "")
        assert cls is not None
        module = cls()
        what = f"task {task.name!r}"
        args = templar.render_value(task.args, scope, source=task.source, what=what)
        module.prepare(args, lambda expression: templar.evaluate(expression, scope, source=task.source, what=what))
        args = cls.coerce(args)
        module.check_args(args)
        if run.become_user_of(task, scope, inherited) != current.become_user:
            raise _Stop
        run.shared.redactor.add(str(args[name]) for name in cls.secret_args() if args.get(name))
        fact = module.facts(args)
        probe = fact.command() if fact is not None else None
        answer = None
        # Planned from the exact prediction of the change right before it: nothing to check on the host.
        certain = probe is not None and probe == self._exact
        if probe is not None:
            # An earlier part changes what this one reads: planned from that part's prediction, if any.
            answer = (self._predicted[probe] if probe in self._predicted
                      else run.host.probes.get((current.become_user, probe)))
            if answer is None or len(answer) > MAX_EXPECTED:
                raise _Stop
        item_ctx = HostContext(ctx.connection, host=run.host.name, variables=templar.variables(scope),
                               become_user=current.become_user, renderer=run.shared.render_file,
                               file_dirs=run.shared.file_dirs)
        plan = module.plan(args, fact.parse(answer or "") if fact is not None else None, _NoReads(item_ctx))
        if plan.error is not None or (plan.changes and not _batchable(plan)):
            raise _Stop
        script = plan.script if plan.changes else ""
        if script:  # a change: what the host answers now is this part's doing
            self._exact = probe if plan.predicts_exactly else None
            if probe is not None:
                self._predicted[probe] = plan.predicts
        # Planned from "absent": the host checks that with the shell's tests alone (no process).
        absent = (fact.absent_path() if fact is not None and answer is not None
                  and answer.partition("\n")[0] == "absent" else None)
        # A file write's path: its fsync (of a new file) may wait for the batch's one sync after its parts.
        written = fact.absent_path() if fact is not None and script else None
        checked = None if certain else probe
        return _Entry(task, index, plan, BatchPart(script, plan.stdin if script else None, checked,
                                                   answer if checked else None, absent if checked else None,
                                                   written, direct=bool(script) and plan.reads_stdin_first,
                                                   inline=plan.inline),
                      probe)


class _NoReads(PlanReader):
    """A plan made ahead of its turn may not read the host: what it read could be stale by then."""

    def read(self, fact: Fact[T]) -> T:
        raise _Stop


def _batchable(plan: Plan) -> bool:
    return (bool(plan.script) and plan.control_host is None and plan.then is None and plan.timeout is None
            and plan.error is None and outcome_rc_decides(plan.outcome))


def _task_stops(task: Task) -> bool:
    """Task keywords that keep a task out of any batch (it runs as without batching)."""
    cls = get_module(task.module or "")
    if cls is None or cls.steers_run or cls.sets_variables or cls.stops_lookahead or not cls.plans():
        return True
    return bool(task.delegate_to or task.until or task.retries or task.loop_pause or task.timeout
                or task.check_mode is not None)


def _mentions(task: Task, inherited: Inherited | None, name: str) -> bool:
    """Whether ``task`` may read ``name`` (a registered result) anywhere it is evaluated."""
    text = repr((task.name, task.args, task.when, task.loop, task.vars, task.changed_when, task.failed_when,
                 task.become, task.become_user, task.ignore_errors, task.loop_label, task.loop_extended,
                 task.notify, inherited.when if inherited else (), inherited.vars if inherited else {}))
    return name in text


__all__ = ["ChangeBatcher", "Current", "batching_enabled"]
