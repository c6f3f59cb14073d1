"""MariaDB replication: status parsing, the lag verdict, the replica/account modules' decisions, the
replication config rendered for a primary and a replica, and the status command's table."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.commands.replication import render_table, status_rows
from provision.events import TaskDone
from provision.replication import lag_verdict, parse_replica_status, server_id
from provision.tasks.mariadb_replica import MariaDBReplica, MariaDBReplicaStatus, import_users_script, seed_script
from provision.tasks.mariadb_replication_user import MariaDBReplicationUser

from ._modrun import FakeContext
from .test_templates import render, variables

pytestmark = pytest.mark.unit

PASSWORD = "Repl-Secret-93a1"

HEALTHY = """\
*************************** 1. row ***************************
                Slave_IO_State: Waiting for master to send event
                   Master_Host: 10.0.0.4
                   Master_User: provision_repl
                   Master_Port: 3306
              Slave_IO_Running: Yes
             Slave_SQL_Running: Yes
                    Last_Errno: 0
                    Last_Error:
         Seconds_Behind_Master: 0
                 Last_IO_Errno: 0
                 Last_IO_Error:
                Last_SQL_Errno: 0
                Last_SQL_Error:
                    Using_Gtid: Slave_Pos
                   Gtid_IO_Pos: 0-167772164-42
