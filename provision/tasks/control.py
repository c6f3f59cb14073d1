"""Modules that steer the run rather than change a host: debug, assert, fail, set_fact, pause, meta, ping.

``set_fact`` and ``meta`` say so (``sets_variables``, ``steers_run``) and the engine acts on them
(they change variables and handler flow); ``debug`` and ``assert`` have their expressions
evaluated in ``prepare`` with the engine's templar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import ArgumentError
from .base import Arg, Module, Plan, PlanContext, TaskContext, TaskResult
from .facts import Probe


class Debug(Module):
    """Show a message or a variable.

    msg: text to show; var: name of a variable to show (rendered by the runner into ``value``).
    """

    name = "debug"
    args: ClassVar[dict[str, Arg]] = {"msg": Arg(object, default="Hello world!"), "var": Arg(str), "value": Arg(object)}

    def prepare(self, args: dict[str, Any], evaluate: Callable[[str], Any]) -> None:
        if args.get("var"):
            args["value"] = evaluate(str(args["var"]))

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        if args.get("var"):
            return Plan(_as_yaml({args["var"]: args.get("value")}), data={args["var"]: args.get("value")})
        msg = args["msg"]
        return Plan(msg if isinstance(msg, str) else _as_yaml(msg))


def _as_yaml(value: Any) -> str:
    """A list or mapping message shown as block YAML, as people read it."""
    import json

    import yaml

    plain = json.loads(json.dumps(value, default=str))  # str subclasses and odd objects as plain text
    return str(yaml.safe_dump(plain, default_flow_style=False, sort_keys=False, allow_unicode=True)).rstrip("\n")


class Assert(Module):
    """Fail unless every condition holds.

    that: list of expressions (evaluated by the runner into ``results``); fail_msg, success_msg.
    """

    name = "assert"
    args: ClassVar[dict[str, Arg]] = {
        "that": Arg(list, required=True),
        "fail_msg": Arg(str, aliases=("msg",)),
        "success_msg": Arg(str, default="all assertions passed"),
        "quiet": Arg(bool, default=False),
        "results": Arg(list),
    }

    def prepare(self, args: dict[str, Any], evaluate: Callable[[str], Any]) -> None:
        that = args.get("that")
        conditions = that if isinstance(that, list) else [that]
        args["that"] = [str(c) for c in conditions]
        args["results"] = [bool(evaluate(str(c))) if isinstance(c, str) else bool(c) for c in conditions]

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        results = args.get("results") or []
        for condition, ok in zip(args["that"], results, strict=False):
            if not ok:
                return Plan(error=args.get("fail_msg") or f"assertion failed: {condition}",
                            data={"assertion": condition})
        return Plan("" if args["quiet"] else args["success_msg"])


class Fail(Module):
    """Fail the host with a message."""

    name = "fail"
    args: ClassVar[dict[str, Arg]] = {"msg": Arg(str, default="failed as requested")}

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        return Plan(error=args["msg"])


class SetFact(Module):
    """Set variables for this host for the rest of the run (runtime precedence)."""

    name = "set_fact"
    free_args = True
    sets_variables = True
    stops_lookahead = True

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        return Plan(", ".join(sorted(args)), data={"facts": args})


class Pause(Module):
    """Wait a number of seconds (bounded: at most an hour)."""

    name = "pause"
    stops_lookahead = True
    args: ClassVar[dict[str, Arg]] = {"seconds": Arg(int, default=1)}

    def check_args(self, args: dict[str, Any]) -> None:
        if not 0 <= args["seconds"] <= 3600:
            raise ArgumentError("pause: seconds must be between 0 and 3600")

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        time.sleep(args["seconds"])
        return TaskResult.ok(f"paused {args['seconds']}s")


class IncludeTasks(Module):
    """``include_tasks`` with a loop or a templated name: the engine reads the file when it is reached."""

    name = "include_tasks"
    free_form = "file"
    steers_run = True
    stops_lookahead = True
    args: ClassVar[dict[str, Arg]] = {"file": Arg(str, required=True)}

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        return Plan(f"include {args['file']}")


class Meta(Module):
    """Run-flow actions: ``flush_handlers``, ``end_host``, ``noop``."""

    name = "meta"
    free_form = "action"
    steers_run = True
    stops_lookahead = True
    args: ClassVar[dict[str, Arg]] = {"action": Arg(str, required=True, choices=("flush_handlers", "end_host", "noop"))}

    def plan(self, args: dict[str, Any], facts: None, ctx: PlanContext) -> Plan:
        return Plan(args["action"])


class Ping(Module):
    """Prove the host answers a shell over SSH (and as the become user, if any)."""

    name = "ping"

    def facts(self, args: dict[str, Any]) -> Probe[str]:
        return Probe("echo pong", str)

    def plan(self, args: dict[str, Any], facts: str, ctx: PlanContext) -> Plan:
        if facts.strip() != "pong":
            return Plan(error=f"unexpected answer: {facts!r}")
        return Plan("pong", data={"ping": "pong"})
