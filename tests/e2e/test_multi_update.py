"""``provision update`` on the shared multi-server deployment (tests/e2e/multiserver.py): lb, app1, app2, db.

In order, on the one deploy (ledger@v1): a migrating update to v2 (one backup, one migrate on app1,
every app host switched in one measured maintenance window), a rolling update to v2.1 (no migrate)
with a request loop through the load balancer that must see no failure, and v3-broken (its migrate
fails: every app host back on v2.1, the database restored once into a new one whose every table
equals the one before), then ``provision rollback`` to v2 (rolling, again with no failed request). The
module ends by updating back to the inventory's v1 so the other
multi-server tests find the system as it was.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .multiserver import APP_HOSTS, SITES, MultiServer, http

pytestmark = pytest.mark.e2e

ACCOUNT = "multi-update"
UPDATE_TIMEOUT = 2400

_SUMS = r'''
import json, subprocess, sys
db = sys.argv[1]
def sql(q):
    out = subprocess.run(["mariadb", "-N", "-B"], input=q, capture_output=True, text=True, check=True)
    return [l.split("\t") for l in out.stdout.splitlines() if l]
tables = [r[0] for r in sql("SELECT table_name FROM information_schema.tables WHERE table_schema='%s'" % db)]
def one(t):
    name = "`%s`.`%s`" % (db, t)
    return [sql("SELECT COUNT(*) FROM " + name)[0][0], sql("CHECKSUM TABLE %s EXTENDED" % name)[0][1]]
print(json.dumps({t: one(t) for t in sorted(tables)}))
'''


def site_config(ms: MultiServer, host: str, site: str) -> dict[str, Any]:
    """The site's config on an app host, without its password."""
    text = ms.ssh(host, f"cat /home/frappe/frappe-bench/sites/{site}/site_config.json").stdout
    config = json.loads(text)
    config.pop("db_password", None)
    return dict(config)


def table_sums(ms: MultiServer, db_name: str) -> dict[str, Any]:
    """Every table's row count and checksum, read on the db host independently of provision."""
    return dict(json.loads(ms.ssh("db", f"python3 - {db_name} <<'EOF'\n{_SUMS}\nEOF").stdout))


def sql_on_db(ms: MultiServer, query: str) -> str:
    return ms.ssh("db", f"mariadb -N -B <<'EOF'\n{query}\nEOF").stdout.strip()


def versions(ms: MultiServer, site: str, host: str | None = None) -> dict[str, str]:
    path = "/api/method/frappe.utils.change_log.get_versions"
    status, body = ms.direct(host, path, site) if host else ms.lb(path, site)
    assert status == 200, body
    return {app: info["version"] for app, info in json.loads(body)["message"].items()}


def entries(ms: MultiServer, site: str) -> list[tuple[str, float]]:
    status, body = ms.lb("/api/method/ledger.api.entries", site)
    assert status == 200, (body, lb_errors(ms))
    return [(e["account"], float(e["amount"])) for e in json.loads(body)["message"]]


def live_release(ms: MultiServer, host: str) -> str:
    return ms.ssh(host, "readlink /home/frappe/frappe-bench").stdout.strip()


def multi_event(ms: MultiServer, result: Any) -> dict[str, Any]:
    found = [e for e in ms.events(result) if e["event"] == "multi_update"]
    assert len(found) == 1, result.stderr[-3000:]
    return found[0]


def update_tasks(ms: MultiServer, result: Any) -> list[tuple[str, str, str | None]]:
    return [(e["host"], e["task"], e.get("item")) for e in ms.events(result)
            if e["event"] == "task" and e["module"] == "update" and e["status"] != "failed"]


def drained(ms: MultiServer) -> list[str]:
    """The lb's upstream server lines that are marked down (the file's comment names the marker too)."""
    text = ms.ssh("lb", "cat /etc/nginx/conf.d/frappe-upstreams.conf").stdout
    return [line.strip() for line in text.splitlines() if line.strip().startswith("server ") and " down" in line]


def lb_errors(ms: MultiServer) -> str:
    """The lb's last nginx errors: why a request through it failed."""
    return ms.ssh("lb", "tail -n 15 /var/log/nginx/error.log", check=False).stdout


