"""supervisor: programs and groups of a running supervisord, through ``supervisorctl``.

The probe is one ``supervisorctl status``. ``supervisorctl`` runs via ``sudo -n`` when the task's
user is not root (supervisord's socket is root's by default; ``sudo: false`` when the socket was
given to the bench user). A supervisord that is not running is started first (``service
supervisor start`` where there is no systemd), then waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .shell import quote

RC_LINE = "@@provision-supervisor-rc "
STATUS_LINE = "@@provision-supervisor-status"
_DOWN = ("no such file", "refused connection", "SHUTDOWN_STATE", "Connection refused")
_UP = {"RUNNING", "STARTING"}
_DOWN_STATES = {"STOPPED", "EXITED", "FATAL", "STOPPING"}
START_WAIT = 30


@dataclass
class Status:
    """``supervisorctl status``: whether supervisord answered, and each process's state."""

    running: bool
    processes: dict[str, str] = field(default_factory=dict)
    error: str = ""


def parse_status(state: str | None) -> Status:
    """Split the probe's output: the status lines, then the rc line."""
    body, sep, rc = (state or "").rpartition(RC_LINE)
    rc = rc.strip()
    if not sep:
        return Status(False, error=f"unexpected probe output: {(state or '')[-200:]!r}")
    if rc not in ("0", "3"):
        if any(mark in body for mark in _DOWN):
            return Status(False)
        return Status(False, error=body.strip() or f"supervisorctl exited {rc}")
    processes = {}
    for line in body.splitlines():
        words = line.split()
        if len(words) >= 2:
            processes[words[0]] = words[1]
    return Status(True, processes)


def matching(processes: dict[str, str], name: str) -> dict[str, str]:
    """The processes a program name or a ``group:`` name stands for."""
    if name.endswith(":"):
        return {p: s for p, s in processes.items() if p.startswith(name)}
    return {p: s for p, s in processes.items() if p == name or p.startswith(name + ":")}


def target_of(name: str, found: dict[str, str]) -> tuple[str, str]:
    """(what start/stop/restart take, the process group update/remove take)."""
    group = name.rstrip(":")
    if name.endswith(":") or any(":" in p for p in found):
        return f"{group}:*", group
    return name, group


def plan(status: Status, args: dict[str, Any]) -> list[str]:
    """supervisorctl sub-commands (as shell words) that bring ``name`` to the wanted state."""
    name, state = args["name"], args["state"]
    found = matching(status.processes, name)
    target, group = target_of(name, found)
    add = ["reread >&2", f"update {quote(group)}"]
    if state == "absent":
        return [f"stop {quote(target)}", f"remove {quote(group)}"] if found else []
    if state == "present":
        return add if (not found or args["reread"]) else []
    if state == "stopped":
        return [f"stop {quote(target)}"] if any(s not in _DOWN_STATES for s in found.values()) else []
    steps = add if (not found or args["reread"]) else []
    if state == "restarted":
        return [*steps, f"{'start' if not found else 'restart'} {quote(target)}"]
    # started
    if not found or any(s not in _UP for s in found.values()):
        return [*steps, f"start {quote(target)}"]
    return steps


