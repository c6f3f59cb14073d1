"""The host steps a multi-server update is made of (fleet.py's AppHost, Balancer and Database).

App host steps are flow.py's own (journalled on that host); the load balancer's drain is
balancer.py's script; the database's backup and restore are dbhost.py's, run on the db host and
journalled on the first app host too (its journal then names the dump an operator needs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..connection import Connection
from . import balancer, dbhost, downtime, hostops, journal, releases
from .fleet import FleetResult
from .flow import Events, HostFlow, StepFailed

DB_BACKUP = "db_backup"
DB_RESTORE = "db_restore"
POINT_DB = "point_db"


class AppHostSteps:
    """One app host's part, over its HostFlow."""

    def __init__(self, flow: HostFlow) -> None:
        self.flow = flow
        self.name = flow.plan.host
        self.began = False

    def begin(self, *, migrate_sites: Sequence[str]) -> None:
        plan, flow = self.flow.plan, self.flow
        flow.journal(journal.BEGIN, "start", from_path=plan.live_path, to_path=plan.release_path,
                     from_release=plan.live_release, to_release=plan.release, sites=flow.all_sites,
                     migrate_sites=list(migrate_sites), no_backup=flow.options.no_backup,
                     operation=flow.options.operation, multi_server=True)
        self.began = True

    def switch_new(self) -> None:
        self.flow.switch(self.flow.plan.release_path, journal.SWITCH)

    def switch_old(self) -> None:
        self.flow.switch(self.flow.plan.live_path, journal.SWITCH_BACK)

    def restart(self, *, new: bool) -> None:
        plan = self.flow.plan
        self.flow.restart(other=plan.live_path if new else plan.release_path)

    def gate(self, *, new: bool, in_maintenance: Sequence[str]) -> None:
        plan = self.flow.plan
        self.flow.gate(plan.release_path if new else plan.live_path, journal.HEALTH if new else "health_old",
                       in_maintenance=in_maintenance)

    def maintenance(self, site: str, *, on: bool) -> None:
        self.flow.maintenance(site, on=on)

    def drain_jobs(self, site: str) -> None:
        self.flow.drain(site)

    def migrate(self, site: str) -> None:
        self.flow.migrate(site)

    def point_site(self, site: str, restored: Mapping[str, Any]) -> None:
        flow = self.flow
        with flow.step(POINT_DB, site, db=restored["new_db"]) as out:
            # config_user None: the restore made a user named like the new database (no db_user key)
            login = restored.get("config_user", restored.get("db_user"))
            script = dbhost.point_site_script(flow.plan, site, str(restored["new_db"]), login)
            flow.must(POINT_DB, site, flow.run(script, as_frappe=True), "pointing the site at the restored database")
            out["msg"] = f"{site} -> {restored['new_db']} (the migrated {restored['old_db']} is kept)"
        report = flow.report.sites.get(site)
        if report is not None:
            report.restored_db, report.kept_db = str(restored["new_db"]), str(restored["old_db"])
            report.state = "restored"

    def finish(self, result: FleetResult, seen: Mapping[str, downtime.SiteDowntime]) -> None:
        """The host's report, release state, journal end, hooks and pruning, from the fleet's result."""
        flow, report = self.flow, self.flow.report
        for site, sample in seen.items():
            if site in report.sites:
                report.sites[site].failed_requests = sample.failed
                report.sites[site].down_s = sample.down_s
        if self.name in result.updated:
            report.status = "updated"
            for entry in report.sites.values():
                entry.state = "migrated" if entry.migrate else "switched"
            flow.mark(flow.plan.release_dir, releases.GOOD, "passed the health gate (multi-server update)")
            with contextlib.suppress(StepFailed):
                flow.journal(journal.END, "done", result="ok")
            with contextlib.suppress(StepFailed):
                flow.hook("post_update")
            flow.prune()
            return
        report.step, report.site = result.step, result.site
        report.error = result.error if result.host == self.name else f"{result.host} failed: {result.error}"
        report.notes.extend(result.problems)
        if self.name in result.rolled_back:
            report.status = "rolled_back"
            flow.mark(flow.plan.release_dir, releases.BAD, result.error[-300:])
        else:
            report.status = "failed" if result.host == self.name else "unchanged"
            if report.status == "unchanged":
                report.notes.append(f"not switched: the update stopped after {result.host} failed")
        if self.began:
            with contextlib.suppress(StepFailed):
                flow.journal(journal.END, "done", result="rolled_back" if self.name in result.rolled_back
                             else "aborted", problems=list(result.problems))
        with contextlib.suppress(StepFailed):
            flow.hook("on_update_failure", step=result.step, site=result.site, error=result.error)


