"""MariaDB replication as the deploy sees it: a replica's status, its lag verdict, server ids.

``parse_replica_status`` reads ``SHOW SLAVE STATUS\\G`` (MariaDB 10.5+ also answers ``SHOW REPLICA
STATUS``; the column names are the same); ``lag_verdict`` turns one status into ok / warn / fail
against the deploy's thresholds (``db_replica_lag_warn``, ``db_replica_lag_fail``), the same rule
for the deploy's verify step and for ``provision replication status``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class ReplicaStatus:
    """What ``SHOW SLAVE STATUS`` says about one replica (``configured`` False: it is no replica)."""

    configured: bool
    master_host: str = ""
    master_port: int = 0
    master_user: str = ""
    io_running: str = ""  # Yes | No | Connecting
    sql_running: str = ""  # Yes | No
    seconds_behind: int | None = None  # NULL while a thread is stopped
    using_gtid: str = ""  # No | Slave_Pos | Current_Pos
    gtid_io_pos: str = ""
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    io_state: str = ""

    @property
    def healthy(self) -> bool:
        """Both threads running (the IO thread may be reconnecting: that is a lag, not a break)."""
        return self.configured and self.sql_running == "Yes" and self.io_running in ("Yes", "Connecting")

    @property
    def last_error(self) -> str:
        if self.last_sql_errno:
            return f"SQL thread error {self.last_sql_errno}: {self.last_sql_error}"
        if self.last_io_errno:
            return f"IO thread error {self.last_io_errno}: {self.last_io_error}"
        return ""

    def as_data(self) -> dict[str, Any]:
        """The status as JSON-friendly data (registered, printed by the status command)."""
        return {
            "configured": self.configured, "master_host": self.master_host, "master_port": self.master_port,
            "io_running": self.io_running, "sql_running": self.sql_running,
            "seconds_behind_master": self.seconds_behind, "using_gtid": self.using_gtid,
            "gtid_io_pos": self.gtid_io_pos, "last_error": self.last_error, "io_state": self.io_state,
        }


def _fields(text: str) -> dict[str, str]:
    """``Key: value`` lines of a ``\\G`` (vertical) result; the ``*** 1. row ***`` line is skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key and " " not in key and not key.startswith("*"):
            fields.setdefault(key, value.strip())
    return fields


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "", "NULL") else None
    except ValueError:
        return None


def parse_replica_status(text: str) -> ReplicaStatus:
    """Parse ``SHOW SLAVE STATUS\\G``; an empty answer means the server replicates from nobody."""
    fields = _fields(text)
    if "Slave_IO_Running" not in fields:
        return ReplicaStatus(configured=False)
    return ReplicaStatus(
        configured=True,
        master_host=fields.get("Master_Host", ""),
        master_port=_number(fields.get("Master_Port")) or 0,
        master_user=fields.get("Master_User", ""),
        io_running=fields.get("Slave_IO_Running", ""),
        sql_running=fields.get("Slave_SQL_Running", ""),
        seconds_behind=_number(fields.get("Seconds_Behind_Master")),
        using_gtid=fields.get("Using_Gtid", ""),
        gtid_io_pos=fields.get("Gtid_IO_Pos", ""),
        last_io_errno=_number(fields.get("Last_IO_Errno")) or 0,
        last_io_error=fields.get("Last_IO_Error", ""),
        last_sql_errno=_number(fields.get("Last_SQL_Errno")) or 0,
        last_sql_error=fields.get("Last_SQL_Error", ""),
        io_state=fields.get("Slave_IO_State", ""),
    )


def lag_verdict(status: ReplicaStatus, *, warn_after: int, fail_after: int) -> tuple[Verdict, str]:
    """ok, warn or fail for one replica, and the line that says why.

    A stopped thread or a replication error fails whatever the lag; a lag of ``warn_after`` seconds
    or more warns, ``fail_after`` or more fails (0 turns that threshold off).
    """
    if not status.configured:
        return "fail", "not replicating (no primary configured)"
    threads = f"IO {status.io_running or '?'}, SQL {status.sql_running or '?'}"
    source = f"from {status.master_host}:{status.master_port}"
    if not status.healthy or status.last_sql_errno:
        error = status.last_error or "a replication thread is stopped"
        return "fail", f"replication {source} is broken ({threads}): {error}"
    lag = status.seconds_behind
    if lag is None:
        detail = f"; {status.last_error}" if status.last_error else ""
        return "warn", f"lag unknown ({threads}, the IO thread is connecting {source}){detail}"
    line = f"{lag}s behind {status.master_host} ({threads}, gtid {status.gtid_io_pos or '-'})"
    if fail_after and lag >= fail_after:
        return "fail", f"{line}: past db_replica_lag_fail ({fail_after}s)"
    if warn_after and lag >= warn_after:
        return "warn", f"{line}: past db_replica_lag_warn ({warn_after}s)"
    return "ok", line


def server_id(address: str) -> int:
    """A MariaDB server_id for a host: its IPv4 address as a number (unique on one private network),
    or for a name a CRC-32 of it; never 0 (which MariaDB refuses for replication)."""
    parts = str(address).split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        number = 0
        for part in parts:
            number = number * 256 + int(part)
        return number or 1
    return zlib.crc32(str(address).encode()) or 1