"""


def status_text(**changes: str) -> str:
    lines = []
    for line in HEALTHY.splitlines():
        key = line.strip().partition(":")[0]
        lines.append(f"{key}: {changes[key]}" if key in changes else line)
    return "\n".join(lines) + "\n"


def probe_output(status: str = HEALTHY, databases: tuple[str, ...] = ()) -> str:
    return status + "@@provision-replica@@\n" + "".join(f"{d}\n" for d in databases)


# ----- parsing and verdicts -------------------------------------------------------------------------


def test_parse_healthy_status() -> None:
    status = parse_replica_status(HEALTHY)
    assert status.configured and status.healthy
    assert (status.master_host, status.master_port, status.master_user) == ("10.0.0.4", 3306, "provision_repl")
    assert status.seconds_behind == 0 and status.using_gtid == "Slave_Pos" and status.gtid_io_pos == "0-167772164-42"
    assert status.last_error == ""


def test_parse_empty_status_is_no_replica() -> None:
    assert not parse_replica_status("").configured
    assert not parse_replica_status("ERROR 2002 (HY000): Can't connect").configured


def test_parse_stopped_sql_thread_with_error() -> None:
    status = parse_replica_status(status_text(Slave_SQL_Running="No", Seconds_Behind_Master="NULL",
                                              Last_SQL_Errno="1062", Last_SQL_Error="Duplicate entry '1'"))
    assert not status.healthy and status.seconds_behind is None
    assert status.last_error == "SQL thread error 1062: Duplicate entry '1'"


@pytest.mark.parametrize(("changes", "verdict", "words"), [
    ({}, "ok", "0s behind 10.0.0.4"),
    ({"Seconds_Behind_Master": "29"}, "ok", "29s behind"),
    ({"Seconds_Behind_Master": "30"}, "warn", "past db_replica_lag_warn (30s)"),
    ({"Seconds_Behind_Master": "300"}, "fail", "past db_replica_lag_fail (300s)"),
    ({"Slave_IO_Running": "Connecting", "Seconds_Behind_Master": "NULL", "Last_IO_Errno": "2003",
      "Last_IO_Error": "error connecting to master"}, "warn", "lag unknown"),
    ({"Slave_SQL_Running": "No", "Last_SQL_Errno": "1146", "Last_SQL_Error": "Table 'x.y' doesn't exist"},
     "fail", "is broken (IO Yes, SQL No): SQL thread error 1146"),
    ({"Slave_IO_Running": "No", "Slave_SQL_Running": "No"}, "fail", "a replication thread is stopped"),
])
def test_lag_verdict(changes: dict[str, str], verdict: str, words: str) -> None:
    got, line = lag_verdict(parse_replica_status(status_text(**changes)), warn_after=30, fail_after=300)
    assert got == verdict and words in line


def test_lag_thresholds_can_be_off() -> None:
    status = parse_replica_status(status_text(Seconds_Behind_Master="99999"))
    assert lag_verdict(status, warn_after=0, fail_after=0)[0] == "ok"
    assert lag_verdict(parse_replica_status(""), warn_after=0, fail_after=0)[0] == "fail"


def test_server_id_from_the_address() -> None:
    assert server_id("10.213.100.11") == 10 * 2**24 + 213 * 2**16 + 100 * 256 + 11
    assert server_id("0.0.0.0") == 1
    assert server_id("db1.example.com") == server_id("db1.example.com") > 0


# ----- mariadb_replica -----------------------------------------------------------------------------


def replica(output: str, *, check: bool = False, **extra: Any) -> tuple[Any, FakeContext]:
    ctx = FakeContext(check=check)
    args = MariaDBReplica.coerce({"primary_host": "10.0.0.4", "user": "provision_repl", "password": PASSWORD,
                                  **extra})
    return execute_module(MariaDBReplica(), args, ctx, output), ctx


def test_a_healthy_replica_of_the_declared_primary_is_left_alone() -> None:
    result, ctx = replica(probe_output(HEALTHY, ("shop",)))
    assert result.status == "ok" and "replicating from 10.0.0.4:3306" in result.msg and not ctx.calls


def test_a_fresh_server_is_seeded_then_reports_the_gtid() -> None:
    ctx = FakeContext()
    from provision.tasks.base import CommandResult

    ctx.results = [CommandResult(0, HEALTHY, "")]
    args = MariaDBReplica.coerce({"primary_host": "10.0.0.4", "user": "provision_repl", "password": PASSWORD})
    result = execute_module(MariaDBReplica(), args, ctx, probe_output(""))
    assert result.status == "changed", result.msg
    assert "seeded from 10.0.0.4:3306" in result.msg and "0-167772164-42" in result.msg
    ((script, _, _),) = ctx.calls
    assert "--single-transaction --master-data=1 --gtid" in script and "SHOW CREATE USER" in script


def test_check_mode_seeds_nothing() -> None:
    result, ctx = replica(probe_output(""), check=True)
    assert result.status == "changed" and result.msg.startswith("would seed") and not ctx.calls


def test_a_server_holding_databases_is_not_overwritten() -> None:
    result, ctx = replica(probe_output("", ("erp_db",)))
    assert result.status == "failed" and "holds databases (erp_db)" in result.msg
    assert "db_replica_reseed=true" in result.msg and not ctx.calls


def test_reseed_seeds_even_a_healthy_replica() -> None:
    result, _ = replica(probe_output(HEALTHY, ("shop",)), check=True, reseed=True)
    assert result.status == "changed" and "seed" in result.msg


def test_a_replica_of_another_primary_is_refused() -> None:
    result, ctx = replica(probe_output(status_text(Master_Host="10.9.9.9")))
    assert result.status == "failed" and "replicates from 10.9.9.9:3306" in result.msg and not ctx.calls


def test_a_broken_replica_fails_with_the_error_and_the_fix() -> None:
    result, ctx = replica(probe_output(status_text(Slave_SQL_Running="No", Last_SQL_Errno="1062",
                                                   Last_SQL_Error="Duplicate entry")))
    assert result.status == "failed" and "Duplicate entry" in result.msg and "reseed" in result.msg
    assert not ctx.calls


def test_a_refused_login_points_the_replica_at_the_primary_again_keeping_its_position() -> None:
    result, _ = replica(probe_output(status_text(Slave_IO_Running="Connecting", Last_IO_Errno="1045",
                                                   Last_IO_Error="Access denied")), check=True)
    assert result.status == "changed" and "point the replica" in result.msg


def test_a_stopped_replica_is_started() -> None:
    result, _ = replica(probe_output(status_text(Slave_IO_Running="No", Slave_SQL_Running="No")), check=True)
    assert result.status == "changed" and "started replication" in result.msg


def test_the_password_reaches_only_a_builtin_and_sql_on_stdin() -> None:
    script = seed_script(MariaDBReplica.coerce({"primary_host": "10.0.0.4", "user": "r", "password": PASSWORD}))
    lines = [line for line in script.splitlines() if PASSWORD in line]
    assert len(lines) == 2
    assert lines[0].startswith("(umask 077; printf '[client]")  # printf: a shell builtin, no process argv
    assert lines[1].startswith("CHANGE MASTER TO") and "MASTER_PASSWORD='" + PASSWORD + "'" in lines[1]
    assert "<<'PV_SQL'" in script and "--password" not in script and " -p" not in script


def test_a_failed_import_of_the_accounts_does_not_quote_their_password_hashes(tmp_path: Path) -> None:
    """mariadb's error text may quote a statement of users.sql, hash and all: only its code is shown."""
    digest = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mariadb").write_text(
        "#!/bin/sh\ncat >/dev/null\necho \"ERROR 1064 (42000) at line 2: You have an error in your SQL syntax; "
        f"check the manual near 'IDENTIFIED BY PASSWORD '{digest}'' at line 1\" >&2\nexit 1\n")
    (shim / "mariadb").chmod(0o755)
    (tmp_path / "users.sql").write_text(f"CREATE USER IF NOT EXISTS 'u'@'%' IDENTIFIED BY PASSWORD '{digest}';\n")
    script = "set -e\n_pv_dir=" + str(tmp_path) + "\n" + seed_script_part()
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"})
    assert done.returncode == 7 and "ERROR 1064 (42000) at line 2" in done.stderr
    assert digest not in done.stderr + done.stdout and digest[1:] not in done.stderr


