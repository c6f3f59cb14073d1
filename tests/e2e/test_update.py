"""``provision update`` end to end: three lab hosts, a rolling update, a broken one rolled back.

One deploy for the module (ledger@v1, data written), then the tests run in order on the same
hosts: an update to v2 (migrates, every site keeps its data), a no-op re-run, an update to
v3-broken (the canary rolls back with every table's checksum as before, the other hosts are never
touched), a Python-only update (no maintenance, no failed request), two updates at once and a
killed one (the lock), and bench's own supervisor commands in ~/frappe-bench.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabHandle, claimed_lab
from .test_deploy import ADMIN_PASSWORD, DB_ROOT_PASSWORD, as_frappe, events, failures, http, recap, standin

pytestmark = pytest.mark.e2e

SITES = {"lab1": ["s1.local", "s2.local"], "lab2": ["s3.local"], "lab3": ["s4.local"]}
ALL_SITES = [(host, site) for host, sites in SITES.items() for site in sites]
ENTRIES = [("cash", 10), ("bank", 25), ("sales", 7)]


@pytest.fixture(scope="module")
def update_lab() -> Iterator[LabHandle]:
    with claimed_lab("update", 3) as handle:
        yield handle


@pytest.fixture(scope="module")
def git_url(update_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("repos")
    standin.make_app_repos(base)
    address = str(update_lab.lab.settings.gateway)
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                               f"--listen={address}", "--port=9418", str(base)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["git", "ls-remote", f"git://{address}:9418/ledger"], capture_output=True,
                             timeout=10).returncode != 0:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.2)
        yield f"git://{address}:9418"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def write_inventory(directory: Path, lab: LabHandle, git_url: str, ledger_ref: str) -> None:
    lines = ["all:", "  children:", "    prod:", "      hosts:"]
    for host in lab.hosts:
        lines += [f"        {host.name}:", f"          ssh_host: {host.address}", "          sites:"]
        for site in SITES[host.name]:
            lines += [f"            - name: {site}", f"              admin_password: !secret {ADMIN_PASSWORD}"]
    lines += [
        "      vars:",
        "        ssh_user: root",
        f"        ssh_private_key_file: {lab.key}",
        f"        ssh_known_hosts_file: {lab.known_hosts}",
        f"        db_root_password: !secret {DB_ROOT_PASSWORD}",
        "        dns_multitenant: true",
        "        gunicorn_workers: 2",
        "        update_health_timeout: 60",
        "        update_hooks:",
        "          pre_update: 'cat > /root/pre_update.json'",
        "          on_update_failure: 'cat > /root/on_update_failure.json'",
        "        apps:",
        f"          - {{name: frappe, repo: '{git_url}/frappe', ref: version-15}}",
        f"          - {{name: ledger, repo: '{git_url}/ledger', ref: {ledger_ref}}}",
    ]
    (directory / "inventory.yml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def project(update_lab: LabHandle, git_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three benches on ledger@v1, every site with three entries written over HTTP."""
    directory = tmp_path_factory.mktemp("project")
    write_inventory(directory, update_lab, git_url, "v1")
    result = provision(directory, "deploy", timeout=2400)
    assert result.returncode == 0, failures(result)
    for host, site in ALL_SITES:
        for account, amount in ENTRIES:
            status, body = http(update_lab.host(host).address,
                                f"/api/method/ledger.api.add_entry?account={account}&amount={amount}", site)
            assert status == 200, body
    return directory


def provision(project: Path, command: str, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", command, "prod", "--json", *args], cwd=project,
                          capture_output=True, text=True, timeout=timeout)


