"""The host plan the flow reads from the playbook, the hooks' shapes, and the per-site recap table."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from provision.errors import OptionsError
from provision.update.flow import HostReport, SiteReport
from provision.update.hooks import hooks_of
from provision.update.plan import HostPlan, SiteTarget
from provision.update.report import site_table
from provision.update.rollout import check_serial, parse_app_refs

pytestmark = pytest.mark.unit


def plan_data(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "release": "r-000000000002", "release_path": "/h/benches/r-000000000002/frappe-bench",
        "live_release_path": "/h/benches/r-000000000001/frappe-bench", "bench_path": "/h/frappe-bench",
        "shared_path": "/h/shared", "frappe_home": "/h", "frappe_user": "frappe", "bench_name": "frappe-bench",
        "bench_cli": "bench", "supervisorctl_bin": "supervisorctl", "restart_cmd": "supervisorctl restart x:",
        "apps": ["frappe", "ledger"], "app_refs": ["version-15", "v2"], "app_repos": ["git://g/f", "git://g/l"],
        "site_targets": '[{"name": "a", "port": 80, "tls": false}, {"name": "b", "port": 9000, "tls": false}, '
                        '{"name": "c", "port": 8001, "tls": false}]',
        "dns_multitenant": False, "nginx_http_port": 80,
    }
    data.update(extra)
    return data


def test_site_targets_are_taken_as_the_playbook_rendered_them() -> None:
    plan = HostPlan.from_debug("h", plan_data())
    assert [(s.name, s.port, s.tls) for s in plan.sites] == [("a", 80, False), ("b", 9000, False), ("c", 8001, False)]
    listed = HostPlan.from_debug("h", plan_data(site_targets=[{"name": "a", "port": 443, "tls": True}]))
    assert listed.sites == (SiteTarget("a", 443, True),)
    assert plan.live_release == "r-000000000001" and plan.release_dir == "/h/benches/r-000000000002"
    assert plan.app_refs == {"frappe": "version-15", "ledger": "v2"}


def test_multitenant_sites_share_the_http_port_and_undeclared_ones_are_reachable_by_name() -> None:
    plan = HostPlan.from_debug("h", plan_data(dns_multitenant=True, site_targets=[{"name": "a", "port": 80}]))
    assert {s.port for s in plan.sites} == {80}
    assert plan.site_target("other") == SiteTarget("other", 80)
    single = HostPlan.from_debug("h", plan_data())
    assert single.site_target("other").port == 0  # not checked through nginx: no port to reach it on


def test_hooks_shapes() -> None:
    hooks = hooks_of({"pre_update": "echo hi", "on_update_failure": {"command": "page", "delegate_to": "localhost"}},
                     "h")
    assert hooks["pre_update"].command == "echo hi" and not hooks["pre_update"].local
    assert hooks["on_update_failure"].local and hooks["on_update_failure"].become_user is None
    with pytest.raises(OptionsError, match="unknown hook 'pre_deploy'"):
        hooks_of({"pre_deploy": "x"}, "h")
    with pytest.raises(OptionsError, match="delegate_to must be localhost"):
        hooks_of({"post_update": {"command": "x", "delegate_to": "db1"}}, "h")


def test_app_refs_and_serial() -> None:
    assert parse_app_refs("ledger@v2, frappe@version-15") == {"ledger": "v2", "frappe": "version-15"}
    with pytest.raises(OptionsError, match="APP@REF"):
        parse_app_refs("ledger")
    assert check_serial("25%") == "25%" and check_serial("2") == "2"
    for bad in ("0", "x", "150%"):
        with pytest.raises(OptionsError):
            check_serial(bad)


def test_site_table_shows_downtime_per_site() -> None:
    report = HostReport("lab1", status="updated", from_release="r-1", to_release="r-2", sites={
        "s1": SiteReport("s1", migrate=True, state="migrated", maintenance_s=12.34, down_s=0.5,
                         backup="/h/shared/update-backups/run/s1"),
        "s2": SiteReport("s2", state="switched", down_s=0.0),
    })
    console = Console(file=io.StringIO(), width=120)
    console.print(site_table({"lab1": report}))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "s1" in text and "migrated" in text and "12.3s" in text and "0.5s" in text
    assert "/h/shared/update-backups/run/s1" in text
    lines = [line for line in text.splitlines() if line.strip().startswith("lab1")]
    assert len(lines) == 2 and "switched" in lines[1] and " no " in lines[1]
