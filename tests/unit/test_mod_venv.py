"""venv and pip: decisions from canned probe output."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.pip import editable_marker, make_plan, parse_dists, probe_values, satisfies
from provision.tasks.venv import Pip, Venv
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

VENV = "venv=yes\nversion=3.11.2\nssp=false\nwant=Python 3.11.7\n"


@pytest.mark.parametrize(("probe", "raw", "status", "script_part"), [
    (VENV, {}, "ok", None),
    ("venv=no\nwant=Python 3.11.2\n", {}, "changed", "python3 -m venv /srv/env"),
    ("venv=yes\nversion=3.9.2\nssp=false\nwant=Python 3.11.2\n", {}, "changed", "rm -rf -- /srv/env\npython3 -m venv"),
    ("venv=yes\nversion=3.11.2\nssp=false\nbroken=yes\nwant=Python 3.11.2\n", {}, "changed", "rm -rf"),
    (VENV, {"system_site_packages": True}, "changed", "include-system-site-packages = true"),
    ("venv=no\nwant=Python 3.12.1\n", {"python": "python3.12", "system_site_packages": True}, "changed",
     "python3.12 -m venv --system-site-packages /srv/env"),
    (VENV, {"state": "absent"}, "changed", "rm -rf -- /srv/env"),
    ("venv=no\nwant=Python 3.11.2\n", {"state": "absent"}, "ok", None),
    ("venv=other\nwant=Python 3.11.2\n", {}, "failed", None),
    ("venv=no\nwant=sh: 1: python3.99: not found\n", {"python": "python3.99"}, "failed", None),
])
def test_venv(probe: str, raw: dict[str, Any], status: str, script_part: str | None) -> None:
    ctx = FakeContext()
    args = args_of(Venv, {"path": "/srv/env", **raw})
    Venv().check_args(args)
    result = execute_module(Venv(), args, ctx, probe)
    assert result.status == status, result.msg
    assert [c[0] for c in ctx.calls if script_part and script_part in c[0]] or not script_part
    if status != "changed":
        assert ctx.changes == []


def test_venv_recreate_reports_versions() -> None:
    result = execute_module(Venv(), args_of(Venv, {"path": "/srv/env"}), FakeContext(check=True),
                        "venv=yes\nversion=3.9.2\nwant=Python 3.11.2\n")
    assert "3.9 -> 3.11" in result.msg and result.data["recreated"] is True


@pytest.mark.parametrize(("installed", "spec", "ok"), [
    ("1.2.0", "==1.2.0", True), ("1.2.0", "==1.2.*", True), ("1.3.0", "==1.2.*", False),
    ("2.0", ">=1.9,<3", True), ("3.0", ">=1.9,<3", False), ("1.4.2", "~=1.4", True), ("2.0", "~=1.4", False),
    ("1.0", "!=1.0", False),
])
def test_satisfies(installed: str, spec: str, ok: bool) -> None:
    assert satisfies(installed, spec) is ok


def test_parse_dists() -> None:
    assert parse_dists(["Frappe_Bench-5.31.1", "demo_app-0.1.0", "legacy-1.0-py3.11", "frappe"]) == {
        "frappe-bench": "5.31.1", "demo-app": "0.1.0", "legacy": "1.0", "frappe": ""}


PIP_PROBE = (
    "dist=pip-23.2.1\ndist=frappe-15.0.0\n"
    "req=abc\nreqmark=abc\n"
    "edit=d1\neditname=frappe\neditmark=d1 /b/apps/frappe\n"
    "edit=d2\neditname=\neditmark=old /b/apps/erpnext\n"
)


def pargs(**raw: Any) -> dict[str, Any]:
    args = args_of(Pip, {"virtualenv": "/b/env", **raw})
    Pip().check_args(args)
    return args


def test_plan_reinstalls_only_changed_editables() -> None:
    args = pargs(requirements="/b/req.txt", editable=["/b/apps/frappe", "/b/apps/erpnext"], name=["pip>=23"])
    plan = make_plan(args, probe_values(PIP_PROBE))
    assert plan.names == [] and not plan.requirements and plan.editables == ["/b/apps/erpnext"]
    assert plan.markers == {editable_marker("/b/apps/erpnext"): "d2 /b/apps/erpnext"}


def test_plan_latest_and_absent() -> None:
    assert make_plan(pargs(name=["pip"], state="latest"), probe_values(PIP_PROBE)).names == ["pip"]
    assert make_plan(pargs(name=["pip", "nope"], state="absent"), probe_values(PIP_PROBE)).uninstall == ["pip"]


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Pip(), pargs(name=["frappe==15.0.0"], editable=["/b/apps/frappe"]), ctx, PIP_PROBE)
    assert result.status == "ok" and ctx.calls == []


def test_change_is_one_pip_call_then_markers() -> None:
    ctx = FakeContext(results=[CommandResult(0, "dist=pip-23.2.1\ndist=frappe-15.0.0\ndist=erpnext-15.1.0\n", "")])
    args = pargs(editable=["/b/apps/frappe", "/b/apps/erpnext"], name=["gunicorn"], extra_args="--no-deps")
    result = execute_module(Pip(), args, ctx, PIP_PROBE)
    assert result.status == "changed"
    [(script, _stdin, _ro)] = ctx.changes
    assert "/b/env/bin/python -m pip install --no-deps gunicorn -e /b/apps/erpnext >&2" in script
    assert script.index("pip install") < script.index("pip-editable-erpnext.sha256")
    assert result.data["installed"] == [{"name": "erpnext", "version": "15.1.0"}]


def test_pip_failure_keeps_markers_unwritten() -> None:
    ctx = FakeContext(results=[CommandResult(1, "", "ERROR: No matching distribution found for nope")])
    result = execute_module(Pip(), pargs(name=["nope"]), ctx, PIP_PROBE)
    assert result.status == "failed" and "No matching distribution" in result.msg


@pytest.mark.parametrize("raw", [{}, {"name": ["git+https://x/y.git"]}, {"editable": ["rel/path"]},
                                 {"requirements": "/r.txt", "state": "absent"}, {"extra_args": "'unclosed"}])
def test_bad_args(raw: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        pargs(**raw)


@pytest.mark.parametrize("raw", [{"virtualenv": "/b/env"}, {"virtualenv": None, "executable": "/b/env/bin/pip"},
                                 {"virtualenv": None}])
def test_scripts_are_valid_sh(raw: dict[str, Any]) -> None:
    args = pargs(name=["x"], editable=["/b/apps/frappe"], requirements="/b/r.txt", **raw)
    subprocess.run(["sh", "-n", "-c", Pip().probe(args)], check=True)
    plan = make_plan(args, probe_values(PIP_PROBE))
    subprocess.run(["sh", "-n", "-c", Pip()._change_script(args, plan)], check=True)
    subprocess.run(["sh", "-n", "-c", Venv().probe(args_of(Venv, {"path": "/b/env"}))], check=True)