def update_recap(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return next(e for e in events(result) if e["event"] == "update_recap")["hosts"]


def versions(lab: LabHandle, host: str, site: str) -> dict[str, str]:
    status, body = http(lab.host(host).address, "/api/method/frappe.utils.change_log.get_versions", site)
    assert status == 200, body
    return {app: info["version"] for app, info in json.loads(body)["message"].items()}


def entries(lab: LabHandle, host: str, site: str) -> list[dict[str, Any]]:
    status, body = http(lab.host(host).address, "/api/method/ledger.api.entries", site)
    assert status == 200, body
    return json.loads(body)["message"]


_SUMS = r'''
import json, subprocess, sys
db = json.load(open(sys.argv[1]))["db_name"]
def sql(q):
    out = subprocess.run(["mariadb", "-N", "-B"], input=q, capture_output=True, text=True, check=True)
    return [l.split("\t") for l in out.stdout.splitlines() if l]
tables = [r[0] for r in sql("SELECT table_name FROM information_schema.tables WHERE table_schema='%s'" % db)]
def one(t):
    name = "`%s`.`%s`" % (db, t)
    return [sql("SELECT COUNT(*) FROM " + name)[0][0], sql("CHECKSUM TABLE %s EXTENDED" % name)[0][1]]
sums = {t: one(t) for t in sorted(tables)}
config = json.load(open(sys.argv[1]))
print(json.dumps({"db": db, "tables": sums, "maintenance": config.get("maintenance_mode", 0)}))
'''


def table_sums(lab: LabHandle, host: str, site: str) -> dict[str, Any]:
    """Every table's row count and checksum of the site's database, read independently of provision."""
    script = f"python3 - /home/frappe/shared/sites/{site}/site_config.json <<'EOF'\n{_SUMS}\nEOF"
    return json.loads(lab.ssh(host, script).stdout)


def live_release(lab: LabHandle, host: str) -> str:
    return lab.ssh(host, "readlink /home/frappe/frappe-bench").stdout.strip()


def test_deploy_builds_the_release_layout_bench_expects(update_lab: LabHandle, project: Path) -> None:
    link = live_release(update_lab, "lab1")
    assert link.startswith("/home/frappe/benches/r-") and link.endswith("/frappe-bench"), link
    for host, site in ALL_SITES:
        assert versions(update_lab, host, site)["ledger"] == "1.0.0"
        assert [(e["account"], float(e["amount"])) for e in entries(update_lab, host, site)] == \
            [(a, float(n)) for a, n in ENTRIES]


def test_update_to_v2_migrates_every_site_and_keeps_the_data(update_lab: LabHandle, project: Path,
                                                             git_url: str) -> None:
    write_inventory(project, update_lab, git_url, "v2")
    result = provision(project, "update")
    assert result.returncode == 0, failures(result)
    decisions = [e for e in events(result) if e["event"] == "migrate_decision"]
    assert {(d["host"], d["site"]) for d in decisions} == set(ALL_SITES)
    assert all(d["migrate"] and "patches" in d["reason"] for d in decisions), [d["reason"] for d in decisions]
    assert [d["host"] for d in decisions] == ["lab1", "lab1", "lab2", "lab3"]  # inventory order, lab1 the canary
    hosts = update_recap(result)
    for host, site in ALL_SITES:
        assert versions(update_lab, host, site)["ledger"] == "2.0.0"
        rows = entries(update_lab, host, site)
        assert [(e["account"], float(e["amount"])) for e in rows] == [(a, float(n)) for a, n in ENTRIES]
        db = table_sums(update_lab, host, site)["db"]
        query = f"SELECT COUNT(*) FROM \\`{db}\\`.\\`tabPatch Log\\` WHERE patch='ledger.patches.v2_add_memo'"
        patch_runs = update_lab.ssh(host, f'mariadb -N -e "{query}"').stdout.strip()
        assert patch_runs == "1", (host, site, patch_runs)
        report = hosts[host]["sites"][site]
        assert report["state"] == "migrated" and report["maintenance_s"] > 0, report
        assert report["backup"].startswith("/home/frappe/shared/update-backups/"), report
        assert table_sums(update_lab, host, site)["maintenance"] == 0
    assert "maintenance" in result.stderr and "not answering" in result.stderr  # the per-site downtime table
    pre_update = json.loads(update_lab.ssh("lab1", "cat /root/pre_update.json").stdout)
    assert pre_update["host"] == "lab1" and pre_update["sites"]["s1.local"]["migrate"] is True


def test_second_update_is_a_no_op(project: Path) -> None:
    result = provision(project, "update")
    assert result.returncode == 0, failures(result)
    assert {host: stats["changed"] for host, stats in recap(result).items()} == {"lab1": 0, "lab2": 0, "lab3": 0}, [
        (e["host"], e["task"], e["msg"]) for e in events(result) if e["event"] == "task" and e["changed"]]


def test_check_mode_says_what_would_happen_and_changes_nothing(update_lab: LabHandle, project: Path) -> None:
    links = {h.name: live_release(update_lab, h.name) for h in update_lab.hosts}
    benches = update_lab.ssh("lab1", "ls /home/frappe/benches").stdout
    result = provision(project, "update", "--apps", "ledger@v2.1", "--limit", "lab1", "--check")
    assert result.returncode == 0, failures(result)
    decisions = {d["site"]: d for d in events(result) if d["event"] == "migrate_decision"}
    assert set(decisions) == set(SITES["lab1"]) and not any(d["migrate"] for d in decisions.values()), decisions
    assert "none needs migrate" in decisions["s1.local"]["reason"]
    assert update_recap(result)["lab1"]["status"] == "checked"
    assert {h.name: live_release(update_lab, h.name) for h in update_lab.hosts} == links
    assert update_lab.ssh("lab1", "ls /home/frappe/benches").stdout == benches


def test_broken_update_rolls_the_canary_back_with_its_data_intact(update_lab: LabHandle, project: Path) -> None:
    before = {(h, s): table_sums(update_lab, h, s) for h, s in ALL_SITES}
    links = {h.name: live_release(update_lab, h.name) for h in update_lab.hosts}
    result = provision(project, "update", "--apps", "ledger@v3-broken")
    assert result.returncode == 2, failures(result)
    report = update_recap(result)["lab1"]
    assert report["status"] == "rolled_back" and report["step"] == "migrate", report
    assert "v3 patch failed on purpose" in report["error"]
    assert {e["host"] for e in events(result) if e["event"] == "task" and e["module"] == "update"} == {"lab1"}
    for host, site in ALL_SITES:
        after = table_sums(update_lab, host, site)
        assert after["tables"] == before[(host, site)]["tables"], (host, site)
        assert after["maintenance"] == 0, (host, site)
        assert versions(update_lab, host, site)["ledger"] == "2.0.0"
        assert live_release(update_lab, host) == links[host]
    # s1 (its migrate failed) uses the restored copy; the migrated database was kept, not dropped.
    # s2's migrate never started: its database was never touched.
    site_report = report["sites"]["s1.local"]
    assert site_report["state"] == "restored" and site_report["kept_db"] == before[("lab1", "s1.local")]["db"]
    assert table_sums(update_lab, "lab1", "s1.local")["db"] == site_report["restored_db"]
    kept = update_lab.ssh("lab1", f"mariadb -N -e \"SELECT SUM(amount) FROM \\`{site_report['kept_db']}\\`."
                                  "\\`tabLedger Entry\\`\"").stdout.strip()
    assert float(kept) == 100 * sum(n for _, n in ENTRIES)  # what the broken patch did, kept for inspection
    assert report["sites"]["s2.local"]["state"] == "unchanged"
    assert table_sums(update_lab, "lab1", "s2.local")["db"] == before[("lab1", "s2.local")]["db"]
    for host in ("lab2", "lab3"):  # never touched: no new release built there
        count = update_lab.ssh(host, "ls -d /home/frappe/benches/*/ | wc -l").stdout.strip()
        assert count == "2", (host, count)
    failure = json.loads(update_lab.ssh("lab1", "cat /root/on_update_failure.json").stdout)
    assert failure["step"] == "migrate"
    listed = provision(project, "releases")
    assert listed.returncode == 0, listed.stderr
    lab1 = next(e for e in events(listed) if e["event"] == "releases")["hosts"]["lab1"]
    states = {r["state"] for r in lab1 if any(a.get("ref") == "v3-broken" for a in r["apps"])}
    assert states == {"bad"}, lab1
    assert [r["state"] for r in lab1 if r["live"]] == ["good"]


def test_python_only_update_serves_every_request(update_lab: LabHandle, project: Path) -> None:
    address = update_lab.host("lab1").address
    failed: list[tuple[str, int, str]] = []
    served = [0]
    done = threading.Event()

    def hammer() -> None:
        deadline = time.monotonic() + 900  # bounded, whatever happens to the update
        while not done.is_set() and time.monotonic() < deadline:
            for site in SITES["lab1"]:
                status, body = http(address, "/api/method/ping", site, timeout=10)
                served[0] += 1
                if status != 200:
                    failed.append((site, status, body[:100]))
            time.sleep(0.05)

    loop = threading.Thread(target=hammer, daemon=True)
    loop.start()
    try:
        result = provision(project, "update", "--apps", "ledger@v2.1", "--limit", "lab1")
    finally:
        done.set()
        loop.join(timeout=30)
    assert result.returncode == 0, failures(result)
    decisions = [e for e in events(result) if e["event"] == "migrate_decision"]
    assert decisions and not any(d["migrate"] for d in decisions), decisions
    assert not any(e["event"] == "task" and e["task"] == "maintenance_on" for e in events(result))
    assert served[0] > 20 and failed == [], failed[:5]
    for site in SITES["lab1"]:
        assert versions(update_lab, "lab1", site)["ledger"] == "2.1.0"


def test_second_run_refuses_a_held_lock_and_a_killed_run_leaves_it_stale(update_lab: LabHandle,
                                                                        project: Path) -> None:
    first = subprocess.Popen([sys.executable, "-m", "provision", "update", "prod", "--json", "--limit", "lab1"],
                             cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while update_lab.ssh("lab1", "cat /var/lib/provision/lock/owner.json", check=False).returncode != 0:
            assert first.poll() is None and time.monotonic() < deadline, "the first update never took the lock"
            time.sleep(0.2)
        owner = json.loads(update_lab.ssh("lab1", "cat /var/lib/provision/lock/owner.json").stdout)
        second = provision(project, "update", "--limit", "lab1", timeout=300)
        assert second.returncode == 2
        refused = update_recap(second)["lab1"]
        assert refused["step"] == "lock" and "locked by update run " + owner["run_id"] in refused["error"], refused
        time.sleep(3)  # let the first run get into its steps
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)
    stale = provision(project, "update", "--limit", "lab1", timeout=300)
    assert stale.returncode == 2
    error = update_recap(stale)["lab1"]["error"]
    assert "stale lock" in error and "provision unlock lab1 --reason" in error, error
    unlock = subprocess.run([sys.executable, "-m", "provision", "unlock", "lab1", "--reason", "e2e: killed run"],
                            cwd=project, capture_output=True, text=True, timeout=120)
    assert unlock.returncode == 0, unlock.stderr
    result = provision(project, "update", "--limit", "lab1")
    assert result.returncode == 0, failures(result)
    for site in SITES["lab1"]:
        assert versions(update_lab, "lab1", site)["ledger"] == "2.0.0"
        assert table_sums(update_lab, "lab1", site)["maintenance"] == 0
    status = update_lab.ssh("lab1", "ls /home/frappe/shared/journal/*.jsonl | xargs grep -L '\"step\":\"end\"'",
                            check=False).stdout.strip()
    assert status == "", f"journals left open: {status}"


def test_bench_setup_supervisor_and_restart_keep_the_groups(update_lab: LabHandle) -> None:
    # bench may not rewrite the deploy's supervisor config (root's, rendered and validated by the
    # deploy): refused or not, the groups keep their names and keep running, and bench restart works.
    as_frappe(update_lab, "lab2", "cd ~/frappe-bench && bench setup supervisor --yes")
    restart = as_frappe(update_lab, "lab2", "cd ~/frappe-bench && bench restart")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    deadline = time.monotonic() + 60
    while True:
        status = update_lab.ssh("lab2", "supervisorctl status", check=False).stdout
        programs = [line.split()[:2] for line in status.splitlines() if line.strip()]
        if (programs and all(state == "RUNNING" for _, state in programs)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert programs and all(state == "RUNNING" for _, state in programs), status
    groups = {name.split(":")[0] for name, _ in programs}
    assert {"frappe-bench-web", "frappe-bench-workers", "frappe-bench-redis"} <= groups, status
    for site in SITES["lab2"]:
        code, body = http(update_lab.host("lab2").address, "/api/method/ping", site)
        assert code == 200, body


def test_rollback_goes_back_to_the_previous_good_release(update_lab: LabHandle, project: Path) -> None:
    before = entries(update_lab, "lab3", "s4.local")
    result = provision(project, "rollback", "--limit", "lab3")
    assert result.returncode == 0, failures(result)
    assert update_recap(result)["lab3"]["status"] == "updated"
    assert versions(update_lab, "lab3", "s4.local")["ledger"] == "1.0.0"
    assert [(e["account"], float(e["amount"])) for e in entries(update_lab, "lab3", "s4.local")] == \
        [(e["account"], float(e["amount"])) for e in before]
    assert table_sums(update_lab, "lab3", "s4.local")["maintenance"] == 0


def test_deploy_whose_refs_moved_runs_the_update_flow(update_lab: LabHandle, project: Path) -> None:
    # lab3 went back to v1 above; the inventory says v2: a deploy must update it, never switch silently
    result = provision(project, "deploy", "--limit", "lab3")
    assert result.returncode == 0, failures(result)
    steps = [e["task"] for e in events(result) if e["event"] == "task" and e["module"] == "update"]
    assert steps[:1] == ["decide"] and "backup" in steps and "migrate" in steps and "health" in steps, steps
    assert versions(update_lab, "lab3", "s4.local")["ledger"] == "2.0.0"
    assert table_sums(update_lab, "lab3", "s4.local")["maintenance"] == 0
