"""cron: one job in a user's crontab, found by its marker comment ``#provision: <name>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError
from .base import Arg, Fact, Module, Plan, PlanContext
from .shell import quote, unified_diff

MARKER = "#provision: "
RC_LINE = "@@provision-cron-rc "
SPECIAL_TIMES = ("reboot", "yearly", "annually", "monthly", "weekly", "daily", "hourly")
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Crontab:
    """A user's crontab as the probe saw it."""

    text: str
    error: str | None = None


def parse_probe(state: str | None) -> Crontab:
    """Split the probe's output into the crontab text, or the error ``crontab -l`` gave."""
    text = state or ""
    body, sep, rc_text = text.rpartition(RC_LINE)
    if not sep:
        return Crontab("", error=f"unexpected probe output: {text[-200:]!r}")
    rc = rc_text.strip()
    if rc == "0":
        return Crontab(body)
    if "no crontab for" in body:
        return Crontab("")
    return Crontab("", error=body.strip() or f"crontab -l exited {rc}")


def job_line(args: dict[str, Any]) -> str:
    """The crontab line for the job (commented out when disabled)."""
    if args["special_time"]:
        when = "@" + args["special_time"]
    else:
        when = " ".join(str(args[k]) for k in ("minute", "hour", "day", "month", "weekday"))
    line = f"{when} {args['job']}"
    return "#" + line if args["disabled"] else line


def apply_job(text: str, args: dict[str, Any]) -> str:
    """The crontab text with the named job (and env lines) in the wanted state."""
    lines = text.splitlines()
    marker = MARKER + args["name"]
    out: list[str] = []
    found = False
    skip_next = False
    for line in lines:
        if skip_next:
            skip_next = False
            continue
        if line.rstrip() == marker:
            skip_next = True
            if args["state"] == "present" and not found:
                out.extend([marker, job_line(args)])
            found = True
            continue
        out.append(line)
    if args["state"] == "present" and not found:
        out.extend([marker, job_line(args)])
    if args["state"] == "present":
        out = apply_env(out, args["env"] or [])
    return "\n".join(out) + "\n" if out else ""


def apply_env(lines: list[str], env: list[str]) -> list[str]:
    """Set each NAME=value line: replace the line of the same NAME, or add it before the first job."""
    lines = list(lines)
    for item in env:
        name = item.split("=", 1)[0]
        same = [i for i, line in enumerate(lines) if _ENV_LINE.match(line) and line.split("=", 1)[0] == name]
        if same:
            lines[same[0]] = item
            continue
        lines.insert(next((i for i, line in enumerate(lines) if _is_job_or_marker(line)), len(lines)), item)
    return lines


def _is_job_or_marker(line: str) -> bool:
    text = line.strip()
    if not text or _ENV_LINE.match(text):
        return False
    return text.startswith(MARKER) or not text.startswith("#")


def crontab_diff(old: str, new: str, user: str) -> str:
    """Unified diff of the crontab text."""
    return unified_diff(old, new, f"crontab ({user})")


def crontab_command(user: str | None, action: str) -> str:
    """``crontab ACTION`` for USER; ``-u`` only for another user than the task's (it needs root)."""
    if not user:
        return f"crontab {action}"
    q = quote(user)
    return f'if [ "$(id -un)" = {q} ]; then crontab {action}; else crontab -u {q} {action}; fi'


class Cron(Module):
    """Manage one cron job of a user, marked by a ``#provision: <name>`` comment line.

    name: the job's identity (marker comment on the line before the job)
    job: the command line to run (required for state present)
    user: whose crontab (default: the task's user)
    minute, hour, day, month, weekday: schedule fields (default "*")
    special_time: reboot|yearly|annually|monthly|weekly|daily|hourly instead of the fields
    state: present | absent
    disabled: keep the job but comment it out
    env: NAME=value lines set at the top of the crontab (left in place by state absent)
    """

    name = "cron"
    args = {
        "name": Arg(str, required=True, help="the job's identity (marker comment on the line before the job)"),
        "job": Arg(str, aliases=("value",), help="the command line to run (required for state present)"),
        "user": Arg(str, help="whose crontab (default: the task's user)"),
        "minute": Arg(str, default="*", help="schedule fields (default \"*\")"),
        "hour": Arg(str, default="*", help="schedule fields (default \"*\")"),
        "day": Arg(str, default="*", aliases=("dom",), help="schedule fields (default \"*\")"),
        "month": Arg(str, default="*", help="schedule fields (default \"*\")"),
        "weekday": Arg(str, default="*", aliases=("dow",), help="schedule fields (default \"*\")"),
        "special_time": Arg(str, choices=SPECIAL_TIMES,
                            help="reboot|yearly|annually|monthly|weekly|daily|hourly instead of the fields"),
        "state": Arg(str, default="present", choices=("present", "absent"), help="present | absent"),
        "disabled": Arg(bool, default=False, help="keep the job but comment it out"),
        "env": Arg(list, default=[],
                   help="NAME=value lines set at the top of the crontab (left in place by state absent)"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if "\n" in args["name"]:
            raise ArgumentError("cron: name must be one line")
        if args["state"] == "present" and not args["job"]:
            raise ArgumentError("cron: state present needs a job", hint="add job: 'command to run'")
        if args["job"] and "\n" in args["job"]:
            raise ArgumentError("cron: job must be one line", hint="put several commands in a script")
        for item in args["env"] or []:
            if not isinstance(item, str) or not _ENV_LINE.match(item) or "\n" in item:
                raise ArgumentError(f"cron: env item {item!r} is not a NAME=value line")
            if item.endswith("="):
                # cron refuses NAME= (it reads the line as a job: "bad minute").
                raise ArgumentError(f"cron: env item {item!r} has no value", hint=f'write it as {item}""')

    def facts(self, args: dict[str, Any]) -> CrontabFacts:
        return CrontabFacts(args["user"])

    def plan(self, args: dict[str, Any], facts: Crontab, ctx: PlanContext) -> Plan:
        current = facts
        user = args["user"] or "current user"
        if current.error is not None:
            # In check mode cron (or the user) may come from an earlier task when the run is real.
            pending = None
            if args["state"] == "present":
                pending = (f"would add job {args['name']!r} for {user} "
                           f"(its crontab cannot be read yet: {current.error.strip()})")
            return Plan(error=f"cannot read the crontab of {user}: {current.error}", pending=pending)
        new = apply_job(current.text, args)
        if new == current.text or (not new.strip() and not current.text.strip()):
            return Plan(f"job {args['name']!r} {args['state']}", data={"crontab": current.text})
        verb = "add/update" if args["state"] == "present" else "remove"
        return Plan(f"{verb} job {args['name']!r}", script=crontab_command(args["user"], "-") + "\n",
                    stdin=new.encode(), data={"crontab": new}, check_msg=f"would {verb} job {args['name']!r}",
                    what=f"crontab - (user {user})", diff=lambda _ctx: crontab_diff(current.text, new, user))


@dataclass(frozen=True)
class CrontabFacts(Fact[Crontab]):
    """A user's crontab (``crontab -l``), or the error reading it gave."""

    user: str | None

    def command(self) -> str:
        return f"{{ {crontab_command(self.user, '-l')}; }} 2>&1; echo {quote(RC_LINE)}$?\n"

    def parse(self, output: str) -> Crontab:
        return parse_probe(output)
