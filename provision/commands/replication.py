"""``provision replication status [PATTERN]``: each replica's lag, threads and last error.

The same check as the deploy's verify step (the ``mariadb_replica_status`` task, run as root on each
replica), with the same thresholds (``db_replica_lag_warn`` / ``db_replica_lag_fail`` from the
inventory, 30 s / 300 s by default; ``--warn`` / ``--fail`` override them). Changes nothing.
Exit 0 when every replica is ok or only warns, 2 when one is broken or lags past the fail
threshold, 3 when one is unreachable. With --json, one ``replication`` event per replica
(verdict, seconds_behind_master, io_running, sql_running, gtid_io_pos, last_error ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Show each MariaDB replica's replication state (read-only):
  provision replication status                 every host of the db_replica group
  provision replication status db2 --fail 60   one replica, failing past 60 s of lag
Per replica: seconds behind the primary (Seconds_Behind_Master), the IO and SQL threads, the GTID
position and the last error. Thresholds: db_replica_lag_warn / db_replica_lag_fail (inventory)."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("replication", help="MariaDB replication: lag and state of the replicas",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[common], help="each replica's lag, threads and last error",
                                description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("pattern", nargs="?", default="db_replica",
                        help="replica hosts (default: the db_replica group)")
    status.add_argument("--warn", type=int, metavar="S", help="warn at S seconds behind (default: db_replica_lag_warn)")
    status.add_argument("--fail", type=int, metavar="S", help="fail at S seconds behind (default: db_replica_lag_fail)")
    status.set_defaults(func=cmd_status)


def status_playbook(warn: int | None, fail: int | None) -> Any:
    """One play: the lag check on every selected host, as root (MariaDB's unix-socket root login)."""
    from ..errors import Source
    from ..playbook import Play, Playbook, Task

    source = Source("<provision replication status>")
    task_args = {
        "warn_after": str(warn) if warn is not None else "{{ db_replica_lag_warn | default(30) }}",
        "fail_after": str(fail) if fail is not None else "{{ db_replica_lag_fail | default(300) }}",
    }
    task = Task(name="replication lag", source=source, module="mariadb_replica_status", args=task_args)
    play = Play(name="replication status", hosts="all", source=source, gather_facts=False, tasks=[task],
                become=True, base_dir=Path.cwd())
    return Playbook(Path.cwd() / "<replication-status>", [play])


def status_rows(results: list[Any]) -> list[tuple[str, str, str, str, str]]:
    """(host, verdict, lag, threads, detail) per replica, from the check's task events."""
    rows = []
    for event in results:
        state = event.data.get("replication") or {}
        verdict = state.get("verdict") or ("fail" if event.status == "failed" else event.status)
        lag = state.get("seconds_behind_master")
        threads = f"IO {state.get('io_running') or '-'} / SQL {state.get('sql_running') or '-'}" if state else "-"
        gtid = f"gtid {state.get('gtid_io_pos') or '-'}"
        detail = state.get("last_error") or (event.msg if verdict != "ok" else gtid)
        first_line = detail.splitlines()[0] if detail else ""
        rows.append((event.host, verdict, "-" if lag is None else f"{lag}s", threads, first_line))
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    from ..cli import run_playbook
    from ..events import TaskDone

    class Collect:
        def __init__(self) -> None:
            self.results: list[TaskDone] = []

        def task_done(self, event: TaskDone) -> None:
            self.results.append(event)

        def __getattr__(self, name: str) -> Any:  # every other reporter event: nothing to keep
            return lambda *a, **k: None

    collect = Collect()
    code = run_playbook(args, status_playbook(args.warn, args.fail), pattern=args.pattern, extra_reporter=collect)
    if args.json:  # in the event stream: one line per replica, as `provision facts` adds its own
        import json

        for event in collect.results:
            state = dict(event.data.get("replication") or {})
            state.setdefault("verdict", "fail" if event.status == "failed" else event.status)
            line = {"event": "replication", "host": event.host, "msg": event.msg, **state}
            print(args.redactor(json.dumps(line, sort_keys=True, default=str)))
    elif collect.results:
        print(render_table(status_rows(collect.results)))
    return code


def render_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """A plain aligned table (golden-text tested)."""
    header = ("replica", "state", "lag", "threads", "detail")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = ["  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])), row[4]]).rstrip()
             for row in table]
    return "\n".join(lines)
