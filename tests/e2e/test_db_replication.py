"""MariaDB replication on two lab hosts (db + db_replica), MariaDB only: the deploy's own
playbooks/includes/db_replica.yml (and db_replica_verify.yml) run through a small playbook.

Proven with data: a row written on the primary appears on the replica; an account made on the
primary for an "app host" (here the control host's bridge address) reads it from the replica and
cannot write there (read_only); the lag is reported by the verify task and by
``provision replication status``; a converged re-run changes nothing (the replica is not seeded
again); the replication password appears in no output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabHandle, claimed_lab

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REPL_PASSWORD = "Repl-pw-e2e-5c1f"
APP_PASSWORD = "App-pw-e2e-77d0"

PLAYBOOK = f"""\
- hosts: all
  become: true
  gather_facts: true
  defaults_files: [{ROOT / "playbooks/vars/deploy_defaults.yml"}]
  tasks:
    - name: MariaDB installed
      packages: {{name: [mariadb-server, mariadb-client], update_cache: true, cache_valid_time: 3600}}
    # What the multi-server deploy's db role does (60-frappe.cnf there): the primary listens beyond loopback.
    - name: the primary listens on its lab address
      copy: {{dest: /etc/mysql/mariadb.conf.d/59-test-listen.cnf, content: "[mysqld]\\nbind-address = 0.0.0.0\\n"}}
      when: "'db' in host_roles"
      notify: restart mariadb
    - name: mariadb running
      service: {{name: mariadb, state: started, enabled: true}}
    - meta: flush_handlers
    - include: {ROOT / "playbooks/includes/db_replica.yml"}
    - include: {ROOT / "playbooks/includes/db_replica_verify.yml"}
  handlers:
    - name: restart mariadb
      service: {{name: mariadb, state: restarted}}
