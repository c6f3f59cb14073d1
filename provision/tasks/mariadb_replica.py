"""``mariadb_replica`` and ``mariadb_replica_status``: a MariaDB server replicating from a primary.

``mariadb_replica`` makes the host a GTID replica of ``primary_host``. A server that replicates from
nobody is seeded from a consistent logical copy taken *on the replica*, over the same MariaDB
connection replication will use (no SSH between hosts, no data through the control host):
``mariadb-dump --single-transaction --master-data=1 --gtid`` of every database but ``mysql``, plus
the accounts as SQL (``SHOW CREATE USER`` / ``SHOW GRANTS``, read just before the dump), so the
sites' users and grants for the app hosts exist on the replica before replication carries the
later changes. The dump is written to a root-only file
and checked complete before anything on the replica is touched; it is imported with binary
logging off (the replica's own binlog keeps only the primary's GTIDs) and replication starts at the
dump's GTID position.

A healthy replica of the declared primary is never seeded again. A stopped one is started; one
whose login the primary refuses (a new password) is pointed at the primary again; one that broke
on an error, replicates from another server, or already holds databases is refused with the fix:
``reseed: true`` seeds it again from the primary (its databases are replaced by the primary's).

The password (secret) reaches the host inside the script, which travels on stdin, and from there
goes only into a mode-600 option file and into SQL on ``mariadb``'s stdin — never a command line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..replication import ReplicaStatus, lag_verdict, parse_replica_status
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .mariadb import _escape_option, _sql_string
from .shell import quote

_SEP = "@@provision-replica@@"
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_ACCESS_DENIED = 1045

# Root on the replica logs in through the unix socket (the task runs as root).
_STATUS_PROBE = (
    "if ! command -v mariadb >/dev/null 2>&1; then echo state=no-client; exit 0; fi\n"
    "mariadb -e 'SHOW SLAVE STATUS\\G' 2>&1 || echo state=down\n"
    f"echo {_SEP}\n"
    "mariadb -N -B -e \"SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ("
    + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ")\" 2>/dev/null\n"
)


def _parse_probe(output: str) -> tuple[str, ReplicaStatus, list[str]]:
    status_text, _, databases = output.partition(_SEP + "\n")
    state = "ok"
    for line in status_text.splitlines():
        if line.startswith("state="):
            state = line.partition("=")[2].strip()
    return state, parse_replica_status(status_text), [d for d in databases.split() if d]


def _primary_login(args: dict[str, Any]) -> str:
    """A script prefix: a mode-600 client option file for the primary in a root-only temp dir."""
    values = " ".join(quote(v) for v in (args["primary_host"], str(int(args["primary_port"])), args["user"],
                                          _escape_option(args["password"])))
    return (
        "_pv_dir=$(umask 077; mktemp -d /var/tmp/provision-replica.XXXXXX)\n"
        "trap 'rm -rf \"$_pv_dir\"' EXIT HUP INT TERM\n"
        # printf is a shell builtin: the password is in no process's arguments.
        f"(umask 077; printf '[client]\\nhost=%s\\nport=%s\\nuser=%s\\npassword=%s\\n' {values} "
        "> \"$_pv_dir/primary.cnf\")\n"
    )


def _change_master_sql(args: dict[str, Any]) -> str:
    return (f"CHANGE MASTER TO MASTER_HOST={_sql_string(args['primary_host'])}, "
            f"MASTER_PORT={int(args['primary_port'])}, MASTER_USER={_sql_string(args['user'])}, "
            f"MASTER_PASSWORD={_sql_string(args['password'])}, MASTER_USE_GTID=slave_pos, "
            f"MASTER_CONNECT_RETRY={int(args['connect_retry'])};")


def _sql_heredoc(sql: str) -> str:
    # A quoted heredoc: the SQL (with the password) is mariadb's stdin, never an argument.
    return f"mariadb <<'PV_SQL'\n{sql}\nPV_SQL\n"


def _wait_started(seconds: int) -> str:
    """Wait (bounded) until the SQL thread runs and the IO thread has connected once."""
    return (
        f"_pv_i=0; while [ $_pv_i -lt {int(seconds)} ]; do\n"
        "  _pv_s=$(mariadb -e 'SHOW SLAVE STATUS\\G')\n"
        "  case \"$_pv_s\" in *'Slave_SQL_Running: Yes'*)\n"
        "    case \"$_pv_s\" in *'Slave_IO_Running: Yes'*) break;; esac;; esac\n"
        "  _pv_i=$((_pv_i + 1)); sleep 1\n"
        "done\n"
        "mariadb -e 'SHOW SLAVE STATUS\\G'\n"
    )


def _users_script() -> str:
    """The primary's accounts (but root's and mariadb.sys) as CREATE USER IF NOT EXISTS + GRANT statements."""
    general = "--init-command='SET NAMES utf8mb4 COLLATE utf8mb4_general_ci'"
    return (
        f"mariadb --defaults-extra-file=\"$_pv_cnf\" {general} -N -B -e \"SELECT CONCAT(QUOTE(user), '@', "
        "QUOTE(host)) FROM mysql.user WHERE is_role = 'N' AND user NOT IN ('root', 'mariadb.sys', '')\" "
        "> \"$_pv_dir/users\"\n"
        ": > \"$_pv_dir/users.sql\"\n"
        "while read -r _pv_u; do\n"
        f"  mariadb --defaults-extra-file=\"$_pv_cnf\" {general} -N -B -e \"SHOW CREATE USER $_pv_u; "
        "SHOW GRANTS FOR $_pv_u\" | sed 's/^CREATE USER /CREATE USER IF NOT EXISTS /; s/$/;/' "
        ">> \"$_pv_dir/users.sql\"\n"
        "done < \"$_pv_dir/users\"\n"
    )


def import_users_script() -> str:
    """Import ``users.sql`` on the replica. Its statements carry the accounts' password hashes,
    which mariadb's error text may quote (``near 'IDENTIFIED BY PASSWORD ...'``) and the redactor
    does not know: a failure names the error code and line only."""
    return (
        "if ! mariadb --init-command='SET SESSION sql_log_bin=0' < \"$_pv_dir/users.sql\" "
        "2> \"$_pv_dir/users.err\"; then\n"
        "  _pv_e=$(sed -n 's/^\\(ERROR [0-9]* ([0-9A-Z]*)\\( at line [0-9]*\\)\\{0,1\\}\\).*/\\1/p' "
        "\"$_pv_dir/users.err\" | head -n 1)\n"
        "  echo \"importing the primary's accounts on the replica failed (${_pv_e:-mariadb failed}); mariadb's "
        "message is not shown, as it may quote a password hash: SHOW CREATE USER on the primary shows the "
        "statements\" >&2\n"
        "  exit 7\n"
        "fi\n"
    )


def seed_script(args: dict[str, Any]) -> str:
    """Seed the replica from a consistent dump of the primary, then start GTID replication."""
    wait = int(args["wait"])
    return (
        "set -e\n"
        + _primary_login(args)
        + "_pv_cnf=\"$_pv_dir/primary.cnf\"\n"
        # The primary may still be restarting with its binlog on (hosts run their plays in parallel).
        f"_pv_i=0; until [ \"$(mariadb --defaults-extra-file=\"$_pv_cnf\" -N -B -e 'SELECT @@log_bin' "
        "2>\"$_pv_dir/err\")\" = 1 ]; do\n"
        f"  _pv_i=$((_pv_i + 2)); if [ $_pv_i -gt {wait} ]; then\n"
        f"    echo \"the primary {args['primary_host']}:{int(args['primary_port'])} did not answer with its binary "
        f"log on within {wait}s: $(cat \"$_pv_dir/err\")\" >&2; exit 5; fi\n"
        "  sleep 2\n"
        "done\n"
        # The accounts first, as SQL (mariadb-dump --system=users fails on a server with Frappe's
        # collation-server and skip-character-set-client-handshake: its own query mixes collations).
        + _users_script()
        + "mariadb-dump --defaults-extra-file=\"$_pv_cnf\" --all-databases --ignore-database=mysql "
        "--add-drop-database --single-transaction --master-data=1 --gtid --routines --events "
        "--triggers --hex-blob --max-allowed-packet=1G > \"$_pv_dir/seed.sql\"\n"
        "tail -n 1 \"$_pv_dir/seed.sql\" | grep -q '^-- Dump completed' || "
        "{ echo 'the dump of the primary is incomplete: the replica was left as it was' >&2; exit 6; }\n"
        "grep -q \"^SET GLOBAL gtid_slave_pos=\" \"$_pv_dir/seed.sql\" || "
        "{ echo 'the dump carries no GTID position (is log_bin on on the primary?)' >&2; exit 6; }\n"
        "mariadb -e 'STOP SLAVE; RESET SLAVE ALL'\n"
        "mariadb --init-command='SET SESSION sql_log_bin=0' < \"$_pv_dir/seed.sql\"\n"
        + import_users_script()
        + _sql_heredoc(_change_master_sql(args) + "\nSTART SLAVE;")
        + _wait_started(60)
    )


def repoint_script(args: dict[str, Any]) -> str:
    """Point a seeded replica at the primary again (new password), keeping its GTID position."""
    return "set -e\n" + _sql_heredoc("STOP SLAVE;\n" + _change_master_sql(args) + "\nSTART SLAVE;") + _wait_started(60)


def _started(what: str) -> Any:
    def then(result: CommandResult, _ctx: PlanContext) -> TaskResult:
        if not result.ok:
            return TaskResult.from_command(what, result)
        status = parse_replica_status(result.stdout)
        if not status.healthy:
            threads = f"IO {status.io_running}, SQL {status.sql_running}"
            return TaskResult.failed(f"{what}: replication did not start: {status.last_error or threads}",
                                     replication=status.as_data())
        return TaskResult.changed(f"{what}; replicating from {status.master_host} at {status.gtid_io_pos}",
                                  replication=status.as_data())
    return then


class MariaDBReplica(Module):
    """Make this MariaDB a GTID replica of a primary: seed it once from a consistent dump, keep it running.

    primary_host: the primary's address (as the replica reaches it)
    primary_port: the primary's port (default 3306)
    user: the replication account on the primary
    password: its password (secret)
    reseed: seed again from the primary even though the replica is seeded (replaces its databases)
    wait: seconds to wait for the primary to answer with its binary log on (default 120)
    connect_retry: seconds between the IO thread's reconnects (default 10)
    """

    name = "mariadb_replica"
    args: ClassVar[dict[str, Arg]] = {
        "primary_host": Arg(str, required=True),
        "primary_port": Arg(int, default=3306),
        "user": Arg(str, required=True),
        "password": Arg(str, required=True, secret=True),
        "reseed": Arg(bool, default=False),
        "wait": Arg(int, default=120),
        "connect_retry": Arg(int, default=10),
    }

    def facts(self, args: dict[str, Any]) -> Probe[tuple[str, ReplicaStatus, list[str]]]:
        return Probe(_STATUS_PROBE, _parse_probe)

    def plan(self, args: dict[str, Any], facts: tuple[str, ReplicaStatus, list[str]], ctx: PlanContext) -> Plan:
        state, status, databases = facts
        primary = f"{args['primary_host']}:{args['primary_port']}"
        if state == "no-client":
            return Plan(error="the mariadb client is not installed on the host\n"
                              "fix: install mariadb-server and mariadb-client first")
        if state == "down":
            return Plan(error="cannot read the replication status as root: is mariadb running?")
        reseed_hint = "fix: to seed it again from the primary (its databases are replaced), run the deploy with " \
                      "-e db_replica_reseed=true --limit " + ctx.host
        seed = Plan(f"seeded from a consistent dump of {primary} and replicating", script=seed_script(args),
                    check_msg=f"would seed from {primary} and start replication",
                    what=f"seeding the replica from {primary}", then=_started(f"seeded from {primary}"))
        if args["reseed"]:
            return seed
        if not status.configured:
            if databases:
                return Plan(error=(f"this server holds databases ({', '.join(databases)}) and replicates from "
                                   f"nobody: seeding it from {primary} would replace them. Nothing was changed.\n"
                                   + reseed_hint))
            return seed
        same = (status.master_host == args["primary_host"] and status.master_port == int(args["primary_port"])
                and status.master_user == args["user"])
        if not same:
            return Plan(error=(f"this server replicates from {status.master_host}:{status.master_port} as "
                               f"{status.master_user!r}, not from {primary} as {args['user']!r}. Nothing was "
                               "changed.\n" + reseed_hint))
        data = {"replication": status.as_data()}
        if status.last_sql_errno:
            return Plan(error=(f"replication from {primary} stopped on an error: {status.last_error}\n"
                               + reseed_hint), data=data)
        if status.last_io_errno == _ACCESS_DENIED or status.using_gtid.lower() != "slave_pos":
            return Plan(f"pointed at {primary} again", script=repoint_script(args), data=data,
                        check_msg=f"would point the replica at {primary} again (login refused or not by GTID)",
                        what="pointing the replica at the primary", then=_started(f"pointed at {primary} again"))
        if not status.healthy:
            return Plan(f"started replication from {primary}", script="mariadb -e 'START SLAVE'\n" + _wait_started(60),
                        data=data, what="starting replication", then=_started(f"started replication from {primary}"))
        return Plan(f"replicating from {primary} (IO {status.io_running}, SQL {status.sql_running})", data=data)


class MariaDBReplicaStatus(Module):
    """Report this replica's replication lag and threads; warn or fail past the thresholds. Changes nothing.

    warn_after: seconds behind the primary that warn (0: never)
    fail_after: seconds behind the primary that fail the task (0: never)
    """

    name = "mariadb_replica_status"
    args: ClassVar[dict[str, Arg]] = {
        "warn_after": Arg(int, default=30),
        "fail_after": Arg(int, default=300),
    }

    def facts(self, args: dict[str, Any]) -> Probe[tuple[str, ReplicaStatus, list[str]]]:
        return Probe(_STATUS_PROBE, _parse_probe)

    def plan(self, args: dict[str, Any], facts: tuple[str, ReplicaStatus, list[str]], ctx: PlanContext) -> Plan:
        state, status, _ = facts
        if state != "ok":
            return Plan(error=f"cannot read the replication status ({state}): is mariadb installed and running?")
        verdict, line = lag_verdict(status, warn_after=args["warn_after"], fail_after=args["fail_after"])
        data: dict[str, Any] = {"replication": {**status.as_data(), "verdict": verdict}}
        if verdict == "fail":
            return Plan(error=f"replica {ctx.host}: {line}", data=data)
        if verdict == "warn":
            data["warnings"] = [f"replica {ctx.host}: {line}"]
        return Plan(line, data=data)