def update(ms: MultiServer, ref: str) -> Any:
    return ms.provision("update", "prod", "--apps", f"ledger@{ref}", timeout=UPDATE_TIMEOUT)


@pytest.fixture(scope="module")
def system(multiserver: MultiServer) -> Iterator[MultiServer]:
    """The shared deployment with two entries per site; updated back to v1 at the end."""
    for site in SITES:
        if not any(account == ACCOUNT for account, _ in entries(multiserver, site)):
            for amount in (3, 4):
                status, body = multiserver.lb(f"/api/method/ledger.api.add_entry?account={ACCOUNT}&amount={amount}",
                                              site)
                assert status == 200, body
    yield multiserver
    if versions(multiserver, SITES[0]).get("ledger") != "1.0.0":
        back = update(multiserver, "v1")
        assert back.returncode == 0, multiserver.failures(back)
    assert drained(multiserver) == []


def test_migrating_update_backs_up_and_migrates_once_in_one_measured_window(system: MultiServer) -> None:
    before = {site: entries(system, site) for site in SITES}
    result = update(system, "v2")
    assert result.returncode == 0, system.failures(result)
    multi = multi_event(system, result)
    assert multi["mode"] == "window" and multi["status"] == "updated", multi
    assert multi["migrated_on"] == "app1" and sorted(multi["migrated"]) == sorted(SITES)
    assert multi["window_s"] is not None and multi["window_s"] > 0
    assert f"maintenance window {multi['window_s']:.1f}s" in " ".join(result.stderr.split())  # (wrapped lines)
    tasks = update_tasks(system, result)
    assert sorted((h, s) for h, t, s in tasks if t == "migrate") == [("app1", s) for s in sorted(SITES)]
    assert sorted((h, s) for h, t, s in tasks if t == "db_backup") == [("db", s) for s in sorted(SITES)]
    assert {h for h, t, _ in tasks if t == "switch"} == set(APP_HOSTS)
    for site in SITES:
        db = site_config(system, "app1", site)["db_name"]
        runs = sql_on_db(system, f"SELECT COUNT(*) FROM `{db}`.`tabPatch Log` WHERE patch='ledger.patches.v2_add_memo'")
        assert runs == "1", (site, runs)
        assert entries(system, site) == before[site]
        for host in APP_HOSTS:
            assert versions(system, site, host)["ledger"] == "2.0.0"
            assert site_config(system, host, site).get("maintenance_mode", 0) == 0
    assert live_release(system, "app1").split("/")[-2] == live_release(system, "app2").split("/")[-2]


@contextlib.contextmanager
def requests_through_lb(ms: MultiServer) -> Iterator[tuple[list[int], list[tuple[str, int, str]]]]:
    """A bounded ping loop through the load balancer while the body runs: (served count, failures)."""
    failed: list[tuple[str, int, str]] = []
    served = [0]
    done = threading.Event()

    def hammer() -> None:
        deadline = time.monotonic() + 900  # bounded, whatever happens to the update
        while not done.is_set() and time.monotonic() < deadline:
            for site in SITES:
                status, body = http(ms.address("lb"), "/api/method/ping", site, timeout=10)
                served[0] += 1
                if status != 200:
                    failed.append((site, status, body[:100]))
            time.sleep(0.05)

    loop = threading.Thread(target=hammer, daemon=True)
    loop.start()
    try:
        yield served, failed
    finally:
        done.set()
        loop.join(timeout=30)


def test_rolling_update_serves_every_request_through_the_load_balancer(system: MultiServer) -> None:
    with requests_through_lb(system) as (served, failed):
        result = update(system, "v2.1")
    assert result.returncode == 0, system.failures(result)
    multi = multi_event(system, result)
    assert multi["mode"] == "rolling" and multi["status"] == "updated" and multi["updated"] == list(APP_HOSTS)
    assert multi["window_s"] is None and multi["migrated"] == []
    assert served[0] > 20 and failed == [], (failed[:5], lb_errors(system))
    assert all(d["failed"] == 0 for d in multi["through_lb"].values()), multi["through_lb"]
    # one host at a time: drained before its switch, put back after its gate, before the next one
    steps = [(h, t) for h, t, _ in update_tasks(system, result)
             if t in ("switch", "health") or t.startswith(("lb drain", "lb put back"))]
    assert steps == [("lb", "lb drain app1"), ("app1", "switch"), ("app1", "health"), ("lb", "lb put back app1"),
                     ("lb", "lb drain app2"), ("app2", "switch"), ("app2", "health"), ("lb", "lb put back app2")], steps
    assert not any(t == "maintenance_on" for _, t, _ in update_tasks(system, result))
    for site in SITES:
        for host in APP_HOSTS:
            assert versions(system, site, host)["ledger"] == "2.1.0"
    assert drained(system) == []