def seed_script_part() -> str:
    script = seed_script(MariaDBReplica.coerce({"primary_host": "10.0.0.4", "user": "r", "password": PASSWORD}))
    assert import_users_script() in script
    return import_users_script()


def test_probe_reads_only() -> None:
    probe = MariaDBReplica().probe(MariaDBReplica.coerce({"primary_host": "h", "user": "u", "password": "p"}))
    assert probe is not None and "SHOW SLAVE STATUS" in probe and "CHANGE" not in probe and "p" not in probe.split()


# ----- mariadb_replica_status ---------------------------------------------------------------------


def status_task(output: str, **extra: Any) -> Any:
    ctx = FakeContext()
    result = execute_module(MariaDBReplicaStatus(), MariaDBReplicaStatus.coerce(extra), ctx, output)
    assert not ctx.calls
    return result


def test_status_ok_warn_fail() -> None:
    ok = status_task(probe_output())
    assert ok.status == "ok" and ok.msg.startswith("0s behind") and ok.data["replication"]["verdict"] == "ok"
    warn = status_task(probe_output(status_text(Seconds_Behind_Master="45")))
    assert warn.status == "ok" and "past db_replica_lag_warn" in warn.data["warnings"][0]
    fail = status_task(probe_output(status_text(Seconds_Behind_Master="45")), fail_after=40)
    assert fail.status == "failed" and "past db_replica_lag_fail (40s)" in fail.msg


def test_status_table() -> None:
    events = [
        TaskDone("db2", "replication lag", "mariadb_replica_status", "ok", "0s behind 10.0.0.4",
                 data={"replication": {"verdict": "ok", "seconds_behind_master": 0, "io_running": "Yes",
                                       "sql_running": "Yes", "gtid_io_pos": "0-1-42", "last_error": ""}}),
        TaskDone("db3", "replication lag", "mariadb_replica_status", "failed", "replica db3: broken",
                 data={"replication": {"verdict": "fail", "seconds_behind_master": None, "io_running": "Yes",
                                       "sql_running": "No", "last_error": "SQL thread error 1062: dup"}}),
    ]
    assert render_table(status_rows(events)) == (
        "replica  state  lag  threads           detail\n"
        "db2      ok     0s   IO Yes / SQL Yes  gtid 0-1-42\n"
        "db3      fail   -    IO Yes / SQL No   SQL thread error 1062: dup"
    )


# ----- mariadb_replication_user -------------------------------------------------------------------

GRANTED = "YYYYYYYY"


def account(output: str, hosts: list[str], *, check: bool = True) -> tuple[Any, FakeContext]:
    ctx = FakeContext(check=check)
    args = MariaDBReplicationUser.coerce({"user": "provision_repl", "password": PASSWORD, "hosts": hosts})
    MariaDBReplicationUser().check_args(args)
    return execute_module(MariaDBReplicationUser(), args, ctx, output), ctx


def test_account_converged() -> None:
    result, _ = account(f"10.0.0.5\t1\t{GRANTED}\n", ["10.0.0.5"])
    assert result.status == "ok" and "granted for 10.0.0.5" in result.msg


