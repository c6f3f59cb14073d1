"""fleet_steps.py: what each app host's report, release mark and journal say after a multi-server update."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provision.contract import CommandResult
from provision.update.fleet import FleetResult
from provision.update.fleet_steps import AppHostSteps, LbSteps
from provision.update.flow import FlowOptions, HostFlow, SiteReport, StepFailed
from provision.update.plan import HostPlan

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, name: str, fail: str = "") -> None:
        self.name = name
        self.scripts: list[str] = []
        self.stdins: list[bytes] = []
        self.fail = fail

    def open(self) -> None: ...
    def close(self) -> None: ...
    def fetch(self, *args: Any, **kwargs: Any) -> None: ...

    def run(self, script: str, *, stdin: bytes | None = None, become_user: str | None = None,
            timeout: float | None = None) -> CommandResult:
        self.scripts.append(script)
        self.stdins.append(stdin or b"")
        if self.fail and self.fail in script:
            return CommandResult(1, "", "refused on purpose")
        return CommandResult(0, json.dumps({"changed": True, "lines": 2, "up": 2}) + "\n", "")


class Quiet:
    def __init__(self) -> None:
        self.done: list[tuple[str, str, str]] = []

    def step_started(self, host: str, step: str, site: str | None) -> None: ...

    def step_done(self, host: str, step: str, site: str | None, status: str, msg: str, duration: float) -> None:
        self.done.append((host, step, status))

    def event(self, kind: str, record: Any) -> None: ...


def plan(host: str) -> HostPlan:
    return HostPlan(host=host, release="r-new", release_path="/home/frappe/benches/r-new/frappe-bench",
                    live_path="/home/frappe/benches/r-old/frappe-bench", bench_path="/home/frappe/frappe-bench",
                    shared_path="/home/frappe/shared", frappe_home="/home/frappe", frappe_user="frappe",
                    bench_name="frappe-bench", bench_cli="bench", supervisorctl="supervisorctl",
                    restart_cmd="supervisorctl restart all", apps=("frappe", "ledger"), app_refs={}, app_repos={},
                    sites=(), dns_multitenant=True, nginx_http_port=80)


def steps(host: str) -> tuple[AppHostSteps, Recorder]:
    connection = Recorder(host)
    flow = HostFlow(connection, Recorder("local"), plan(host), FlowOptions(run_id="run1"), Quiet())
    flow.report.sites = {"s1": SiteReport("s1", migrate=True)}
    return AppHostSteps(flow), connection


def journal_lines(connection: Recorder) -> list[dict[str, Any]]:
    return [json.loads(s) for s in connection.stdins if s.startswith(b"{")]


def test_an_updated_host_is_marked_good_and_its_journal_ends_ok() -> None:
    step, connection = steps("app1")
    step.began = True
    step.finish(FleetResult(mode="window", status="updated", updated=["app1", "app2"]), {})
    assert step.flow.report.status == "updated" and step.flow.report.sites["s1"].state == "migrated"
    assert any("good" in s and "r-new" in s for s in connection.scripts)
    assert journal_lines(connection)[-1]["step"] == "end" and journal_lines(connection)[-1]["data"]["result"] == "ok"


def test_a_host_rolled_back_with_another_is_marked_bad_and_names_the_failed_host() -> None:
    step, connection = steps("app2")
    step.began = True
    result = FleetResult(mode="window", status="rolled_back", rolled_back=["app1", "app2"], host="app1",
                         step="migrate", error="patch failed")
    step.finish(result, {})
    report = step.flow.report
    assert report.status == "rolled_back" and report.error == "app1 failed: patch failed" and report.step == "migrate"
    assert any("bad" in s for s in connection.scripts)
    assert journal_lines(connection)[-1]["data"]["result"] == "rolled_back"


def test_a_host_never_switched_is_unchanged_and_not_marked() -> None:
    step, connection = steps("app2")
    step.finish(FleetResult(mode="rolling", status="rolled_back", rolled_back=["app1"], host="app1",
                            error="gate"), {})
    assert step.flow.report.status == "unchanged" and any("app1 failed" in n for n in step.flow.report.notes)
    assert not any("bad" in s or "good" in s for s in connection.scripts)


def test_point_site_rewrites_db_name_and_user_and_records_the_kept_database() -> None:
    step, connection = steps("app2")
    step.point_site("s1", {"new_db": "_abc_rb1", "old_db": "_abc", "db_user": "_abc"})
    assert any("_abc_rb1" in s and "site_config.json" in s for s in connection.scripts)
    site = step.flow.report.sites["s1"]
    assert (site.state, site.restored_db, site.kept_db) == ("restored", "_abc_rb1", "_abc")
    step.point_site("s1", {"new_db": "_abc_rb2", "old_db": "_abc", "db_user": "_abc_rb2", "config_user": None})
    script = next(s for s in reversed(connection.scripts) if "_abc_rb2" in s and "site_config.json" in s)
    assert '"db_user": null' in script  # the key is removed: Frappe logs in as _abc_rb2


def test_lb_drain_runs_on_every_lb_and_a_refusal_stops_with_the_lb_named() -> None:
    first, second = Recorder("lb1"), Recorder("lb2", fail="frappe-upstreams")
    lbs = LbSteps({"lb1": first, "lb2": second}, "/etc/nginx/conf.d/frappe-upstreams.conf",
                  {"app1": ["app1", "10.0.0.11"]}, Quiet(), keep_down=["app9"])
    with pytest.raises(StepFailed) as failure:
        lbs.drain("app1")
    assert "on lb2" in failure.value.message and first.scripts and "10.0.0.11" in first.scripts[0]
    lbs.undrain("app9")  # drained by the operator: stays so
    assert len(first.scripts) == 1
