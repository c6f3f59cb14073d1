"""``provision backup``, ``provision restore`` and ``provision cron``: the control host's backups of every site.

    provision backup GROUP [--site S] [--with-files | --db-only]    pull, verify, prune, hooks
    provision backup prune [GROUP] [--dry-run]                      apply keep_* now; say what goes and why
    provision backup list [GROUP] [--site S]                        the backups on the control host
    provision backup verify [GROUP] [--site S] [--on HOST]          restore the newest into a scratch DB, compare
    provision restore HOST SITE [--from TS|latest] [--to-site NEW] [--force]
    provision cron install backup GROUP --at HH:MM [--verify-weekly] | cron list | cron remove backup GROUP
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..backup.report import BackupReport
    from ..backup.targets import HostTarget

ACTIONS = ("prune", "list", "verify")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    backup = commands.add_parser(
        "backup", parents=[common], help="back up every site to the control host (pull, verify, prune)",
        description="Back up every site of GROUP with Frappe's own command, pull the files to the control host "
                    "(backup_dir/<group>/<host>/<site>/<timestamp>/ with manifest.json), verify them, remove the "
                    "host's copy, prune by keep_daily/weekly/monthly/yearly, run hooks. Sub-actions: "
                    "`backup prune [GROUP] [--dry-run]`, `backup list [GROUP]`, `backup verify [GROUP]`. "
                    "Exit 2 when any site failed.")
    backup.add_argument("target", metavar="GROUP|prune|list|verify", help="group or host pattern, or a sub-action")
    backup.add_argument("group", nargs="?", help="with a sub-action: the group (default: all)")
    backup.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    files = backup.add_mutually_exclusive_group()
    files.add_argument("--with-files", dest="with_files", action="store_true", default=None,
                       help="include public and private files (the default, or backup_with_files)")
    files.add_argument("--db-only", dest="with_files", action="store_false", help="the database and config only")
    backup.add_argument("--backup-dir", type=Path, help="backup directory (default: backup_dir, ./backups beside the "
                                                        "inventory)")
    backup.add_argument("--dry-run", action="store_true", help="prune: show what would go, delete nothing")
    backup.add_argument("--on", metavar="HOST", help="verify: restore into a scratch database on this host")
    backup.add_argument("--log-dir", type=Path, help="also write this run's output to a log file here (for cron)")
    backup.add_argument("--keep-logs", type=int, default=30, help="with --log-dir: logs kept (default 30)")
    backup.set_defaults(func=cmd_backup)

    restore = commands.add_parser(
        "restore", parents=[common], help="restore a site from the control host's backups",
        description="Restore SITE on HOST from a backup on the control host. A live site is only replaced with "
                    "--force, after a safety backup. The restore goes into a new database that must match the "
                    "manifest before the site is switched to it; on any failure the site keeps its old data.")
    restore.add_argument("host")
    restore.add_argument("site")
    restore.add_argument("--from", dest="source", default="latest", metavar="TIMESTAMP",
                         help="the backup to restore (a timestamp from `backup list`, default: latest)")
    restore.add_argument("--to-site", metavar="NEW", help="restore into a new site beside the old one")
    restore.add_argument("--force", action="store_true", help="replace a live site (a safety backup is taken first)")
    restore.add_argument("--backup-dir", type=Path, help="backup directory (default: backup_dir)")
    restore.set_defaults(func=cmd_restore)

    cron = commands.add_parser("cron", help="the control host's crontab entries for backups",
                               description="cron install backup GROUP --at HH:MM [--verify-weekly]; cron list; "
                                           "cron remove backup GROUP")
    cron.add_argument("action", choices=["install", "list", "remove"])
    cron.add_argument("job", nargs="?", choices=["backup"])
    cron.add_argument("group", nargs="?")
    cron.add_argument("--at", default="02:30", help="time of day HH:MM (default 02:30)")
    cron.add_argument("--verify-weekly", action="store_true", help="also `backup verify` on Sundays, 2 h later")
    cron.add_argument("-i", "--inventory", default="inventory.yml", help="inventory file the entry uses")
    cron.add_argument("--log-dir", type=Path, help="log directory (default: <backup_dir>/logs)")
    cron.add_argument("--keep-logs", type=int, default=30, help="logs kept per job (default 30)")
    cron.add_argument("--user", help="whose crontab (default: the current user's)")
    cron.add_argument("--vault-password-file", action="append", default=[], metavar="FILE",
                      help="a vaulted inventory's password file, named on the entry (cron has no environment)")
    cron.set_defaults(func=cmd_cron)


# -- shared ------------------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace, pattern: str | None, *,
             one_per_bench: bool = False) -> tuple[list[HostTarget], Path, threading.Event]:
    from ..backup.targets import backup_dir_of, select_targets
    from ..cli import load_inventory, run_options

    inventory = load_inventory(args)
    options = run_options(args, pattern)
    cancel = threading.Event()
    targets = select_targets(inventory, options, pattern, args.redactor, cancel, one_per_bench=one_per_bench)
    return targets, backup_dir_of(targets, inventory, getattr(args, "backup_dir", None)), cancel


@contextlib.contextmanager
def _report(args: argparse.Namespace, job: str, group: str) -> Iterator[BackupReport]:
    from ..backup.cron import keep_last_logs
    from ..backup.report import BackupReport

    log: TextIO | None = None
    log_dir: Path | None = getattr(args, "log_dir", None)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"{job}-{group.replace('/', '_')}"
        log = open(log_dir / f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.log", "w")  # noqa: SIM115
    try:
        yield BackupReport(json_output=args.json, redactor=args.redactor, log=log)
    finally:
        if log is not None and log_dir is not None:
            log.close()
            keep_last_logs(log_dir, prefix, max(1, args.keep_logs))


def _with_files(args: argparse.Namespace, targets: list[HostTarget]) -> bool:
    if args.with_files is not None:
        return bool(args.with_files)
    return bool(targets[0].var("backup_with_files", True))


# -- backup ------------------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    if args.target in ACTIONS:
        return {"prune": _cmd_prune, "list": _cmd_list, "verify": _cmd_verify}[args.target](args)
    if args.group:
        from ..errors import OptionsError

        raise OptionsError(f"unexpected argument {args.group!r}", hint="provision backup GROUP [--site S]")
    from ..backup.encrypt import load_key
    from ..backup.run import run_backup
    from ..cli import interrupts
    from ..errors import EXIT_INTERRUPTED

    targets, backup_dir, cancel = _prepare(args, args.target, one_per_bench=True)
    key = load_key(targets[0].variables)
    with _report(args, "backup", args.target) as report, interrupts(cancel.set):
        code = run_backup(targets, backup_dir, sites=args.site or None, with_files=_with_files(args, targets),
                          forks=args.forks, report=report, project_dir=Path.cwd(), encrypt_key=key,
                          summary_extra={"group": args.target})
    return EXIT_INTERRUPTED if cancel.is_set() else code


def _cmd_prune(args: argparse.Namespace) -> int:
    from ..backup.manifest import site_dirs
    from ..backup.retention import Policy
    from ..backup.run import control_lock, prune_site

    targets, backup_dir, _ = _prepare(args, args.group)
    by_host = {t.name: t for t in targets}
    with _report(args, "prune", args.group or "all") as report, control_lock(backup_dir):
        for group, host, site, directory in site_dirs(backup_dir, args.group if args.group in {
                t.group for t in targets} else None):
            if host not in by_host:
                continue
            plan = prune_site(directory, Policy.from_vars(by_host[host].variables), dry_run=args.dry_run)
            verb = "would prune" if args.dry_run else "pruned"
            for name, reasons in sorted(plan.keep.items()):
                report.line(f"keep    {group}/{host}/{site}/{name}  ({', '.join(reasons)})")
                report.event({"event": "backup_keep", "host": host, "site": site, "backup": name, "reasons": reasons})
            for name, why in sorted(plan.prune.items()):
                report.line(f"{verb:<7} {group}/{host}/{site}/{name}  ({why})")
                report.event({"event": "backup_pruned", "host": host, "site": site, "backup": name, "reason": why,
                              "dry_run": args.dry_run})
            for name, why in sorted(plan.untouched.items()):
                report.line(f"left    {group}/{host}/{site}/{name}  ({why})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..backup.manifest import site_dirs, stored_backups
    from ..backup.report import human_size

    _, backup_dir, _ = _prepare(args, args.group)
    with _report(args, "list", args.group or "all") as report:
        for group, host, site, directory in site_dirs(backup_dir):
            if args.group and group != args.group and host != args.group:
                continue
            if args.site and site not in args.site:
                continue
            for backup in stored_backups(directory):
                size = sum(int(f.get("size", 0)) for f in backup.manifest.get("files", []))
                state = "verified" if backup.verified else "UNVERIFIED"
                report.line(f"{group}/{host}/{site}  {backup.name}  {human_size(size)}  {state}  "
                            f"{backup.manifest.get('kind', '')}")
                report.event({"event": "backup", "group": group, "host": host, "site": site, "backup": backup.name,
                              "bytes": size, "verified": backup.verified, "path": str(backup.path)})
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..backup.encrypt import load_key
    from ..backup.manifest import site_dirs, stored_backups
    from ..backup.restore import verify_backup
    from ..errors import EXIT_FAILED, OptionsError, ProvisionError

    targets, backup_dir, _ = _prepare(args, args.group)
    by_host = {t.name: t for t in targets}
    if args.on and args.on not in by_host:
        raise OptionsError(f"--on {args.on}: not one of the selected hosts")
    key = load_key(targets[0].variables)
    run_id = uuid.uuid4().hex[:12]
    failed = 0
    with _report(args, "verify", args.group or "all") as report:
        for group, host, site, directory in site_dirs(backup_dir):
            if host not in by_host or (args.site and site not in args.site):
                continue
            verified = [b for b in stored_backups(directory) if b.verified]
            if not verified:
                continue
            newest = verified[-1]
            target = by_host[args.on or host]
            try:
                answer = verify_backup(target, newest, site=site, run_id=run_id, key=key)
            except ProvisionError as exc:
                answer = {"ok": False, "error": exc.message}
            finally:
                with contextlib.suppress(Exception):
                    target.connection.close()
            where = f"{group}/{host}/{site}/{newest.name}"
            if answer.get("ok"):
                report.line(f"ok      {where}  restored into a scratch database on {target.name}: "
                            f"{len(newest.manifest.get('tables', {}))} tables match the manifest")
            else:
                failed += 1
                report.line(f"FAILED  {where}  {answer.get('error')}")
            report.event({"event": "backup_verify", "group": group, "host": host, "site": site,
                          "backup": newest.name, "ok": bool(answer.get("ok")), "msg": answer.get("error", "")})
    return EXIT_FAILED if failed else 0


# -- restore -----------------------------------------------------------------------------------------


def cmd_restore(args: argparse.Namespace) -> int:
    from ..backup.encrypt import load_key
    from ..backup.manifest import find_backup
    from ..backup.restore import restore_site
    from ..errors import OptionsError

    targets, backup_dir, _ = _prepare(args, args.host)
    target = next((t for t in targets if t.name == args.host), None)
    if target is None:
        raise OptionsError(f"{args.host!r} is not a host of the inventory", hint="name one host: restore HOST SITE")
    backup = find_backup(backup_dir, target.name, args.site, args.source)
    if backup is None:
        raise OptionsError(f"no verified backup {args.source!r} of {args.site} on {target.name} in {backup_dir}",
                           hint=f"`provision backup list --site {args.site}` shows the backups there are")
    peers = _app_peers(args, target)
    with _report(args, "restore", args.host) as report:
        try:
            answer = restore_site(target, backup, site=args.site, to_site=args.to_site, force=args.force,
                                  backup_dir=backup_dir, run_id=uuid.uuid4().hex[:12],
                                  key=load_key(target.variables), report=report,
                                  keep_old_db=bool(target.var("restore_keep_old_db", False)), peers=peers)
        finally:
            for connection in [target.connection, *(p.connection for p in peers)]:
                with contextlib.suppress(Exception):
                    connection.close()
        for step in [*answer.get("steps", []), *answer.get("steps_after", [])]:
            report.line(f"        {step}")
        report.line(f"ok      restored {args.to_site or args.site} on {target.name} from {backup.path}")
        report.event({"event": "restore", "host": target.name, "site": args.to_site or args.site,
                      "backup": str(backup.path), "steps": answer.get("steps", []) + answer.get("steps_after", []),
                      "db_name": answer.get("db_name")})
    return 0


def _app_peers(args: argparse.Namespace, target: HostTarget) -> list[HostTarget]:
    """The other app hosts when ``target`` is one of a multi-server bench's (they share its sites)."""
    from ..backup.targets import multiserver_hosts, select_targets
    from ..cli import load_inventory, run_options

    inventory = load_inventory(args)
    _, app = multiserver_hosts(inventory, [target.name])
    others = [h for h in app if h != target.name]
    if target.name not in app or not others:
        return []
    return select_targets(inventory, run_options(args, None), None, args.redactor, threading.Event(), names=others)