def test_broken_release_rolls_every_app_host_back_and_restores_the_data_once(system: MultiServer) -> None:
    links = {host: live_release(system, host) for host in APP_HOSTS}
    dbs = {site: site_config(system, "app1", site)["db_name"] for site in SITES}
    before = {site: table_sums(system, db) for site, db in dbs.items()}
    rows = {site: entries(system, site) for site in SITES}
    result = update(system, "v3-broken")
    assert result.returncode == 2, system.failures(result)
    multi = multi_event(system, result)
    assert multi["status"] == "rolled_back" and multi["step"] == "migrate" and multi["host"] == "app1", multi
    assert "v3 patch failed on purpose" in multi["error"]
    assert sorted(multi["rolled_back"]) == sorted(APP_HOSTS)
    migrated = multi["migrated"]
    assert migrated and set(multi["restored"]) == set(migrated)
    tasks = update_tasks(system, result)
    assert sorted(s for h, t, s in tasks if t == "db_restore" and h == "db") == sorted(migrated)  # once each
    for site in SITES:
        for host in APP_HOSTS:
            assert live_release(system, host) == links[host]
            assert versions(system, site, host)["ledger"] == "2.1.0"
            assert site_config(system, host, site).get("maintenance_mode", 0) == 0
        assert entries(system, site) == rows[site]
        now_db = site_config(system, "app1", site)["db_name"]
        assert site_config(system, "app2", site)["db_name"] == now_db
        assert table_sums(system, now_db) == before[site], site
        if site in migrated:  # the restored copy serves; the migrated database is kept for inspection
            assert now_db == multi["restored"][site]["new_db"] and now_db != dbs[site]
            kept = sql_on_db(system, f"SELECT SUM(amount) FROM `{dbs[site]}`.`tabLedger Entry`")
            assert float(kept) == 100 * sum(amount for _, amount in rows[site])
            grants = sql_on_db(system, f"SELECT Host FROM mysql.db WHERE Db='{now_db}'").split()
            assert {system.address(h) for h in APP_HOSTS} <= set(grants) and "%" not in grants, grants
        else:
            assert now_db == dbs[site]
    assert drained(system) == []
    locks = [system.ssh(h, "ls /var/lib/provision/lock", check=False).returncode for h in ("lb", "app1", "app2", "db")]
    assert all(rc != 0 for rc in locks), locks


def test_rollback_takes_every_app_host_back_one_at_a_time(system: MultiServer) -> None:
    rows = {site: entries(system, site) for site in SITES}
    with requests_through_lb(system) as (served, failed):
        result = system.provision("rollback", "prod", timeout=UPDATE_TIMEOUT)
    assert result.returncode == 0, system.failures(result)
    multi = multi_event(system, result)
    assert multi["mode"] == "rolling" and multi["status"] == "updated" and multi["updated"] == list(APP_HOSTS)
    assert served[0] > 20 and failed == [], (failed[:5], lb_errors(system))
    steps = [(h, t) for h, t, _ in update_tasks(system, result) if t == "switch" or t.startswith("lb drain")]
    assert steps == [("lb", "lb drain app1"), ("app1", "switch"), ("lb", "lb drain app2"), ("app2", "switch")]
    for site in SITES:
        assert entries(system, site) == rows[site]
        for host in APP_HOSTS:
            assert versions(system, site, host)["ledger"] == "2.0.0"
    assert live_release(system, "app1").split("/")[-2] == live_release(system, "app2").split("/")[-2]
    assert drained(system) == []