class Supervisor(Module):
    """Manage a supervisord program or group.

    name: program name, or group name ending with ':' ("frappe-bench-web:")
    state: present | started | stopped | restarted | absent
    reread: reread the config files and update changed groups even when the name is known
    config: supervisord config file for supervisorctl -c (and supervisord -c when it must be started)
    sudo: run supervisorctl via sudo -n when the task's user is not root (default true)
    """

    name = "supervisor"
    args = {
        "name": Arg(str, required=True, help="program name, or group name ending with ':' (\"frappe-bench-web:\")"),
        "state": Arg(str, default="started", choices=("present", "started", "stopped", "restarted", "absent"),
                     help="present | started | stopped | restarted | absent"),
        "reread": Arg(bool, default=False,
                      help="reread the config files and update changed groups even when the name is known"),
        "config": Arg(str,
                      help="supervisord config file for supervisorctl -c (and supervisord -c when it must be started)"),
        "sudo": Arg(bool, default=True,
                    help="run supervisorctl via sudo -n when the task's user is not root (default true)"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        name = args["name"]
        if not name.strip(":") or name.count(":") > 1 or (":" in name and not name.endswith(":")):
            raise ArgumentError(f"supervisor: name {name!r} must be a program or a group ending with ':'")
        if any(c.isspace() for c in name):
            raise ArgumentError("supervisor: name must not contain spaces")

    def _ctl(self, args: dict[str, Any]) -> str:
        """Shell defining ``pv_supervisorctl``."""
        conf = f" -c {quote(args['config'])}" if args["config"] else ""
        sudo = "sudo -n " if args["sudo"] else ""
        return (f'pv_supervisorctl() {{ if [ "$(id -u)" = 0 ]; then supervisorctl{conf} "$@"; '
                f'else {sudo}supervisorctl{conf} "$@"; fi; }}\n')

    def facts(self, args: dict[str, Any]) -> Probe[Status]:
        return Probe(self._ctl(args) + f"pv_supervisorctl status 2>&1; echo {quote(RC_LINE)}$?\n", parse_status)

    def plan(self, args: dict[str, Any], facts: Status, ctx: PlanContext) -> Plan:
        name = args["name"]
        status = facts
        if status.error:
            if "sudo" in status.error or "password" in status.error:
                fix = "give the task's user passwordless sudo for supervisorctl, or set sudo: false"
            else:
                fix = "check that supervisor is installed and the config path (config:) is right"
            # In check mode supervisor may be one an earlier task installs when the run is real.
            pending = None
            if args["state"] != "absent":
                pending = (f"would make {name} {args['state']} (supervisorctl cannot answer yet: "
                           f"{status.error.strip()[:200]})")
            return Plan(error=f"supervisorctl status failed: {status.error}\n  fix: {fix}", pending=pending,
                        data={"name": name} if pending else {})
        if not status.running:
            if args["state"] == "absent":
                return Plan("supervisord is not running; nothing to remove", data={"name": name})
            return Plan("start supervisord", script=self._ctl(args) + self._start_daemon(args), data={"name": name},
                        check_msg=f"would start supervisord, then make {name} {args['state']}",
                        timeout=START_WAIT + 30, then=lambda result, _ctx: self._after_start(args, result))
        planned = self._steps(args, status, started_daemon=False)
        assert isinstance(planned, Plan)  # a result comes only after starting supervisord
        return planned

    def _after_start(self, args: dict[str, Any], result: CommandResult) -> Plan | TaskResult:
        status = parse_status(result.stdout)
        if not result.ok or not status.running:
            failed = TaskResult.from_command("starting supervisord", result)
            failed.msg += "\n  fix: look at /var/log/supervisor/supervisord.log on the host"
            return failed
        return self._steps(args, status, started_daemon=True)

    def _steps(self, args: dict[str, Any], status: Status, *, started_daemon: bool) -> Plan | TaskResult:
        name = args["name"]
        steps = plan(status, args)
        before = matching(status.processes, name)
        data: dict[str, Any] = {"name": name, "state": args["state"], "processes": before,
                                "started_supervisord": started_daemon}
        if not steps:
            if args["state"] in ("stopped", "restarted") and not before:
                return Plan(error=f"supervisor: no program or group {name!r} is known to supervisord\n"
                                  "  fix: check the name, or add its config first (state: present)", data=data)
            msg = f"{name}: {', '.join(f'{p} {s}' for p, s in before.items()) or 'absent'}"
            if started_daemon:
                return TaskResult.changed("started supervisord; " + msg, **data)
            return Plan(msg, data=data)
        words = [s.split(" >&2")[0] for s in steps]
        script = self._ctl(args) + "set -e\n" + "".join(f"pv_supervisorctl {s}\n" for s in steps)
        script += f"echo {STATUS_LINE}\npv_supervisorctl status 2>&1 || true; echo {quote(RC_LINE)}0\n"
        return Plan(f"supervisorctl {'; '.join(words)}", script=script, data={"commands": words, **data},
                    check_msg=f"would run supervisorctl {'; '.join(words)}", timeout=300,
                    outcome=lambda result, _data: self._result(result, args, words, data))

    def _result(self, result: CommandResult, args: dict[str, Any], words: list[str],
                data: dict[str, Any]) -> TaskResult:
        if not result.ok:
            failed = TaskResult.from_command(f"supervisorctl {'; '.join(words)}", result)
            failed.data.update(data)
            return failed
        output, _, status_text = result.stdout.partition(STATUS_LINE + "\n")
        if "ERROR" in output and "already started" not in output and "not running" not in output:
            error = next(line for line in output.splitlines() if "ERROR" in line)
            return TaskResult.failed(f"supervisorctl {'; '.join(words)}: {error.strip()}", **data)
        after = matching(parse_status(status_text).processes, args["name"])
        data["processes"] = after
        only_update = all(w.startswith(("reread", "update")) for w in words)
        if not after and args["state"] != "absent":
            return TaskResult.failed(f"supervisord has no program or group {args['name']!r} after reread+update\n"
                                     "  fix: put its [program:...] / [group:...] config in supervisord's include "
                                     "directory (/etc/supervisor/conf.d) first", **data)
        if only_update and "added" not in output and "updated" not in output and "removed" not in output:
            return TaskResult.ok(f"{args['name']}: config unchanged", **data)
        if args["state"] == "started" and after and any(s not in _UP for s in after.values()):
            states = ", ".join(f"{p} {s}" for p, s in after.items())
            return TaskResult.failed(f"{args['name']} did not start: {states}\n"
                                     "  fix: look at the program's stderr log (supervisorctl tail -f NAME stderr)",
                                     **data)
        return TaskResult.changed(f"supervisorctl {'; '.join(words)}", **data)

    def _start_daemon(self, args: dict[str, Any]) -> str:
        """Start supervisord, wait until it answers, print its status like the probe."""
        if args["config"]:
            start = f"supervisord -c {quote(args['config'])}"
        else:
            start = ("if [ -d /run/systemd/system ]; then systemctl start supervisor; "
                     "else service supervisor start; fi")
        sudo = "sudo -n " if args["sudo"] else ""
        return (
            f'if [ "$(id -u)" = 0 ]; then {{ {start}; }} >&2; else {sudo}sh -c {quote(start)} >&2; fi\n'
            f"_pv_i=0\nwhile [ $_pv_i -lt {START_WAIT * 2} ]; do\n"
            "  _pv_out=$(pv_supervisorctl status 2>&1); _pv_rc=$?\n"
            '  if [ $_pv_rc = 0 ] || [ $_pv_rc = 3 ]; then break; fi\n'
            "  _pv_i=$((_pv_i + 1)); sleep 0.5\ndone\n"
            f'printf "%s\\n" "$_pv_out"; echo {quote(RC_LINE)}$_pv_rc\n'
        )
