"""``provision backup GROUP``: every site of every host pulled and verified, then pruned by policy, with hooks.

Hosts run in parallel (bounded by --forks), the sites of a host one at a time under its host lock.
A control-host lock (flock on ``<backup_dir>/.lock``) keeps two runs from overlapping. One site's
failure never stops the others; the exit code is 2 when any site failed, 3 when a host could
not be reached (and none failed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, BackupError, ConnectError, ProvisionError
from .hooks import hook_commands, run_hook
from .manifest import site_dir, stored_backups
from .pull import SiteResult, backup_host
from .report import BackupReport, human_size
from .retention import Policy, RetentionPlan, plan_retention
from .targets import HostTarget

LOCK_NAME = ".lock"


@contextlib.contextmanager
def control_lock(backup_dir: Path) -> Iterator[None]:
    """Hold the control host's backup lock for the block; refuse at once if another run holds it."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    path = backup_dir / LOCK_NAME
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise BackupError(f"another backup run holds {path} ({holder}); not starting a second one",
                              hint="wait for it to finish; the lock goes when that process ends") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _host_results(target: HostTarget, sites: list[str] | None, backup_dir: Path, *, with_files: bool,
                  run_id: str, encrypt_key: bytes | None) -> tuple[list[SiteResult], str | None]:
    """One host's site results, or the reason the host could not be worked on."""
    try:
        return backup_host(target, sites, backup_dir, with_files=with_files, run_id=run_id,
                           encrypt_key=encrypt_key), None
    except ConnectError as exc:
        return [], f"unreachable: {exc.message}"
    except ProvisionError as exc:
        return [], exc.message
    finally:
        with contextlib.suppress(Exception):
            target.connection.close()


def prune_site(directory: Path, policy: Policy, *, dry_run: bool) -> RetentionPlan:
    """Apply the policy to one site's backups (only directories the plan says may go)."""
    plan = plan_retention(stored_backups(directory), policy)
    if not dry_run:
        for name in plan.prune:
            shutil.rmtree(directory / name)
    return plan


def run_backup(targets: list[HostTarget], backup_dir: Path, *, sites: list[str] | None, with_files: bool,
               forks: int, report: BackupReport, project_dir: Path, encrypt_key: bytes | None = None,
               summary_extra: dict[str, Any] | None = None) -> int:
    """The whole run; returns the exit code."""
    run_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    hooks = hook_commands(targets[0].variables)
    hook_timeout = float(targets[0].var("backup_hook_timeout", 600))
    summary: dict[str, Any] = {"run_id": run_id, "backup_dir": str(backup_dir), "started_at":
                               datetime.now(UTC).isoformat(timespec="seconds"), "sites": [], "hosts": {},
                               **(summary_extra or {})}
    with control_lock(backup_dir):
        if "pre_backup" in hooks:
            outcome = run_hook("pre_backup", hooks["pre_backup"], summary, cwd=project_dir, backup_dir=backup_dir,
                               timeout=hook_timeout)
            if outcome.returncode != 0:
                summary["error"] = f"pre_backup hook exited {outcome.returncode}: {outcome.output[-400:]}"
                report.line(f"FAILED  pre_backup hook exited {outcome.returncode}: {outcome.output[-400:]}")
                _finish_hooks(hooks, summary, failed=True, report=report, project_dir=project_dir,
                              backup_dir=backup_dir, timeout=hook_timeout)
                return EXIT_FAILED
        results: list[SiteResult] = []
        host_errors: dict[str, str] = {}
        lock = threading.Lock()

        def work(target: HostTarget) -> None:
            found, error = _host_results(target, sites, backup_dir, with_files=with_files, run_id=run_id,
                                         encrypt_key=encrypt_key)
            with lock:
                results.extend(found)
                if error:
                    host_errors[target.name] = error
            for result in found:
                _print_site(report, result)
            if error:
                report.line(f"FAILED  {target.group}/{target.name}: {error}")
                report.event({"event": "backup_host_failed", "host": target.name, "msg": error})

        with ThreadPoolExecutor(max_workers=max(1, min(forks, len(targets)))) as pool:
            list(pool.map(work, targets))
        if sites:
            seen = {r.site for r in results}
            for missing in sorted(set(sites) - seen):
                if not host_errors:
                    result = SiteResult(targets[0].group, "-", missing, msg=f"site {missing} is on none of the hosts")
                    results.append(result)
                    _print_site(report, result)
        summary["sites"] = [r.to_json() for r in results]
        summary["hosts"] = host_errors
        summary["pruned"] = _prune_after(targets, results, backup_dir, report)
    failed = any(r.status != "ok" for r in results) or any(
        not e.startswith("unreachable") for e in host_errors.values())
    unreachable = any(e.startswith("unreachable") for e in host_errors.values())
    summary.update(finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
                   ok=sum(r.status == "ok" for r in results), failed=sum(r.status != "ok" for r in results),
                   duration=round(time.monotonic() - started, 2))
    _finish_hooks(hooks, summary, failed=failed or unreachable, report=report, project_dir=project_dir,
                  backup_dir=backup_dir, timeout=hook_timeout)
    report.line(f"backup: {summary['ok']} sites ok, {summary['failed']} failed, {len(host_errors)} hosts failed "
                f"({summary['duration']:.1f}s)")
    report.event({"event": "backup_recap", **{k: summary[k] for k in ("run_id", "ok", "failed", "duration")},
                  "hosts": host_errors})
    return EXIT_FAILED if failed else EXIT_UNREACHABLE if unreachable else EXIT_OK


