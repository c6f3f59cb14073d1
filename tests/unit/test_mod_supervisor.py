"""supervisor: decisions from canned ``supervisorctl status`` output."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.supervisor import RC_LINE, STATUS_LINE, Supervisor, parse_status, plan
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

STATUS = (
    "bench-web:bench-frappe-web       RUNNING   pid 10, uptime 0:01:00\n"
    "bench-workers:bench-worker-0     RUNNING   pid 11, uptime 0:01:00\n"
    "bench-workers:bench-worker-1     FATAL     Exited too quickly\n"
    "sleeper                          STOPPED   Nov 24 01:48 AM\n"
    "pool:pool-0                      RUNNING   pid 12, uptime 0:01:00\n"
)


def probe_out(text: str = STATUS, rc: int = 3) -> str:
    return f"{text}{RC_LINE}{rc}\n"


def change_out(text: str = STATUS, actions: str = "") -> str:
    return f"{actions}{STATUS_LINE}\n{text}{RC_LINE}0\n"


def sargs(**raw: Any) -> dict[str, Any]:
    args = args_of(Supervisor, raw)
    Supervisor().check_args(args)
    return args


PLANS = [
    ({"name": "bench-web:", "state": "started"}, []),
    ({"name": "bench-workers:", "state": "started"}, ["start 'bench-workers:*'"]),
    ({"name": "bench-workers:", "state": "restarted"}, ["restart 'bench-workers:*'"]),
    ({"name": "bench-web:", "state": "stopped"}, ["stop 'bench-web:*'"]),
    ({"name": "sleeper", "state": "stopped"}, []),
    ({"name": "sleeper", "state": "started"}, ["start sleeper"]),
    ({"name": "pool", "state": "started"}, []),
    ({"name": "pool", "state": "stopped"}, ["stop 'pool:*'"]),
    ({"name": "sleeper", "state": "present"}, []),
    ({"name": "sleeper", "state": "present", "reread": True}, ["reread >&2", "update sleeper"]),
    ({"name": "newprog", "state": "present"}, ["reread >&2", "update newprog"]),
    ({"name": "newprog", "state": "started"}, ["reread >&2", "update newprog", "start newprog"]),
    ({"name": "bench-web:", "state": "absent"}, ["stop 'bench-web:*'", "remove bench-web"]),
    ({"name": "newprog", "state": "absent"}, []),
]


@pytest.mark.parametrize(("raw", "expected"), PLANS)
def test_plan(raw: dict[str, Any], expected: list[str]) -> None:
    assert plan(parse_status(probe_out()), sargs(**raw)) == expected


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    assert execute_module(Supervisor(), sargs(name="bench-web:"), ctx, probe_out()).status == "ok"
    assert ctx.calls == []


def test_start_runs_one_script() -> None:
    after = STATUS.replace("FATAL     Exited too quickly", "RUNNING   pid 13")
    ctx = FakeContext(results=[CommandResult(0, change_out(after, "bench-workers:bench-worker-1: started\n"), "")])
    result = execute_module(Supervisor(), sargs(name="bench-workers:"), ctx, probe_out())
    assert result.status == "changed", result.msg
    [(script, _stdin, _ro)] = ctx.changes
    assert "pv_supervisorctl start 'bench-workers:*'" in script and "sudo -n supervisorctl" in script


def test_program_that_does_not_start_fails() -> None:
    ctx = FakeContext(results=[CommandResult(0, change_out(), "")])
    result = execute_module(Supervisor(), sargs(name="bench-workers:"), ctx, probe_out())
    assert result.status == "failed" and "did not start" in result.msg


def test_present_without_config_on_disk_fails() -> None:
    ctx = FakeContext(results=[CommandResult(0, change_out(), "")])
    result = execute_module(Supervisor(), sargs(name="newprog", state="present"), ctx, probe_out())
    assert result.status == "failed" and "conf.d" in result.msg


def test_reread_without_changes_is_ok() -> None:
    ctx = FakeContext(results=[CommandResult(0, change_out(), "No config updates to processes\n")])
    result = execute_module(Supervisor(), sargs(name="sleeper", state="present", reread=True), ctx, probe_out())
    assert result.status == "ok", result.msg


def test_supervisord_down_is_started_first() -> None:
    down = probe_out("unix:///var/run/supervisor.sock no such file\n", 4)
    ctx = FakeContext(results=[CommandResult(0, probe_out(STATUS, 3), "")])
    result = execute_module(Supervisor(), sargs(name="bench-web:"), ctx, down)
    assert result.status == "changed" and result.data["started_supervisord"] is True
    [(script, _stdin, _ro)] = ctx.changes
    assert "service supervisor start" in script and "systemctl start supervisor" in script


def test_check_mode_changes_nothing() -> None:
    ctx = FakeContext(check=True)
    down = probe_out("unix:///var/run/supervisor.sock refused connection\n", 4)
    assert execute_module(Supervisor(), sargs(name="x"), ctx, down).status == "changed"
    assert execute_module(Supervisor(), sargs(name="sleeper"), ctx, probe_out()).status == "changed"
    assert ctx.calls == []


def test_sudo_failure_is_reported() -> None:
    probe = probe_out("sudo: a password is required\n", 1)
    result = execute_module(Supervisor(), sargs(name="x"), FakeContext(), probe)
    assert result.status == "failed" and "password is required" in result.msg


def test_unknown_name_for_stop_fails() -> None:
    result = execute_module(Supervisor(), sargs(name="nope", state="stopped"), FakeContext(), probe_out())
    assert result.status == "failed" and "nope" in result.msg


@pytest.mark.parametrize("name", ["a:b", ":", "two words", "a::"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ArgumentError):
        sargs(name=name)


def test_scripts_are_valid_sh() -> None:
    args = sargs(name="bench-web:", config="/etc/supervisor/supervisord.conf", sudo=False)
    subprocess.run(["sh", "-n", "-c", Supervisor().probe(args)], check=True)
    subprocess.run(["sh", "-n", "-c", Supervisor()._ctl(args) + Supervisor()._start_daemon(args)], check=True)