def test_account_created_renewed_granted_and_dropped_over_stdin() -> None:
    output = f"10.0.0.6\t0\t{GRANTED}\n10.0.0.7\t1\tYYYNYYYY\n10.0.0.9\t1\t{GRANTED}\n"
    result, ctx = account(output, ["10.0.0.5", "10.0.0.6", "10.0.0.7"], check=False)
    assert result.status == "changed"
    assert result.msg == ("created provision_repl@10.0.0.5; new password for provision_repl@10.0.0.6; "
                          "granted provision_repl@10.0.0.7; dropped provision_repl@10.0.0.9 (no replica there)")
    ((script, stdin, _),) = ctx.calls
    assert PASSWORD not in script and stdin is not None
    sql = stdin.decode()
    assert f"CREATE USER 'provision_repl'@'10.0.0.5' IDENTIFIED BY '{PASSWORD}';" in sql
    assert "GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT" in sql and "DROP USER 'provision_repl'@'10.0.0.9';" in sql


def test_account_refuses_a_wildcard_host() -> None:
    from provision.errors import ArgumentError

    with pytest.raises(ArgumentError, match="not a wildcard"):
        account("", ["%"])


def test_account_probe_sends_the_password_on_stdin() -> None:
    probe = MariaDBReplicationUser().probe(MariaDBReplicationUser.coerce(
        {"user": "u", "password": PASSWORD, "hosts": ["10.0.0.5"]}))
    assert probe is not None
    [line] = [line for line in probe.splitlines() if PASSWORD in line]
    assert line.startswith("SELECT Host") and "mariadb -N -B <<'PV_SQL'" in probe


# ----- 61-provision-replication.cnf -------------------------------------------------------------


ROLES = {"db": ["db1"], "db_replica": ["db2"], "redis": [], "files": [], "app": ["app1"], "lb": []}
HOSTVARS = {"db1": {"private_address": "10.0.0.4"}, "db2": {"private_address": "10.0.0.5"}, "app1": {}}


def replication_vars(host: str, **overrides: Any) -> dict[str, Any]:
    values = variables(inventory_hostname=host, hostvars=HOSTVARS,
                       groups={"all": list(HOSTVARS), "db": ["db1"], "db_replica": ["db2"], "app": ["app1"]},
                       db_replication_password="x", **overrides)
    values["facts"] = {**values["facts"], "primary_ipv4": HOSTVARS[host].get("private_address", "10.0.0.9")}
    return values


def test_replication_cnf_on_the_primary() -> None:
    text = render("replication.cnf.j2", replication_vars("db1"))
    assert "(primary)" in text and f"server_id = {server_id('10.0.0.4')}\n" in text
    assert "log_bin = mariadb-bin\n" in text and "gtid_strict_mode = ON\n" in text and "binlog_format = ROW\n" in text
    assert "read_only" not in text and "bind_address" not in text


def test_replication_cnf_on_a_replica() -> None:
    text = render("replication.cnf.j2", replication_vars("db2"))
    assert "replica of 10.0.0.4" in text and f"server_id = {server_id('10.0.0.5')}\n" in text
    assert "read_only = ON\n" in text and "bind_address = 127.0.0.1,10.0.0.5\n" in text
    assert "log_slave_updates = ON\n" in text and "relay_log = relay-bin\n" in text
    custom = render("replication.cnf.j2", replication_vars("db2", db_server_id=7, db_replica_bind_address="0.0.0.0"))
    assert "server_id = 7\n" in custom and "bind_address = 0.0.0.0\n" in custom


# ----- read_from_replica: the site config keys (sites.yml's config expression) ----------------------


def site_config(site: dict[str, Any], host: str = "app1", **overrides: Any) -> Any:
    import yaml

    from provision.templating import FILTERS

    from .test_templates import ROOT, Derived, make_env

    task = yaml.safe_load((ROOT / "playbooks" / "includes" / "sites.yml").read_text())[0]
    env = make_env()
    env.filters["combine"] = FILTERS["combine"]
    return Derived(env, {**replication_vars(host, **overrides), "item": site}).resolve(task["site"]["config"])


def test_a_site_reading_from_the_replica_gets_frappes_keys() -> None:
    config = site_config({"name": "a.test", "config": {"x": 1}, "read_from_replica": True})
    assert config == {"x": 1, "read_from_replica": 1, "replica_host": "10.0.0.5", "replica_db_port": 3306}
    chosen = site_config({"name": "a.test", "read_from_replica": True}, db_replica_read_host="10.0.0.50")
    assert chosen["replica_host"] == "10.0.0.50"


def test_a_site_that_does_not_ask_is_unchanged_and_false_turns_it_off() -> None:
    assert site_config({"name": "a.test", "config": {"x": 1}}) == {"x": 1}
    assert site_config({"name": "a.test", "read_from_replica": False}) == {"read_from_replica": 0}
