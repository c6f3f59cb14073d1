"""One host's update (or rollback): the steps, their journal, and the way back on any failure.

    survey → decide → pre_update → [maintenance on → drain → backup]* → post_backup → switch
           → [migrate]* → restart → health gate → maintenance off → good → post_update → prune

Any failure before the switch ends maintenance and leaves the live release as it was. Any
failure from the switch on rolls back: switch back, restore the databases whose migrate started
(into new databases, proven equal to the backup, the migrated one kept), restart, health gate on
the old release, maintenance off, the new release marked bad, ``on_update_failure``. A first
Ctrl-C stops at the next step (and rolls back from the switch on); the running command finishes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..connection import Connection
from ..contract import CommandResult
from . import downtime, hostops, journal, releases
from .decide import AppChange, SiteDecision, decide_sites
from .health import GateResult, gate_script, parse_gate
from .hooks import hooks_of, run_hook
from .plan import HostPlan
from .restart import restart_script


class Events(Protocol):
    """Where the flow reports (report.UpdateReporter)."""

    def step_started(self, host: str, step: str, site: str | None) -> None: ...

    def step_done(self, host: str, step: str, site: str | None, status: str, msg: str, duration: float) -> None: ...

    def event(self, kind: str, record: Mapping[str, Any]) -> None: ...


class StepFailed(Exception):
    def __init__(self, step: str, site: str | None, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.site = site
        self.message = message


@dataclass(frozen=True)
class FlowOptions:
    run_id: str
    operation: str = "update"
    no_backup: bool = False
    check: bool = False
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class SiteReport:
    site: str
    migrate: bool = False
    reason: str = ""
    state: str = "unchanged"
    maintenance_s: float = 0.0
    down_s: float | None = None
    failed_requests: int = 0
    backup: str = ""
    restored_db: str = ""
    kept_db: str = ""


@dataclass
class HostReport:
    """What happened on one host; ``status`` is updated, unchanged, rolled_back, failed, checked or lost."""

    host: str
    status: str = "unchanged"
    from_release: str = ""
    to_release: str = ""
    sites: dict[str, SiteReport] = field(default_factory=dict)
    step: str = ""
    site: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    ok: int = 0
    changed: int = 0
    failed: int = 0

    @property
    def failed_run(self) -> bool:
        return self.status in ("rolled_back", "failed", "lost")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sites"] = {name: asdict(report) for name, report in self.sites.items()}
        return data


class HostFlow:
    """Runs one host's update through its connection; never raises for a step's failure."""

    def __init__(self, connection: Connection, local: Connection, plan: HostPlan, options: FlowOptions,
                 events: Events) -> None:
        self.connection = connection
        self.local = local
        self.plan = plan
        self.options = options
        self.events = events
        self.report = HostReport(plan.host, from_release=plan.live_release, to_release=plan.release)
        self.hooks = hooks_of(plan.hooks, plan.host)
        self.entered: list[str] = []
        self.migrate_started: list[str] = []
        self.backups: dict[str, dict[str, Any]] = {}
        self.decisions: list[SiteDecision] = []
        self.all_sites: list[str] = []
        self._maintenance_at: dict[str, float] = {}
        self.reads_opened: set[str] = set()
        self.maintenance_now: list[str] = []

    # -- plumbing ----------------------------------------------------------------------------------

    def run(self, script: str, *, as_frappe: bool = False, timeout: float | None = 600,
            stdin: bytes | None = None) -> CommandResult:
        user = self.plan.frappe_user if as_frappe else "root"
        return self.connection.run(script, become_user=user, timeout=timeout, stdin=stdin)

    def journal(self, step: str, phase: journal.Phase, site: str | None = None, **data: Any) -> None:
        entry = journal.Entry(step, phase, site, data, time.time(), self.options.run_id)
        result = self.run(journal.append_script(self.plan.shared_path, self.options.run_id),
                          stdin=(entry.to_json() + "\n").encode(), timeout=60)
        if not result.ok:
            raise StepFailed(step, site, f"cannot write the journal: {result.tail(3)}")

    @contextlib.contextmanager
    def step(self, name: str, site: str | None = None, *, record: bool = True, changes: bool = True,
             **data: Any) -> Iterator[dict[str, Any]]:
        """Journal the step before and after it, report it, time it; a StepFailed inside is recorded."""
        host = self.plan.host
        self.events.step_started(host, name, site)
        if record:
            self.journal(name, "start", site, **data)
        started = time.monotonic()
        outcome: dict[str, Any] = {"msg": "", "data": {}}
        try:
            yield outcome
        except StepFailed as failure:
            self.report.failed += 1
            self.events.step_done(host, name, site, "failed", failure.message, time.monotonic() - started)
            if record:
                with contextlib.suppress(Exception):
                    self.journal(name, "failed", site, error=failure.message[-2000:])
            raise
        if record:
            self.journal(name, "done", site, **outcome["data"])
        self.report.ok += 1
        self.report.changed += 1 if changes else 0
        self.events.step_done(host, name, site, "changed" if changes else "ok", outcome["msg"],
                              time.monotonic() - started)

    def must(self, step: str, site: str | None, result: CommandResult, what: str) -> CommandResult:
        if not result.ok:
            raise StepFailed(step, site, f"{what} failed (exit {result.rc}):\n{result.tail(15)}")
        return result

    def check_stop(self, step: str) -> None:
        if self.options.stop.is_set():
            raise StepFailed(step, None, "interrupted (Ctrl-C): stopping here")

    # -- survey and decision -----------------------------------------------------------------------

    def survey(self, *, target_exists: bool) -> list[SiteDecision]:
        with self.step("decide", record=False, changes=False) as out:
            result = self.must("decide", None, self.run(hostops.survey_script(self.plan, target_exists=target_exists),
                                                        as_frappe=True, timeout=900), "reading sites and app commits")
            data = hostops.last_json(result.stdout)
            if data is None:
                raise StepFailed("decide", None, f"no survey answer:\n{result.tail(10)}")
            changes = [AppChange(app, c.get("live"), c.get("target"),
                                 tuple(c["paths"]) if c.get("paths") is not None else None)
                       for app, c in data["changes"].items()]
            installed = {site: (list(apps) if isinstance(apps, list) else None)
                         for site, apps in data["installed"].items()}
            self.all_sites = list(data["sites"])
            self.decisions = decide_sites(installed, changes)
            migrating = [d.site for d in self.decisions if d.migrate]
            out["msg"] = (f"{len(migrating)} of {len(self.decisions)} site(s) migrate" if self.decisions
                          else "no sites")
        for decision in self.decisions:
            self.report.sites[decision.site] = SiteReport(decision.site, decision.migrate, decision.reason)
            self.events.event("migrate_decision", {"host": self.plan.host, "site": decision.site,
                                                   "migrate": decision.migrate, "reason": decision.reason})
        return self.decisions

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The JSON a hook reads on stdin."""
        return {"run_id": self.options.run_id, "operation": self.options.operation, "host": self.plan.host,
                "from_release": self.plan.live_release, "to_release": self.plan.release,
                "sites": {d.site: {"migrate": d.migrate, "reason": d.reason} for d in self.decisions},
                "backups": {site: b.get("dir") for site, b in self.backups.items()}, **extra}

    def hook(self, name: str, **extra: Any) -> None:
        hook = self.hooks.get(name)
        if hook is None:
            return
        with self.step(f"hook {name}", record=False, changes=False) as out:
            ok, output = run_hook(hook, self.summary(**extra), remote=self.connection, local=self.local)
            out["msg"] = output
            if not ok:
                raise StepFailed(f"hook {name}", None, output)

    # -- the update --------------------------------------------------------------------------------

    def update(self) -> HostReport:
        """The update of this host; a failure before anything changed leaves it as it was."""
        try:
            return self._update()
        except StepFailed as failure:  # before the journal's begin: nothing was changed
            self.report.status = "failed"
            self.report.step, self.report.site, self.report.error = failure.step, failure.site or "", failure.message
            return self.report

    def _update(self) -> HostReport:
        plan = self.plan
        if plan.live_path == plan.release_path:
            self.report.status = "unchanged"
            self.report.notes.append(f"{plan.release} is already live")
            self.report.ok += 1
            return self.report
        decisions = self.survey(target_exists=not self.options.check)
        if self.options.check:
            self.report.status = "checked"
            migrating = [d.site for d in decisions if d.migrate]
            self.report.notes.append(
                f"would build {plan.release} beside {plan.live_release or 'nothing'}, then switch"
                + (f"; maintenance and a backup into {plan.shared_path}/update-backups/<run>/ for "
                   f"{', '.join(migrating)}" if migrating and not self.options.no_backup else "")
                + ("; no migrating site" if not migrating else ""))
            return self.report
        migrating = [d.site for d in decisions if d.migrate]
        self.journal(journal.BEGIN, "start", from_path=plan.live_path, to_path=plan.release_path,
                     from_release=plan.live_release, to_release=plan.release, sites=self.all_sites,
                     migrate_sites=migrating, no_backup=self.options.no_backup, operation=self.options.operation)
        self.run(downtime.start_script(journal.journal_dir(plan.shared_path), self.options.run_id,
                                       [plan.site_target(s) for s in self.all_sites]), timeout=60)
        switched = False
        try:
            self.hook("pre_update")
            for site in migrating:
                self.check_stop("maintenance_on")
                self.maintenance(site, on=True)
                self.drain(site)
                if not self.options.no_backup:
                    self.backup(site)
            if self.options.no_backup and migrating:
                self.events.event("no_backup", {"host": plan.host, "sites": migrating})
            self.hook("post_backup")
            self.check_stop("switch")
            switched = True
            self.switch(plan.release_path, journal.SWITCH)
            for site in migrating:
                self.check_stop("migrate")
                self.migrate(site)
            self.restart(other=plan.live_path)
            self.gate(plan.release_path, journal.HEALTH, in_maintenance=migrating)
            for site in migrating:
                self.maintenance(site, on=False)
            self.mark(plan.release_dir, releases.GOOD, "passed the health gate")
            self.journal(journal.END, "done", result="ok")
            self.report.status = "updated"
            for report in self.report.sites.values():
                report.state = "migrated" if report.migrate else "switched"
        except StepFailed as failure:
            self.report.step, self.report.site, self.report.error = failure.step, failure.site or "", failure.message
            if switched or self.migrate_started:
                self.rollback(old_path=plan.live_path, new_path=plan.release_path, new_dir=plan.release_dir,
                              restore_sites=list(self.migrate_started), backups=self.backups,
                              maintenance_sites=list(self.entered), reason=failure.message)
            else:
                self.abort(list(self.entered))
        finally:
            self.collect_downtime()
        if self.report.status == "updated":
            with contextlib.suppress(StepFailed):
                self.hook("post_update")
            self.prune()
        else:
            with contextlib.suppress(StepFailed):
                self.hook("on_update_failure", step=self.report.step, site=self.report.site, error=self.report.error)
        return self.report

    # -- steps -------------------------------------------------------------------------------------

    def maintenance(self, site: str, *, on: bool, close_reads: bool | None = None) -> None:
        name = journal.MAINTENANCE_ON if on else journal.MAINTENANCE_OFF
        close = (site in self.reads_opened) if close_reads is None else close_reads
        with self.step(name, site) as out:
            self.must(name, site, self.run(hostops.maintenance_script(self.plan, site, on, close_reads=close),
                                           as_frappe=True), f"maintenance mode {'on' if on else 'off'}")
            if on:
                self.entered.append(site)
                self.maintenance_now.append(site)
                self._maintenance_at[site] = time.monotonic()
                return
            self.reads_opened.discard(site)
            if site in self.maintenance_now:
                self.maintenance_now.remove(site)
            if site in self._maintenance_at and site in self.report.sites:
                self.report.sites[site].maintenance_s = round(time.monotonic() - self._maintenance_at.pop(site), 2)
                out["msg"] = f"{self.report.sites[site].maintenance_s:.1f}s in maintenance"

    def drain(self, site: str) -> None:
        with self.step(journal.DRAIN, site, changes=False) as out:
            timeout = self.plan.drain_timeout
            result = self.run(hostops.drain_script(self.plan, site, timeout), as_frappe=True, timeout=timeout + 120)
            self.must(journal.DRAIN, site, result, "waiting for the site's background jobs")
            out["msg"] = "no job queued or running"

    def backup(self, site: str) -> None:
        directory = hostops.backup_dir(self.plan, self.options.run_id, site)
        with self.step(journal.BACKUP, site, dir=directory) as out:
            self.must(journal.BACKUP, site, self.run(hostops.backup_dir_script(directory), as_frappe=True),
                      "creating the backup directory")
            self.must(journal.BACKUP, site, self.run(hostops.backup_sums_script(self.plan, directory, site, "before"),
                                                      timeout=3600), "checksumming the tables")
            self.must(journal.BACKUP, site, self.run(hostops.backup_script(self.plan, directory, site,
                                                                            with_files=self.plan.backup_files),
                                                      as_frappe=True, timeout=7200), f"bench --site {site} backup")
            result = self.must(journal.BACKUP, site, self.run(hostops.backup_sums_script(self.plan, directory, site,
                                                                                          "after"), timeout=3600),
                               "proving the backup")
            data = hostops.last_json(result.stdout) or {}
            record = {"dir": directory, "dump": data.get("dump", ""), "db_name": data.get("db_name", ""),
                      "files": data.get("files", {}), "tables": len(data.get("tables", {}))}
            self.backups[site] = record
            out["data"] = record
            out["msg"] = f"{directory} ({record['tables']} tables checksummed)"
            self.report.sites[site].backup = directory
            self.events.event("backup", {"host": self.plan.host, "site": site, **record})

    def switch(self, target: str, name: str) -> None:
        with self.step(name, target=target) as out:
            self.must(name, None, self.run(hostops.switch_script(self.plan, target), as_frappe=True),
                      f"switching {self.plan.bench_path} to {target}")
            out["msg"] = f"{self.plan.bench_path} -> {target}"

    def migrate(self, site: str) -> None:
        self.migrate_started.append(site)
        with self.step(journal.MIGRATE, site) as out:
            timeout = self.plan.migrate_timeout
            script = f"timeout --kill-after=30 {int(timeout)} sh -c {_q(hostops.migrate_script(self.plan, site))}"
            self.must(journal.MIGRATE, site, self.run(script, as_frappe=True, timeout=timeout + 120),
                      f"bench --site {site} migrate")
            out["msg"] = "migrated"

    def restart(self, *, other: str) -> None:
        probe = next((s.name for s in self.plan.sites if s.port and not s.tls), "")
        with self.step(journal.RESTART) as out:
            result = self.must(journal.RESTART, None, self.run(restart_script(self.plan, other, probe), timeout=900),
                               "restarting the bench")
            said = (hostops.last_json(result.stdout) or {}).get("said") or []
            out["msg"] = "; ".join(str(s) for s in said) or self.plan.restart_cmd

    def open_reads(self, sites: Sequence[str]) -> None:
        """Reads through maintenance for the gate (Frappe's allow_reads_during_maintenance); writes stay off."""
        for site in sites:
            if site in self.reads_opened:
                continue
            result = self.run(hostops.open_reads_script(self.plan, site), as_frappe=True)
            before = ((hostops.last_json(result.stdout) or {}).get("before") or {})
            if result.ok and not before.get("allow_reads_during_maintenance"):
                self.reads_opened.add(site)

    def gate(self, release_path: str, name: str, *, in_maintenance: Sequence[str] = ()) -> GateResult:
        with self.step(name, changes=False) as out:
            self.open_reads(in_maintenance)
            script = gate_script(release_path=release_path, apps=self.plan.apps,
                                 sites=[self.plan.site_target(s) for s in self.all_sites],
                                 supervisorctl=self.plan.supervisorctl, bench_name=self.plan.bench_name,
                                 timeout=self.plan.health_timeout)
            result = self.run(script, timeout=self.plan.health_timeout + 300)
            gate = parse_gate(result.stdout, result.stderr)
            if not gate.ok:
                raise StepFailed(name, None, f"health gate failed:\n{gate.summary()}")
            out["msg"] = f"{len(self.all_sites)} site(s) healthy"
            return gate

    def mark(self, release_dir: str, state: str, reason: str) -> None:
        result = self.run(releases.mark_script(release_dir, state, reason))
        if not result.ok:
            self.report.notes.append(f"could not mark {release_dir} {state}: {result.tail(2)}")
        self.events.event("release", {"host": self.plan.host, "release": release_dir.rsplit('/', 1)[-1],
                                      "state": state, "reason": reason})

    def abort(self, maintenance_sites: Sequence[str]) -> None:
        """Before the switch: nothing live changed; end maintenance where it began."""
        for site in maintenance_sites:
            with contextlib.suppress(StepFailed):
                self.maintenance(site, on=False)
        with contextlib.suppress(StepFailed):
            self.journal(journal.END, "done", result="aborted")
        self.report.status = "failed"

    def rollback(self, *, old_path: str, new_path: str, new_dir: str, restore_sites: Sequence[str],
                 backups: Mapping[str, Mapping[str, Any]], maintenance_sites: Sequence[str], reason: str) -> None:
        """Back to ``old_path`` with the data as it was before the migrate."""
        problems: list[str] = []
        kept_in_maintenance: list[str] = []
        try:
            self.journal(journal.ROLLBACK, "start", reason=reason[-500:])
        except StepFailed as exc:
            problems.append(exc.message)
        live = self.run(f"readlink {_q(self.plan.bench_path)}").stdout.strip()
        if live != old_path:
            try:
                self.switch(old_path, journal.SWITCH_BACK)
            except StepFailed as exc:
                problems.append(exc.message)
        for site in restore_sites:
            backup = backups.get(site)
            if not backup or not backup.get("dump"):
                problems.append(f"{site}: no backup (--no-backup): its database stays as the migrate left it")
                continue
            try:
                with self.step(journal.RESTORE, site, backup=backup.get("dir")) as out:
                    result = self.must(journal.RESTORE, site, self.run(hostops.restore_script(self.plan, site, backup),
                                                                        timeout=7200), "restoring the database")
                    data = hostops.last_json(result.stdout) or {}
                    out["data"] = data
                    out["msg"] = (f"restored into {data.get('new_db')} ({data.get('tables')} tables equal to the "
                                  f"backup); the migrated database {data.get('old_db')} is kept")
                    if site in self.report.sites:
                        self.report.sites[site].restored_db = str(data.get("new_db", ""))
                        self.report.sites[site].kept_db = str(data.get("old_db", ""))
            except StepFailed as exc:
                problems.append(f"{site}: {exc.message}")
                kept_in_maintenance.append(site)
        try:
            self.restart(other=new_path)
            self.gate(old_path, "health_old", in_maintenance=[s for s in maintenance_sites
                                                              if s not in kept_in_maintenance])
        except StepFailed as exc:
            problems.append(exc.message)
        for site in maintenance_sites:
            if site in kept_in_maintenance:
                continue  # its data could not be put back: it stays closed rather than serve it
            try:
                self.maintenance(site, on=False)
            except StepFailed as exc:
                problems.append(exc.message)
        self.mark(new_dir, releases.BAD, reason[-300:])
        with contextlib.suppress(StepFailed):
            self.journal(journal.END, "done", result="rolled_back" if not problems else "rollback_incomplete",
                         problems=problems)
        self.report.status = "rolled_back"
        for site in restore_sites:
            if site in self.report.sites:
                self.report.sites[site].state = "restored" if site not in kept_in_maintenance else "in maintenance"
        self.report.notes.extend(problems)

    def collect_downtime(self) -> None:
        result = self.run(downtime.stop_script(journal.journal_dir(self.plan.shared_path), self.options.run_id),
                          timeout=60)
        for site, seen in downtime.parse_downtime(result.stdout).items():
            report = self.report.sites.setdefault(site, SiteReport(site))
            report.down_s = seen.down_s
            report.failed_requests = seen.failed
            if not report.maintenance_s and seen.maintenance_s:
                report.maintenance_s = seen.maintenance_s
            self.events.event("downtime", {"host": self.plan.host, "site": site, "down_s": seen.down_s,
                                           "maintenance_s": report.maintenance_s, "failed_requests": seen.failed,
                                           "samples": seen.samples})

    def prune(self) -> None:
        listing = self.run(releases.list_script(self.plan.frappe_home, self.plan.bench_path))
        live, found = releases.parse_list(listing.stdout)
        doomed = releases.prune(found, live, self.plan.keep_releases)
        if doomed:
            result = self.run(releases.delete_script(self.plan.frappe_home, self.plan.bench_path, doomed, live),
                              timeout=900)
            self.report.notes.append(result.stdout.strip().replace("\n", ", "))


def _q(text: str) -> str:
    from shlex import quote

    return quote(text)