# -- cron --------------------------------------------------------------------------------------------


def cmd_cron(args: argparse.Namespace) -> int:
    from ..backup import cron
    from ..errors import OptionsError

    if args.action == "list":
        for entry in cron.managed_entries(cron.read_crontab(args.user)):
            print(f"{entry.name}: {entry.line}")
        return 0
    if args.job != "backup" or not args.group:
        raise OptionsError(f"cron {args.action} needs the job and a group",
                           hint=f"provision cron {args.action} backup prod")
    inventory = Path(args.inventory).resolve()
    if args.action == "install" and not inventory.exists():
        raise OptionsError(f"inventory {inventory} not found",
                           hint="pass -i FILE (the entry runs with its absolute path)")
    log_dir = (args.log_dir or inventory.parent / "backups" / "logs").resolve()
    entries = cron.backup_entries(args.group, args.at, project_dir=inventory.parent, inventory=inventory,
                                  log_dir=log_dir, keep_logs=args.keep_logs, verify_weekly=args.verify_weekly,
                                  vault_password_file=Path(args.vault_password_file[-1]).resolve()
                                  if args.vault_password_file else None)
    if args.action == "remove":
        entries += [cron.CronEntry(f"backup-verify:{args.group}", "")]
    changed = cron.install(entries, user=args.user, remove=args.action == "remove")
    state = "changed" if changed else "unchanged"
    print(f"crontab {state}: {args.action} {', '.join(e.name for e in entries)}", file=sys.stdout)
    if args.action == "install":
        log_dir.mkdir(parents=True, exist_ok=True)
    return 0
