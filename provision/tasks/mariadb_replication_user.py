"""``mariadb_replication_user``: the account replicas log in to the primary with, one per replica address.

Granted what replication and the replica's seeding dump need (``mariadb_replica``): REPLICATION
SLAVE, BINLOG MONITOR, and read access (SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD)
for ``mariadb-dump --single-transaction --master-data --system=users``. Only from the replicas'
addresses (never ``%``); an address no longer declared loses its account. Runs as root on the
primary (unix socket). The password (secret) travels inside the script on stdin and into SQL on
``mariadb``'s stdin, never into a command line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Arg, Module, Plan, PlanContext
from .facts import Probe
from .mariadb import _sql_string

PRIVILEGES = ("REPLICATION SLAVE", "BINLOG MONITOR", "SELECT", "SHOW VIEW", "TRIGGER", "EVENT", "LOCK TABLES",
              "RELOAD")
# The mysql.user view's columns of those privileges (BINLOG MONITOR is Repl_client_priv there).
_PRIV_COLUMNS = ("Repl_slave_priv", "Repl_client_priv", "Select_priv", "Show_view_priv", "Trigger_priv",
                 "Event_priv", "Lock_tables_priv", "Reload_priv")


def _account(user: str, host: str) -> str:
    return f"{_sql_string(user)}@{_sql_string(host)}"


def parse_accounts(output: str) -> dict[str, tuple[bool, bool]]:
    """``host<TAB>password matches (1/0)<TAB>privilege flags`` lines → {host: (password ok, grants ok)}."""
    accounts: dict[str, tuple[bool, bool]] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3:
            accounts[fields[0]] = (fields[1] == "1", fields[2] == "Y" * len(_PRIV_COLUMNS))
    return accounts


class MariaDBReplicationUser(Module):
    """The replication account on the primary, for each replica address, with the declared password.

    user: the account name (e.g. provision_repl)
    password: its password (secret)
    hosts: the replicas' addresses, as the primary sees them connect
    """

    name = "mariadb_replication_user"
    args: ClassVar[dict[str, Arg]] = {
        "user": Arg(str, required=True),
        "password": Arg(str, required=True, secret=True),
        "hosts": Arg(list, default=[]),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        from ..errors import ArgumentError

        if any(h in ("%", "") or "%" in str(h) for h in args["hosts"]):
            raise ArgumentError("hosts must be the replicas' addresses, not a wildcard",
                                hint="list each db_replica host's private address")

    def facts(self, args: dict[str, Any]) -> Probe[dict[str, tuple[bool, bool]] | None]:
        columns = ", ".join(_PRIV_COLUMNS)
        query = (f"SELECT Host, authentication_string = PASSWORD({_sql_string(args['password'])}), "
                 f"CONCAT({columns}) FROM mysql.user WHERE User = {_sql_string(args['user'])}")
        # The query (with the password) goes to mariadb on stdin, not as -e.
        script = ("if ! command -v mariadb >/dev/null 2>&1; then echo state=no-client; exit 0; fi\n"
                  f"mariadb -N -B <<'PV_SQL' || echo state=down\n{query};\nPV_SQL\n")
        return Probe(script, lambda out: None if "state=" in out else parse_accounts(out))

    def plan(self, args: dict[str, Any], facts: dict[str, tuple[bool, bool]] | None, ctx: PlanContext) -> Plan:
        if facts is None:
            return Plan(error="cannot read MariaDB's accounts as root: is mariadb installed and running?")
        user, password = args["user"], args["password"]
        wanted = [str(h) for h in args["hosts"]]
        statements: list[str] = []
        done: list[str] = []
        for host in wanted:
            account = _account(user, host)
            if host not in facts:
                statements.append(f"CREATE USER {account} IDENTIFIED BY {_sql_string(password)};")
                done.append(f"created {user}@{host}")
            elif not facts[host][0]:
                statements.append(f"ALTER USER {account} IDENTIFIED BY {_sql_string(password)};")
                done.append(f"new password for {user}@{host}")
            if host not in facts or not facts[host][1]:
                statements.append(f"GRANT {', '.join(PRIVILEGES)} ON *.* TO {account};")
                if host in facts:
                    done.append(f"granted {user}@{host}")
        for host in sorted(set(facts) - set(wanted)):
            statements.append(f"DROP USER {_account(user, host)};")
            done.append(f"dropped {user}@{host} (no replica there)")
        if not statements:
            hosts = ", ".join(wanted) or "no replica"
            return Plan(f"{user} granted for {hosts}")
        sql = "\n".join(statements) + "\n"
        return Plan("; ".join(done), script="mariadb -N", stdin=sql.encode(), what=f"setting up {user}",
                    check_msg="would have " + "; ".join(done))
