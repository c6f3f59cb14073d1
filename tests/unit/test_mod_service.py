"""service: decisions from canned systemd / SysV probe output."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.service import Service, parse_probe, plan
from tests.unit._modrun import FakeContext

pytestmark = pytest.mark.unit

SYSV_RUNNING_ENABLED = "init=sysv\nscript=yes\nstatus=0\nlinks=yes\n"
SYSV_STOPPED = "init=sysv\nscript=yes\nstatus=3\nlinks=no\n"
SYSV_MISSING = "init=sysv\nlinks=no\n"
SYSTEMD_ACTIVE = "init=systemd\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"
SYSTEMD_INACTIVE = "init=systemd\nLoadState=loaded\nActiveState=inactive\nUnitFileState=disabled\n"
SYSTEMD_MISSING = "init=systemd\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n"
SYSTEMD_MASKED = "init=systemd\nLoadState=masked\nActiveState=inactive\nUnitFileState=masked\n"



def args(**raw: Any) -> dict[str, Any]:
    coerced = Service.coerce(Service.normalize({"name": "nginx", **raw}))
    Service().check_args(coerced)
    return coerced


PLANS = [
    (SYSV_RUNNING_ENABLED, "started", True, []),
    (SYSV_RUNNING_ENABLED, "stopped", None, ["stop"]),
    (SYSV_RUNNING_ENABLED, "restarted", None, ["restart"]),
    (SYSV_RUNNING_ENABLED, "reloaded", False, ["reload", "disable"]),
    (SYSV_STOPPED, "started", True, ["start", "enable"]),
    (SYSV_STOPPED, "reloaded", None, ["start"]),
    (SYSV_STOPPED, "stopped", False, []),
    (SYSTEMD_ACTIVE, "started", True, []),
    (SYSTEMD_INACTIVE, "started", True, ["start", "enable"]),
    (SYSTEMD_INACTIVE, None, False, []),
]


@pytest.mark.parametrize(("probe", "state", "enabled", "expected"), PLANS)
def test_plan(probe: str, state: str | None, enabled: bool | None, expected: list[str]) -> None:
    assert plan(parse_probe(probe), state, enabled) == expected


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Service(), args(state="started", enabled=True), ctx, SYSV_RUNNING_ENABLED)
    assert result.status == "ok" and ctx.calls == []


def test_sysv_commands() -> None:
    ctx = FakeContext()
    result = execute_module(Service(), args(state="started", enabled=True), ctx, SYSV_STOPPED)
    assert result.status == "changed"
    [(script, _stdin, _ro)] = ctx.calls
    assert "service nginx start" in script and "update-rc.d nginx enable" in script


def test_systemd_commands() -> None:
    ctx = FakeContext()
    execute_module(Service(), args(state="restarted", enabled=False), ctx, SYSTEMD_ACTIVE)
    [(script, _stdin, _ro)] = ctx.calls
    assert "systemctl restart nginx" in script and "systemctl disable nginx" in script


def test_check_mode_runs_nothing() -> None:
    ctx = FakeContext(check=True)
    result = execute_module(Service(), args(state="started"), ctx, SYSV_STOPPED)
    assert result.status == "changed" and "would start" in result.msg and ctx.calls == []


@pytest.mark.parametrize("probe", [SYSV_MISSING, SYSTEMD_MISSING])
def test_missing_service_fails(probe: str) -> None:
    result = execute_module(Service(), args(state="started"), FakeContext(), probe)
    assert result.status == "failed" and "not found" in result.msg


def test_masked_fails_with_fix() -> None:
    result = execute_module(Service(), args(state="started"), FakeContext(), SYSTEMD_MASKED)
    assert result.status == "failed" and "unmask" in result.msg


def test_failure_shows_stderr() -> None:
    ctx = FakeContext(results=[CommandResult(1, "", "Job for nginx failed")])
    result = execute_module(Service(), args(state="started"), ctx, SYSV_STOPPED)
    assert result.status == "failed" and "Job for nginx failed" in result.msg and "exit 1" in result.msg


def test_needs_state_or_enabled() -> None:
    with pytest.raises(ArgumentError):
        args()


def test_probe_is_valid_sh() -> None:
    script = Service().probe(args(state="started"))
    subprocess.run(["sh", "-n", "-c", script], check=True)
