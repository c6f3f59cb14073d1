"""The engine's side of the module contract: it applies a module's plan, or in check mode reports it.

A planned module (``facts`` + ``plan``, see ``provision.contract``) never sees check or diff
mode: the engine asks for the diff only in diff mode, runs the plan's script only outside check
mode, and builds every result the same way (``changed`` with ``msg``, ``diff`` and the plan's
``data``). A module that cannot tell what it would do (``supports_check = False``) is skipped in
check mode, as Ansible does. Modules still on the older ``run`` contract are run as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .contract import CommandResult, Fact, FactReadFailed, Module, Plan, RenderedTemplate, T, TaskContext, TaskResult


def execute_module(module: Module, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
    """Run one module on coerced arguments and its probe answer, in the context's mode."""
    decided = decide(module, args, ctx, state)
    return decided if isinstance(decided, TaskResult) else apply_plan(decided, ctx)


def decide(module: Module, args: dict[str, Any], ctx: TaskContext, state: str | None) -> Plan | TaskResult:
    """A planned module's plan; the result itself for a check-mode skip or an older ``run`` module."""
    if ctx.check and not module.supports_check:
        return TaskResult.skipped(module.check_mode_msg(args))
    if not module.plans():
        return module.run(args, ctx, state)
    fact = module.facts(args)
    facts = fact.parse(state or "") if fact is not None else None
    return module.plan(args, facts, PlanReader(ctx))


def apply_plan(plan: Plan, ctx: TaskContext) -> TaskResult:
    """Turn a plan into the task's result: fail, report converged, report (check mode), or change."""
    data = plan.data
    if plan.skipped:
        return TaskResult.skipped(plan.msg, **data)
    if ctx.check and plan.check_skips and (plan.changes or plan.pending or plan.check_msg):
        return TaskResult.skipped((plan.pending if plan.error else plan.check_msg) or f"would {plan.msg}", **data)
    if plan.error is not None:
        if ctx.check and plan.pending:
            return TaskResult.changed(plan.pending, **data)
        return TaskResult.failed(plan.error, **data)
    if not plan.changes:
        return TaskResult.ok(plan.msg, **data)
    diff = plan.diff(PlanReader(ctx)) if ctx.diff and plan.diff is not None else None
    if ctx.check:
        return TaskResult.changed(plan.check_msg or f"would have {plan.msg}", diff=diff, **data)
    if plan.control_host is not None:
        return plan.control_host(ctx)
    result = ctx.run(plan.script, stdin=plan.stdin, timeout=plan.timeout)
    if plan.outcome is not None:
        decided = plan.outcome(result, data)
        if decided is not None:
            return decided
    if plan.then is not None:
        following = plan.then(result, PlanReader(ctx))
        return following if isinstance(following, TaskResult) else apply_plan(following, ctx)
    return ran_result(plan, result, diff, outcome_done=True)


def ran_result(plan: Plan, result: CommandResult, diff: str | None, *, outcome_done: bool = False) -> TaskResult:
    """The result of a plan (without ``then``) whose script ran: its outcome's, failed, or changed."""
    if plan.outcome is not None and not outcome_done:
        decided = plan.outcome(result, plan.data)
        if decided is not None:
            return decided
    if not result.ok:
        return TaskResult.from_command(plan.what or plan.msg, result)
    return TaskResult.changed(plan.msg, diff=diff, **plan.data)


class PlanReader:
    """The ``PlanContext`` a plan gets: a task context that can read facts but not change the host."""

    def __init__(self, ctx: TaskContext) -> None:
        self._ctx = ctx
        self.host = ctx.host
        self.variables = ctx.variables
        self.become_user: str | None = getattr(ctx, "become_user", None)

    def read(self, fact: Fact[T]) -> T:
        result = self._ctx.run(fact.command(), readonly=True, timeout=fact.timeout)
        if fact.checks_exit and not result.ok:
            raise FactReadFailed(result)
        return fact.parse(result.stdout)

    def render_template(self, name: str) -> RenderedTemplate:
        return self._ctx.render_template(name)

    def find_file(self, name: str) -> Path:
        return self._ctx.find_file(name)
