"""Modules that steer the run rather than change a host: debug, assert, fail, set_fact, pause, meta, ping.

``set_fact`` and ``meta`` are acted on by the runner (they change variables and handler flow);
``assert`` gets its conditions evaluated by the runner too, since expressions need the templar.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ..errors import ArgumentError
from .base import Arg, Module, TaskContext, TaskResult


class Debug(Module):
    """Show a message or a variable.

    msg: text to show; var: name of a variable to show (rendered by the runner into ``value``).
    """

    name = "debug"
    args: ClassVar[dict[str, Arg]] = {"msg": Arg(object, default="Hello world!"), "var": Arg(str), "value": Arg(object)}

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        if args.get("var"):
            return TaskResult.ok(_as_yaml({args["var"]: args.get("value")}), **{args["var"]: args.get("value")})
        msg = args["msg"]
        return TaskResult.ok(msg if isinstance(msg, str) else _as_yaml(msg))


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

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        results = args.get("results") or []
        for condition, ok in zip(args["that"], results, strict=False):
            if not ok:
                return TaskResult.failed(args.get("fail_msg") or f"assertion failed: {condition}", assertion=condition)
        return TaskResult.ok("" if args["quiet"] else args["success_msg"])


class Fail(Module):
    """Fail the host with a message."""

    name = "fail"
    args: ClassVar[dict[str, Arg]] = {"msg": Arg(str, default="failed as requested")}

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        return TaskResult.failed(args["msg"])


class SetFact(Module):
    """Set variables for this host for the rest of the run (runtime precedence)."""

    name = "set_fact"
    free_args = True

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        return TaskResult.ok(", ".join(sorted(args)), facts=args)


class Pause(Module):
    """Wait a number of seconds (bounded: at most an hour)."""

    name = "pause"
    args: ClassVar[dict[str, Arg]] = {"seconds": Arg(int, default=1)}

    def check_args(self, args: dict[str, Any]) -> None:
        if not 0 <= args["seconds"] <= 3600:
            raise ArgumentError("pause: seconds must be between 0 and 3600")

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        time.sleep(args["seconds"])
        return TaskResult.ok(f"paused {args['seconds']}s")


class Meta(Module):
    """Run-flow actions: ``flush_handlers``, ``end_host``, ``noop``."""

    name = "meta"
    free_form = "action"
    args: ClassVar[dict[str, Arg]] = {"action": Arg(str, required=True, choices=("flush_handlers", "end_host", "noop"))}

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        return TaskResult.ok(args["action"])


class Ping(Module):
    """Prove the host answers a shell over SSH (and as the become user, if any)."""

    name = "ping"

    def probe(self, args: dict[str, Any]) -> str | None:
        return "echo pong"

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        if (state or "").strip() != "pong":
            return TaskResult.failed(f"unexpected answer: {state!r}")
        return TaskResult.ok("pong", ping="pong")