class LbSteps:
    """The load balancer(s): an app host's upstream lines marked down, then up again."""

    def __init__(self, connections: Mapping[str, Connection], upstreams_file: str,
                 addresses: Mapping[str, Sequence[str]], events: Events, keep_down: Sequence[str] = (),
                 max_fails: int | None = None) -> None:
        self.connections = connections
        self.max_fails = max_fails  # lb_max_fails: a host left alone up gets 0 (balancer.mark_server)
        self.upstreams_file = upstreams_file
        self.addresses = addresses
        self.events = events
        self.keep_down = set(keep_down)  # lb_drained_hosts: drained by the operator, never put back here

    def _mark(self, host: str, *, down: bool) -> None:
        step = f"lb {'drain' if down else 'put back'} {host}"
        for name, connection in self.connections.items():
            self.events.step_started(name, step, None)
            started = time.monotonic()
            script = balancer.drain_script(self.upstreams_file, host, self.addresses[host], down=down,
                                           max_fails=self.max_fails)
            result = connection.run(script, become_user="root", timeout=300)
            if not result.ok:
                message = f"{step} on {name} failed (exit {result.rc}):\n{result.tail(8)}"
                self.events.step_done(name, step, None, "failed", message, time.monotonic() - started)
                raise StepFailed("drain" if down else "put back", None, message)
            data = hostops.last_json(result.stdout) or {}
            self.events.step_done(name, step, None, "changed" if data.get("changed") else "ok",
                                  f"{data.get('lines', '?')} server line(s) {'down' if down else 'up'}, "
                                  f"{data.get('up', '?')} up in {self.upstreams_file}", time.monotonic() - started)

    def drain(self, host: str) -> None:
        self._mark(host, down=True)

    def undrain(self, host: str) -> None:
        if host not in self.keep_down:
            self._mark(host, down=False)


class DatabaseSteps:
    """The database host: one safety backup per migrating site, one restore into a new database."""

    def __init__(self, connection: Connection, name: str, first: HostFlow, run_id: str, events: Events) -> None:
        self.connection = connection
        self.name = name
        self.first = first
        self.run_id = run_id
        self.events = events
        self._dbs: dict[str, dict[str, str]] | None = None

    def site_dbs(self) -> dict[str, dict[str, str]]:
        if self._dbs is None:
            result = self.first.run(dbhost.site_dbs_script(self.first.plan, list(self.first.all_sites)), timeout=60)
            data = hostops.last_json(result.stdout) if result.ok else None
            if data is None:
                raise StepFailed(DB_BACKUP, None, f"reading the sites' database names failed:\n{result.tail(5)}")
            self._dbs = {str(k): dict(v) for k, v in data.items()}
        return self._dbs

    @contextlib.contextmanager
    def step(self, name: str, site: str, **data: Any) -> Iterator[dict[str, Any]]:
        """Reported on the db host, journalled on the first app host."""
        self.events.step_started(self.name, name, site)
        self.first.journal(name, "start", site, db_host=self.name, **data)
        started = time.monotonic()
        outcome: dict[str, Any] = {"msg": "", "data": {}}
        try:
            yield outcome
        except StepFailed as failure:
            self.events.step_done(self.name, name, site, "failed", failure.message, time.monotonic() - started)
            with contextlib.suppress(StepFailed):
                self.first.journal(name, "failed", site, error=failure.message[-2000:])
            raise
        self.first.journal(name, "done", site, **outcome["data"])
        self.events.step_done(self.name, name, site, "changed", outcome["msg"], time.monotonic() - started)

    def backup(self, site: str) -> dict[str, Any]:
        db = self.site_dbs()[site]["db_name"]
        directory = f"{dbhost.backup_root(self.run_id)}/{site}"
        with self.step(DB_BACKUP, site, dir=directory) as out:
            result = self.connection.run(dbhost.dump_script(directory, db), become_user="root", timeout=7200)
            data = hostops.last_json(result.stdout) if result.ok else None
            if data is None:
                raise StepFailed(DB_BACKUP, site, f"backing up {db} on {self.name} failed (exit {result.rc}):\n"
                                                  f"{result.tail(10)}")
            record = {"dir": directory, "dump": data["dump"], "db_name": db, "sha256": data.get("sha256", ""),
                      "tables": len(data.get("tables", {})), "host": self.name}
            out["data"] = record
            out["msg"] = f"{self.name}:{data['dump']} ({record['tables']} tables checksummed)"
        if site in self.first.report.sites:
            self.first.report.sites[site].backup = f"{self.name}:{directory}"
        self.events.event("backup", {"host": self.name, "site": site, **record})
        return record

    def restore(self, site: str, backup: Mapping[str, Any]) -> dict[str, Any]:
        names = self.site_dbs()[site]
        with self.step(DB_RESTORE, site, backup=backup.get("dir")) as out:
            result = self.connection.run(dbhost.restore_script(names["db_name"], names["db_user"], backup,
                                                               own_user=bool(names.get("own_user"))),
                                         become_user="root", timeout=7200)
            data = hostops.last_json(result.stdout) if result.ok else None
            if data is None:
                raise StepFailed(DB_RESTORE, site, f"restoring {site} on {self.name} failed (exit {result.rc}):\n"
                                                   f"{result.tail(10)}")
            out["data"] = data
            out["msg"] = (f"restored into {data['new_db']} ({data['tables']} tables equal to the backup), granted "
                          f"to {data['db_user']} from {', '.join(data.get('grants', []))}; {data['old_db']} is kept")
        return dict(data)
