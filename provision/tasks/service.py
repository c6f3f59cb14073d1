"""service: start/stop/restart/reload a system service and set whether it starts at boot.

systemd when ``/run/systemd/system`` exists; otherwise the SysV way (``service NAME …``,
``update-rc.d``), which is what containers and the lab's hosts have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Fact, Module, Plan, PlanContext, TaskResult
from .shell import quote

_ACTIVE = {"active", "activating", "reloading"}
_ENABLED = {"enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked", "linked-runtime"}
_VERB = {"started": "start", "stopped": "stop", "restarted": "restart", "reloaded": "reload"}


@dataclass(frozen=True)
class ServiceState:
    """What the probe found."""

    init: str  # systemd | sysv
    exists: bool
    running: bool
    enabled: bool
    masked: bool = False


def parse_probe(state: str | None) -> ServiceState:
    """Read the probe's ``key=value`` lines."""
    values: dict[str, str] = {}
    for line in (state or "").splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), value.strip())
    if values.get("init") == "systemd":
        return ServiceState(
            init="systemd",
            exists=values.get("LoadState", "not-found") not in ("not-found", ""),
            running=values.get("ActiveState", "") in _ACTIVE,
            enabled=values.get("UnitFileState", "") in _ENABLED,
            masked=values.get("LoadState") == "masked" or values.get("UnitFileState", "").startswith("masked"),
        )
    return ServiceState(
        init="sysv",
        exists=values.get("script") == "yes",
        running=values.get("status") == "0",
        enabled=values.get("links") == "yes",
    )


def plan_actions(current: ServiceState, state: str | None, enabled: bool | None) -> list[str]:
    """The actions to take, in order: start|stop|restart|reload|enable|disable."""
    actions: list[str] = []
    if state == "started" and not current.running:
        actions.append("start")
    elif state == "stopped" and current.running:
        actions.append("stop")
    elif state == "restarted":
        actions.append("restart")
    elif state == "reloaded":
        # As Ansible: reloading a stopped service starts it.
        actions.append("reload" if current.running else "start")
    if enabled is True and not current.enabled:
        actions.append("enable")
    elif enabled is False and current.enabled:
        actions.append("disable")
    return actions


plan = plan_actions  # the older name


def action_script(init: str, name: str, actions: list[str]) -> str:
    """One script doing every action, stopping at the first failure."""
    q = quote(name)
    lines = ["set -e"]
    for action in actions:
        if init == "systemd":
            lines.append(f"systemctl {action} {q}")
        elif action == "enable":
            # `defaults` creates the rc links when there are none; `enable` turns K links into S links.
            lines.append(f"update-rc.d {q} defaults >/dev/null 2>&1 || true")
            lines.append(f"update-rc.d {q} enable")
        elif action == "disable":
            lines.append(f"update-rc.d {q} disable")
        elif action == "restart":
            # Many init scripts' own restart races: start runs while the old daemon is still
            # exiting and then does nothing. Stop, wait for it to be gone, start, wait for it to run.
            lines.append(f"service {q} stop || true")
            lines.append(_wait_status(name, running=False))
            lines.append(f"service {q} start")
            lines.append(_wait_status(name, running=True))
        elif action == "start":
            lines.append(f"service {q} start")
            lines.append(_wait_status(name, running=True))
        else:
            lines.append(f"service {q} {action}")
    return "\n".join(lines) + "\n"


def _wait_status(name: str, *, running: bool) -> str:
    """Wait (at most 30 s) until ``service NAME status`` says running, or not; fail clearly otherwise."""
    test = "" if running else "! "
    message = quote(f"service {name} did not {'start' if running else 'stop'} within 30s")
    return (f"_pv_i=0; until {test}service {quote(name)} status >/dev/null 2>&1 </dev/null; do "
            f"_pv_i=$((_pv_i + 1)); if [ $_pv_i -gt 150 ]; then echo {message} >&2; exit 1; fi; sleep 0.2; done")


class Service(Module):
    """Manage a system service (systemd, or SysV init scripts where there is no systemd).

    name: the service (``nginx``, ``redis-server``, ``supervisor``)
    state: started | stopped | restarted | reloaded (restarted and reloaded always report changed)
    enabled: whether it starts at boot (systemctl enable / update-rc.d)
    """

    name = "service"
    args = {
        "name": Arg(str, required=True, help="the service (``nginx``, ``redis-server``, ``supervisor``)"),
        "state": Arg(str, choices=("started", "stopped", "restarted", "reloaded"),
                     help="started | stopped | restarted | reloaded (restarted and reloaded always report changed)"),
        "enabled": Arg(bool, help="whether it starts at boot (systemctl enable / update-rc.d)"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if args["state"] is None and args["enabled"] is None:
            raise ArgumentError("service: give state and/or enabled", hint="e.g. state: started, enabled: true")

    def facts(self, args: dict[str, Any]) -> ServiceFacts:
        return ServiceFacts(args["name"])

    def plan(self, args: dict[str, Any], facts: ServiceState, ctx: PlanContext) -> Plan:
        name, current = args["name"], facts
        if not current.exists:
            where = "systemd unit" if current.init == "systemd" else "/etc/init.d script"
            # In check mode its package may be one an earlier task installs when the run is real.
            pending = (None if args["state"] == "stopped"
                       else f"would {args['state'] or 'enable'} {name} (not installed yet)")
            return Plan(error=f"service {name!r} not found (no {where})\n"
                              "  fix: install its package first, or check the name", pending=pending)
        if current.masked and args["state"] in ("started", "restarted", "reloaded"):
            return Plan(error=f"service {name!r} is masked\n  fix: systemctl unmask {name}")
        actions = plan_actions(current, args["state"], args["enabled"])
        data: dict[str, Any] = {"name": name, "init": current.init, "state": args["state"] or "",
                                "enabled": current.enabled if args["enabled"] is None else args["enabled"]}
        if not actions:
            return Plan(_describe(current), data=data)
        summary = ", ".join(actions)
        data["actions"] = actions

        def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult | None:
            if result.ok:
                return None
            failed = TaskResult.from_command(f"{summary} {name} ({current.init})", result)
            failed.data.update(actions=actions)
            return failed

        return Plan(f"{summary} {name}", script=action_script(current.init, name, actions), data=data,
                    check_msg=f"would {summary} {name}", outcome=outcome, timeout=300)


@dataclass(frozen=True)
class ServiceFacts(Fact[ServiceState]):
    """A service's init system, whether it exists, runs, and starts at boot."""

    name: str

    def command(self) -> str:
        q = quote(self.name)
        return (
            "if [ -d /run/systemd/system ]; then echo init=systemd; "
            f"systemctl show -p LoadState -p ActiveState -p UnitFileState -- {q} 2>/dev/null || true; "
            "else echo init=sysv; "
            f"if [ -x /etc/init.d/{q} ]; then echo script=yes; "
            f"service {q} status >/dev/null 2>&1 </dev/null; echo status=$?; fi; "
            f"( for f in /etc/rc[2345].d/S[0-9][0-9]{q}; do "
            f"if [ -e \"$f\" ]; then echo links=yes; exit 0; fi; done; "
            "echo links=no ); fi\n"
        )

    def parse(self, output: str) -> ServiceState:
        return parse_probe(output)


def _describe(current: ServiceState) -> str:
    running = "running" if current.running else "stopped"
    return f"{running}, {'enabled' if current.enabled else 'disabled'} ({current.init})"