"""


def write_project(directory: Path, lab: LabHandle) -> None:
    hosts = {"db": lab.hosts[0], "db_replica": lab.hosts[1]}
    lines = ["all:", "  children:"]
    for group, host in hosts.items():
        lines += [f"    {group}:", "      hosts:", f"        {host.name}:", f"          ssh_host: {host.address}"]
    lines += [
        "  vars:",
        "    ssh_user: root",
        f"    ssh_private_key_file: {lab.key}",
        f"    ssh_known_hosts_file: {lab.known_hosts}",
        f"    db_replication_password: !secret {REPL_PASSWORD}",
        "    sites: []",
    ]
    (directory / "inventory.yml").write_text("\n".join(lines) + "\n")
    (directory / "replication.yml").write_text(PLAYBOOK)


def provision(project: Path, *args: str, timeout: float = 1200) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run([sys.executable, "-m", "provision", *args, "--json"], cwd=project,
                            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert REPL_PASSWORD not in result.stdout + result.stderr, "the replication password was printed"
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, events, result.stderr


def failures(events: list[dict[str, Any]], stderr: str) -> str:
    failed = [f"{e['host']}: {e['task']}: {e['msg']}" for e in events
              if e["event"] == "task" and e["status"] == "failed"]
    return "\n".join(failed) or stderr[-3000:]


def changed(events: list[dict[str, Any]]) -> int:
    return sum(s["changed"] for s in next(e for e in events if e["event"] == "recap")["hosts"].values())


def task(events: list[dict[str, Any]], name: str, host: str) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "task" and e["task"] == name and e["host"] == host)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHandle, Path, float]]:
    with claimed_lab("db-replication", 2) as lab:
        project = tmp_path_factory.mktemp("replication")
        write_project(project, lab)
        started = time.monotonic()
        code, events, stderr = provision(project, "playbook", "replication.yml")
        took = time.monotonic() - started
        print(f"[replication] first run took {took:.0f} s")
        assert code == 0, failures(events, stderr)
        yield lab, project, took


def sql(lab: LabHandle, host: str, query: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # The query on mariadb's stdin (root via the unix socket on the host).
    return lab.ssh(host, f"mariadb -N -B <<'SQL'\n{query}\nSQL", check=check)


def wait_for_row(lab: LabHandle, host: str, query: str, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = sql(lab, host, query, check=False).stdout.strip()
        if seen == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{host}: {query!r} gave {seen!r}, not {expected!r}, within {timeout}s")


def test_a_row_written_on_the_primary_appears_on_the_replica(replicated: tuple[LabHandle, Path, float],
                                                             tmp_path: Path) -> None:
    lab, _, _ = replicated
    primary, replica = lab.hosts[0].name, lab.hosts[1].name
    assert sql(lab, replica, "SELECT @@read_only").stdout.strip() == "1"
    gateway = str(lab.lab.settings.gateway)
    sql(lab, primary, "CREATE DATABASE IF NOT EXISTS shop; "
                      "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, item VARCHAR(40)); "
                      "REPLACE INTO shop.orders VALUES (1, 'replicated-row-7f3a'); "
                      f"CREATE USER IF NOT EXISTS 'shop'@'{gateway}' IDENTIFIED BY '{APP_PASSWORD}'; "
                      f"GRANT ALL ON shop.* TO 'shop'@'{gateway}';")
    wait_for_row(lab, replica, "SELECT item FROM shop.orders WHERE id = 1", "replicated-row-7f3a")
    # The seed was imported with binary logging off: the replica's binlog holds only the primary's GTIDs.
    replica_id = sql(lab, replica, "SELECT @@server_id").stdout.strip()
    binlog_pos = sql(lab, replica, "SELECT @@gtid_binlog_pos").stdout.strip()
    assert binlog_pos and f"-{replica_id}-" not in binlog_pos, binlog_pos

    # The "app host" reads from the replica with the account made on the primary, and cannot write there.
    login = tmp_path / "shop.cnf"
    login.touch(mode=0o600)
    login.write_text(f"[client]\nhost={lab.hosts[1].address}\nuser=shop\npassword={APP_PASSWORD}\n")
    options = ["mariadb", f"--defaults-extra-file={login}", "-N", "-B", "--connect-timeout=10"]
    read = subprocess.run([*options, "-e", "SELECT item FROM shop.orders WHERE id = 1"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert read.returncode == 0 and read.stdout.strip() == "replicated-row-7f3a", read.stderr
    write = subprocess.run([*options, "-e", "INSERT INTO shop.orders VALUES (2, 'x')"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert write.returncode != 0 and "read-only" in write.stderr.lower(), write.stderr


def test_lag_is_reported_by_the_status_command(replicated: tuple[LabHandle, Path, float]) -> None:
    lab, project, _ = replicated
    code, events, stderr = provision(project, "replication", "status")
    assert code == 0, failures(events, stderr)
    [event] = [e for e in events if e["event"] == "task"]
    assert event["host"] == lab.hosts[1].name and event["status"] == "ok" and "behind" in event["msg"]
    [state] = [e for e in events if e["event"] == "replication"]
    assert state["verdict"] == "ok" and isinstance(state["seconds_behind_master"], int)
    assert state["io_running"] == "Yes" and state["sql_running"] == "Yes"
    assert state["master_host"] == lab.hosts[0].address


def test_a_converged_rerun_changes_nothing_and_does_not_seed_again(replicated: tuple[LabHandle, Path, float]) -> None:
    lab, project, _ = replicated
    replica = lab.hosts[1].name
    code, events, stderr = provision(project, "playbook", "replication.yml")
    assert code == 0, failures(events, stderr)
    assert changed(events) == 0, [e for e in events if e["event"] == "task" and e["status"] == "changed"]
    seeded = task(events, "replica seeded from the primary and replicating", replica)
    assert seeded["status"] == "ok" and "replicating from" in seeded["msg"]
    lag = task(events, "replication lag", replica)
    assert lag["status"] == "ok" and "s behind" in lag["msg"]
    # Replication still carries writes after the re-run.
    sql(lab, lab.hosts[0].name, "REPLACE INTO shop.orders VALUES (3, 'after-rerun')")
    wait_for_row(lab, replica, "SELECT item FROM shop.orders WHERE id = 3", "after-rerun")
