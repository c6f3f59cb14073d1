"""``mariadb``: make MariaDB's root account usable with the declared password.

Debian's MariaDB lets root in through the unix socket only. ``bench new-site`` connects as root
with a password from the frappe user, so the deploy gives root@localhost a password *as well*
(``unix_socket OR mysql_native_password``: root on the host keeps logging in without one).

The password is set only when root has none yet. When root already has a different password, the
task fails and says so, rather than silently resetting a credential someone else may rely on —
a wrong ``db_root_password`` in the inventory must not take over a running server.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .base import Arg, Module, Plan, PlanContext
from .facts import Probe
from .shell import quote

# A client option file written with umask 077 and removed at once: the password never appears
# in a command line, and the script itself travels on stdin.
_LOGIN = """\
_pv_cnf=$(umask 077; mktemp)
trap 'rm -f "$_pv_cnf"' EXIT
printf '[client]\\nprotocol=tcp\\nhost=127.0.0.1\\nuser=%s\\npassword=%s\\n' {user} {password} > "$_pv_cnf"
"""


def _login_script(user: str, password: str) -> str:
    return _LOGIN.format(user=quote(user), password=quote(_escape_option(password)))


def _escape_option(value: str) -> str:
    # Option files treat backslash and quotes specially inside quoted values; quote the value.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MariaDB(Module):
    """Give MariaDB's root@localhost the declared password (once), and check that it works.

    root_password: the password root must accept (secret)
    login_user: the account to check (default root)
    """

    name = "mariadb"
    args: ClassVar[dict[str, Arg]] = {
        "root_password": Arg(str, required=True, secret=True),
        "login_user": Arg(str, default="root"),
    }

    def facts(self, args: dict[str, Any]) -> Probe[dict[str, str]]:
        return Probe(self._probe(args), _parse_facts)

    def _probe(self, args: dict[str, Any]) -> str:
        user = args["login_user"]
        return (
            "if ! command -v mariadb >/dev/null 2>&1; then echo 'state=no-client'; exit 0; fi\n"
            + _login_script(user, args["root_password"])
            + 'if mariadb --defaults-extra-file="$_pv_cnf" -N -e "SELECT 1" >/dev/null 2>&1; '
            "then echo login=ok; else echo login=refused; fi\n"
            # Whether root already has a password: its account record, read as root through the socket.
            "mariadb -N -e \"SELECT Priv FROM mysql.global_priv "
            f"WHERE User={quote(_sql_string(user))} AND Host='localhost'\" 2>/dev/null "
            "| sed 's/^/priv=/' || echo priv=unknown\n"
        )

    def plan(self, args: dict[str, Any], facts: dict[str, str], ctx: PlanContext) -> Plan:
        user = args["login_user"]
        if facts.get("state") == "no-client":
            return Plan(error="the mariadb client is not installed on the host\n"
                              "fix: install mariadb-server and mariadb-client first (packages task)")
        if facts.get("login") == "ok":
            return Plan(f"{user}@localhost accepts the declared password")
        if facts.get("has_password") == "yes":
            return Plan(error=(
                f"MariaDB refused the declared db root password for {user}@localhost, and that account "
                "already has a different password. Nothing was changed.\n"
                "fix: set db_root_password in the inventory (or the secrets file) to the server's current "
                "root password; to change it, do so on the server first"),
            )
        if facts.get("has_password") != "no":
            return Plan(error=(
                f"cannot tell whether {user}@localhost has a password: root's unix-socket login to MariaDB "
                "failed (is mariadb running?)"),
            )
        # SQL with the password goes over stdin, never into argv.
        sql = (f"ALTER USER {_sql_string(user)}@'localhost' IDENTIFIED VIA unix_socket OR "
               f"mysql_native_password USING PASSWORD({_sql_string(args['root_password'])});\n"
               "FLUSH PRIVILEGES;\n")
        return Plan(f"{user}@localhost now accepts the declared password (unix socket kept)", script="mariadb -N",
                    stdin=sql.encode(), check_msg=f"would give {user}@localhost a password (unix socket login kept)",
                    what=f"setting the password of {user}@localhost")


def _parse_facts(output: str) -> dict[str, str]:
    facts = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    facts["has_password"] = _has_password(facts.get("priv", "unknown"))
    return facts


def _has_password(priv: str) -> str:
    """yes/no/unknown from a mysql.global_priv record.

    Debian creates root as ``unix_socket OR mysql_native_password`` with the password "invalid"
    (nothing can log in with it): that is no password.
    """
    try:
        record = json.loads(priv)
    except json.JSONDecodeError:
        return "unknown"
    if not isinstance(record, dict):
        return "unknown"
    methods = [record, *[m for m in record.get("auth_or", []) if isinstance(m, dict)]]
    secrets = [str(m.get("authentication_string") or "") for m in methods]
    return "yes" if any(s and s != "invalid" for s in secrets) else "no"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