def _print_site(report: BackupReport, result: SiteResult) -> None:
    where = f"{result.group}/{result.host}/{result.site}"
    if result.status == "ok":
        extra = f"; re-pulled {', '.join(result.repulled)}" if result.repulled else ""
        report.line(f"ok      {where}  {result.stamp}  {human_size(result.bytes)}  {result.msg}{extra} "
                    f"({result.duration:.1f}s)")
    else:
        report.line(f"FAILED  {where}  {result.msg} ({result.duration:.1f}s)")
    report.event(result.to_json())


def _prune_after(targets: list[HostTarget], results: list[SiteResult], backup_dir: Path,
                 report: BackupReport) -> list[str]:
    """Prune each site whose new backup was verified in this run (never a site whose backup failed)."""
    by_host = {t.name: t for t in targets}
    pruned = []
    for result in results:
        if result.status != "ok" or result.host not in by_host:
            continue
        policy = Policy.from_vars(by_host[result.host].variables)
        directory = site_dir(backup_dir, result.group, result.host, result.site)
        plan = prune_site(directory, policy, dry_run=False)
        for name, why in plan.prune.items():
            pruned.append(f"{result.group}/{result.host}/{result.site}/{name}")
            report.line(f"pruned  {result.group}/{result.host}/{result.site}/{name}  ({why})")
            report.event({"event": "backup_pruned", "host": result.host, "site": result.site, "backup": name,
                          "reason": why})
    return pruned


def _finish_hooks(hooks: dict[str, str], summary: dict[str, Any], *, failed: bool, report: BackupReport,
                  project_dir: Path, backup_dir: Path, timeout: float) -> None:
    names = ["post_backup"] + (["on_backup_failure"] if failed else [])
    for name in names:
        if name not in hooks:
            continue
        outcome = run_hook(name, hooks[name], summary, cwd=project_dir, backup_dir=backup_dir, timeout=timeout)
        state = "ok" if outcome.returncode == 0 else f"exited {outcome.returncode}"
        report.line(f"hook    {name} {state}" + (f": {outcome.output[-300:]}" if outcome.returncode else ""))
        report.event({"event": "backup_hook", "hook": name, "rc": outcome.returncode})
