"""The order of a multi-server update (fleet.py): drain/switch/put back, one backup, one migrate,
one restore, every app host back on any failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from provision.update.fleet import FleetUpdate
from provision.update.flow import StepFailed

pytestmark = pytest.mark.unit


class Log:
    def __init__(self, fail: str = "") -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, call: str) -> None:
        self.calls.append(call)
        if call == self.fail:
            raise StepFailed(call.split()[1] if " " in call else call, None, f"{call} failed on purpose")


class FakeHost:
    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log

    def switch_new(self) -> None:
        self.log(f"{self.name} switch_new")

    def switch_old(self) -> None:
        self.log(f"{self.name} switch_old")

    def restart(self, *, new: bool) -> None:
        self.log(f"{self.name} restart_{'new' if new else 'old'}")

    def gate(self, *, new: bool, in_maintenance: Sequence[str]) -> None:
        self.log(f"{self.name} gate_{'new' if new else 'old'}")

    def maintenance(self, site: str, *, on: bool) -> None:
        self.log(f"{self.name} maintenance_{'on' if on else 'off'} {site}")

    def drain_jobs(self, site: str) -> None:
        self.log(f"{self.name} drain_jobs {site}")

    def migrate(self, site: str) -> None:
        self.log(f"{self.name} migrate {site}")

    def point_site(self, site: str, restored: Mapping[str, Any]) -> None:
        self.log(f"{self.name} point {site} {restored['new_db']}")


class FakeBalancer:
    def __init__(self, log: Log) -> None:
        self.log = log

    def drain(self, host: str) -> None:
        self.log(f"lb drain {host}")

    def undrain(self, host: str) -> None:
        self.log(f"lb undrain {host}")


class FakeDatabase:
    def __init__(self, log: Log) -> None:
        self.log = log

    def backup(self, site: str) -> dict[str, Any]:
        self.log(f"db backup {site}")
        return {"dir": f"/b/{site}", "dump": f"/b/{site}/d.sql.gz"}

    def restore(self, site: str, backup: Mapping[str, Any]) -> dict[str, Any]:
        self.log(f"db restore {site}")
        return {"new_db": f"{site}_rb", "old_db": site}


def fleet(log: Log, *, migrating: Sequence[str] = (), hosts: Sequence[str] = ("app1", "app2"),
          no_backup: bool = False) -> FleetUpdate:
    ticks = iter(range(0, 1000, 5))
    return FleetUpdate([FakeHost(h, log) for h in hosts], FakeBalancer(log), FakeDatabase(log), migrating=migrating,
                       no_backup=no_backup, clock=lambda: float(next(ticks)))


def test_rolling_update_drains_switches_checks_and_puts_back_one_host_at_a_time() -> None:
    log = Log()
    result = fleet(log).run()
    assert result.status == "updated" and result.mode == "rolling" and result.updated == ["app1", "app2"]
    assert log.calls == [
        "lb drain app1", "app1 switch_new", "app1 restart_new", "app1 gate_new", "lb undrain app1",
        "lb drain app2", "app2 switch_new", "app2 restart_new", "app2 gate_new", "lb undrain app2",
    ]
    assert result.window_s is None and not result.migrated


def test_rolling_failure_on_the_second_host_rolls_both_back_drained_one_at_a_time() -> None:
    log = Log(fail="app2 gate_new")
    result = fleet(log).run()
    assert result.status == "rolled_back" and result.host == "app2" and "failed on purpose" in result.error
    assert sorted(result.rolled_back) == ["app1", "app2"] and result.updated == []
    after = log.calls[log.calls.index("app2 gate_new") + 1:]
    assert after == [
        # app2 is still drained: straight back
        "app2 switch_old", "app2 restart_old", "app2 gate_old", "lb undrain app2",
        # app1 was serving the new release: drained again before its restart
        "lb drain app1", "app1 switch_old", "app1 restart_old", "app1 gate_old", "lb undrain app1",
    ]
    assert not any(c.startswith("db ") for c in log.calls)


def test_rolling_failure_to_drain_changes_nothing() -> None:
    log = Log(fail="lb drain app1")
    result = fleet(log).run()
    assert result.status == "failed" and result.step == "drain"
    assert log.calls == ["lb drain app1"]


def test_a_host_whose_way_back_fails_stays_drained() -> None:
    # the first host fails its gate; its way back fails too
    calls: list[str] = []

    class Failing(Log):
        def __call__(self, call: str) -> None:
            calls.append(call)
            if call in ("app1 gate_new", "app1 restart_old"):
                raise StepFailed("x", None, f"{call} failed")

    log = Failing()
    result = fleet(log).run()
    assert result.status == "rolled_back"
    assert "lb undrain app1" not in calls and any("stays drained" in p for p in result.problems)
    assert not any(c.startswith("app2") for c in calls)


def test_migrating_update_backs_up_once_migrates_once_and_switches_every_host_in_one_window() -> None:
    log = Log()
    result = fleet(log, migrating=["s1", "s2"]).run()
    assert result.status == "updated" and result.mode == "window"
    assert log.calls == [
        "app1 maintenance_on s1", "app2 maintenance_on s1", "app1 maintenance_on s2", "app2 maintenance_on s2",
        "app1 drain_jobs s1", "db backup s1", "app1 drain_jobs s2", "db backup s2",
        "app1 switch_new", "app2 switch_new",
        "app1 migrate s1", "app1 migrate s2",
        "app1 restart_new", "app2 restart_new", "app1 gate_new", "app2 gate_new",
        "app1 maintenance_off s1", "app2 maintenance_off s1", "app1 maintenance_off s2", "app2 maintenance_off s2",
    ]
    assert [c for c in log.calls if "migrate" in c] == ["app1 migrate s1", "app1 migrate s2"]
    assert not any("lb " in c for c in log.calls)  # every host is in maintenance together: no drain
    assert result.migrated_on == "app1" and result.window_s == 5.0
    assert set(result.backups) == {"s1", "s2"}


def test_failed_migrate_restores_the_database_once_and_points_every_host_at_it() -> None:
    log = Log(fail="app1 migrate s1")
    result = fleet(log, migrating=["s1", "s2"]).run()
    assert result.status == "rolled_back" and result.step == "migrate" and result.host == "app1"
    after = log.calls[log.calls.index("app1 migrate s1") + 1:]
    assert after == [
        "app1 switch_old", "app2 switch_old",
        "db restore s1", "app1 point s1 s1_rb", "app2 point s1 s1_rb",  # s2's migrate never started
        "app1 restart_old", "app1 gate_old", "app2 restart_old", "app2 gate_old",
        "app1 maintenance_off s1", "app2 maintenance_off s1", "app1 maintenance_off s2", "app2 maintenance_off s2",
    ]
    assert log.calls.count("db restore s1") == 1 and "db restore s2" not in log.calls
    assert sorted(result.rolled_back) == ["app1", "app2"] and result.restored == {
        "s1": {"new_db": "s1_rb", "old_db": "s1"}}
    assert result.window_s is not None and result.window_s > 0


def test_failed_gate_after_the_migrate_restores_every_migrated_site() -> None:
    log = Log(fail="app2 gate_new")
    result = fleet(log, migrating=["s1", "s2"]).run()
    assert result.status == "rolled_back" and result.host == "app2"
    assert [c for c in log.calls if c.startswith("db restore")] == ["db restore s1", "db restore s2"]
    assert {"app1 switch_old", "app2 switch_old"} <= set(log.calls)


def test_failure_before_the_switch_ends_maintenance_and_restores_nothing() -> None:
    log = Log(fail="db backup s1")
    result = fleet(log, migrating=["s1"]).run()
    assert result.status == "failed" and result.rolled_back == []
    after = log.calls[log.calls.index("db backup s1") + 1:]
    assert after == ["app1 maintenance_off s1", "app2 maintenance_off s1"]


def test_failed_restore_keeps_the_site_in_maintenance() -> None:
    calls: list[str] = []

    class Failing(Log):
        def __call__(self, call: str) -> None:
            calls.append(call)
            if call in ("app1 migrate s1", "db restore s1"):
                raise StepFailed("x", None, f"{call} failed")

    result = fleet(Failing(), migrating=["s1"]).run()
    assert result.status == "rolled_back"
    assert "app1 maintenance_off s1" not in calls and "app2 maintenance_off s1" not in calls
    assert any("kept in maintenance: s1" in p for p in result.problems)


def test_no_backup_means_no_restore_and_says_so() -> None:
    log = Log(fail="app1 migrate s1")
    result = fleet(log, migrating=["s1"], no_backup=True).run()
    assert not any(c.startswith("db ") for c in log.calls)
    assert any("no backup" in p for p in result.problems)


def test_a_stop_request_stops_before_the_next_host() -> None:
    log = Log()
    update = fleet(log)
    original = update.balancer.undrain

    def undrain_then_stop(host: str) -> None:
        original(host)
        update.stop.set()

    update.balancer.undrain = undrain_then_stop  # type: ignore[method-assign]
    result = update.run()
    assert result.status == "rolled_back" and "interrupted" in result.error
    assert "app2 switch_new" not in log.calls and "app1 switch_old" in log.calls


def _inventory(data: dict[str, Any]) -> Any:
    from provision.inventory import Inventory

    return Inventory.from_data(data)


MULTI = {"all": {"children": {"prod": {"children": {
    "lb": {"hosts": {"lb1": {}}}, "app": {"hosts": {"app1": {}, "app2": {}}},
    "db": {"hosts": {"db1": {}}}, "redis": {"hosts": {"store": {}}}, "files": {"hosts": {"store": {}}}}}}}}


def test_layout_of_a_multi_server_inventory() -> None:
    from provision.update.fleet_run import multiserver_layout

    inventory = _inventory(MULTI)
    layout = multiserver_layout(inventory, [h.name for h in inventory.select("prod")])
    assert layout is not None
    assert layout.app == ("app1", "app2") and layout.lb == ("lb1",) and layout.db == "db1"
    limited = multiserver_layout(inventory, [h.name for h in inventory.select("prod:&app2")])
    assert limited is not None and limited.app == ("app2",) and limited.all_app == ("app1", "app2")
    assert multiserver_layout(inventory, [h.name for h in inventory.select("lb")]) is None


def test_single_host_benches_keep_the_single_host_flow() -> None:
    from provision.update.fleet_run import multiserver_layout

    inventory = _inventory({"all": {"children": {"prod": {"hosts": {"lab1": {}, "lab2": {}}}}}})
    assert multiserver_layout(inventory, ["lab1", "lab2"]) is None
    # an app group without a load balancer is not a multi-server bench either
    inventory = _inventory({"all": {"children": {"app": {"hosts": {"lab1": {}}}}}})
    assert multiserver_layout(inventory, ["lab1"]) is None


def test_group_names_come_from_the_inventory() -> None:
    from provision.update.fleet_run import multiserver_layout

    inventory = _inventory({"all": {"vars": {"role_groups": {"app": "web", "lb": "front", "db": None}}, "children": {
        "web": {"hosts": {"w1": {}, "w2": {}}}, "front": {"hosts": {"f1": {}}}}}})
    layout = multiserver_layout(inventory, ["w1", "w2", "f1"])
    assert layout is not None and layout.app == ("w1", "w2") and layout.lb == ("f1",) and layout.db is None


def test_backup_takes_a_multi_server_benchs_sites_once_from_its_first_app_host() -> None:
    from provision.backup.targets import multiserver_hosts

    data = {"all": {"children": {"prod": {"children": MULTI["all"]["children"]["prod"]["children"] | {
        "solo": {"hosts": {"lab9": {}}}}}}}}
    inventory = _inventory(data)
    every = [h.name for h in inventory.select("prod")]
    assert multiserver_hosts(inventory, every) == (["app1", "lab9"], ["app1", "app2"])
    assert multiserver_hosts(inventory, ["app2"]) == (["app1"], ["app1", "app2"])
    assert multiserver_hosts(inventory, ["lab9"]) == (["lab9"], ["app1", "app2"])
    plain = _inventory({"all": {"children": {"prod": {"hosts": {"lab1": {}, "lab2": {}}}}}})
    assert multiserver_hosts(plain, ["lab1", "lab2"]) == (["lab1", "lab2"], [])
