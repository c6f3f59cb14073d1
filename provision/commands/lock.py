"""``provision locks PATTERN`` shows each host's lock; ``provision unlock HOST --reason`` breaks a stale one."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import EXIT_OK, EXIT_UNREACHABLE, ConnectError, OptionsError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    locks = commands.add_parser("locks", parents=[common], help="show whether each host's bench lock is held",
                                description="Show each host's lock (taken by deploy, update, rollback, backup "
                                            "and restore): free, held by a live run, or stale (its run is gone).")
    locks.add_argument("pattern", nargs="?", default="all")
    locks.set_defaults(func=cmd_locks)

    unlock = commands.add_parser("unlock", parents=[common], help="break a stale lock a dead run left on a host",
                                 description="Remove the lock that a run which is gone (killed, connection lost) "
                                             "left on HOST. A lock held by a live run is never broken. The old "
                                             "record and the reason are appended to the host's unlock.log.")
    unlock.add_argument("host", help="the host whose stale lock to break")
    unlock.add_argument("--reason", required=True, help="why it is safe (kept in the host's unlock.log)")
    unlock.set_defaults(func=cmd_unlock)


def lock_dir_of(variables: Any) -> str:
    """The host's lock directory (variable ``provision_lock_dir``)."""
    from ..hostlock import DEFAULT_LOCK_DIR

    return str(variables.get("provision_lock_dir") or DEFAULT_LOCK_DIR)


def cmd_locks(args: argparse.Namespace) -> int:
    from ..hostlock import lock_status
    from ..jobhosts import job_hosts

    _, hosts = job_hosts(args, args.pattern)
    code = EXIT_OK
    for target in hosts:
        try:
            target.connection.open()
            state = lock_status(target.connection, lock_dir=lock_dir_of(target.variables))
        except ConnectError as exc:
            print(f"{target.name}: unreachable: {args.redactor(str(exc.message))}")
            code = max(code, EXIT_UNREACHABLE)
            continue
        finally:
            target.connection.close()
        detail = f": {state.record.describe()}" if state.record else ""
        print(f"{target.name}: {state.state}{detail}")
    return code


def cmd_unlock(args: argparse.Namespace) -> int:
    from ..hostlock import break_lock
    from ..jobhosts import job_hosts

    if not args.reason.strip():
        raise OptionsError("--reason must say why breaking the lock is safe")
    _, hosts = job_hosts(args, args.host)
    if len(hosts) != 1:
        raise OptionsError(f"unlock takes one host; {args.host!r} matches {len(hosts)}",
                           hint="name a single host from the inventory")
    target = hosts[0]
    try:
        target.connection.open()
        record = break_lock(target.connection, reason=args.reason, lock_dir=lock_dir_of(target.variables))
    finally:
        target.connection.close()
    left_by = record.describe() if record else "a run whose record was unreadable"
    print(f"{target.name}: unlocked (the lock was left by {left_by})")
    return EXIT_OK
