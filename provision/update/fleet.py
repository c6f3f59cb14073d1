"""The order of a multi-server update: app hosts behind a load balancer, one shared database.

The new release is already built on every app host (nothing live changed). Then:

- **no site migrates** (rolling): one app host at a time — drained from the load balancer,
  switched, restarted, health-checked on the host itself, put back — so the load balancer always
  has an up-to-date or an old host to send every request to;
- **a site migrates** (one window): maintenance on for the migrating sites (on every app host: a
  site's config may live on each), their jobs drained, ONE backup (on the database host), every
  app host switched, ONE migrate (on the first app host), every host restarted and health-checked,
  maintenance off. The window, maintenance on to off, is measured.

Any failure rolls every app host that was switched back (drained one at a time in a rolling
update, so the way back is as smooth as the way there) and restores each database whose migrate
had started ONCE, into a new database proven equal to the backup, which every app host is then
pointed at. This module only orders the steps; ``fleet_run`` gives them their host scripts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .flow import StepFailed


class AppHost(Protocol):
    """One app host's steps (each raises StepFailed)."""

    name: str

    def switch_new(self) -> None: ...
    def switch_old(self) -> None: ...
    def restart(self, *, new: bool) -> None: ...
    def gate(self, *, new: bool, in_maintenance: Sequence[str]) -> None: ...
    def maintenance(self, site: str, *, on: bool) -> None: ...
    def drain_jobs(self, site: str) -> None: ...
    def migrate(self, site: str) -> None: ...
    def point_site(self, site: str, restored: Mapping[str, Any]) -> None: ...


class Balancer(Protocol):
    def drain(self, host: str) -> None: ...
    def undrain(self, host: str) -> None: ...


class Database(Protocol):
    def backup(self, site: str) -> dict[str, Any]: ...
    def restore(self, site: str, backup: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class FleetResult:
    """What the multi-server update did; ``status`` is updated, rolled_back or failed."""

    mode: str
    status: str = "failed"
    updated: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    migrated_on: str = ""
    migrated: list[str] = field(default_factory=list)
    backups: dict[str, dict[str, Any]] = field(default_factory=dict)
    restored: dict[str, dict[str, Any]] = field(default_factory=dict)
    window_s: float | None = None
    step: str = ""
    host: str = ""
    site: str = ""
    error: str = ""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class FleetUpdate:
    """Runs the steps in their order; never raises for a step's failure (the result says it)."""

    def __init__(self, hosts: Sequence[AppHost], balancer: Balancer, database: Database, *,
                 migrating: Sequence[str], no_backup: bool = False, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not hosts:
            raise ValueError("a multi-server update needs at least one app host")
        self.hosts = list(hosts)
        self.balancer = balancer
        self.database = database
        self.migrating = list(migrating)
        self.no_backup = no_backup
        self.stop = stop or threading.Event()
        self.clock = clock
        self.result = FleetResult(mode="window" if self.migrating else "rolling")

    def run(self) -> FleetResult:
        if self.migrating:
            self._window()
        else:
            self._rolling()
        return self.result

    def _fail(self, failure: StepFailed, host: str) -> None:
        self.result.step, self.result.site = failure.step, failure.site or ""
        self.result.error, self.result.host = failure.message, host

    def _check_stop(self, step: str) -> None:
        if self.stop.is_set():
            raise StepFailed(step, None, "interrupted (Ctrl-C): stopping here")

    def _try(self, what: str, action: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
        """A rollback step: its failure is recorded and the rollback goes on."""
        try:
            action(*args, **kwargs)
            return True
        except StepFailed as exc:
            self.result.problems.append(f"{what}: {exc.message}")
            return False

    # -- rolling: no site migrates -------------------------------------------------------------------

    def _rolling(self) -> None:
        switched: list[AppHost] = []
        current = self.hosts[0]
        drained = False
        try:
            for host in self.hosts:
                current = host
                self._check_stop("drain")
                self.balancer.drain(host.name)
                drained = True
                switched.append(host)
                host.switch_new()
                host.restart(new=True)
                host.gate(new=True, in_maintenance=())
                self.balancer.undrain(host.name)
                drained = False
                self.result.updated.append(host.name)
        except StepFailed as failure:
            self._fail(failure, current.name)
            self._roll_back_rolling(switched, current if drained else None)
            return
        self.result.status = "updated"

    def _roll_back_rolling(self, switched: list[AppHost], drained: AppHost | None) -> None:
        """Every switched host back, one at a time, drained while it restarts; the failed one first."""
        self.result.updated.clear()
        for host in reversed(switched):
            if host is not drained and not self._try(f"{host.name}: drain", self.balancer.drain, host.name):
                continue  # never restart a host the load balancer still sends requests to
            ok = self._try(f"{host.name}: switch back", host.switch_old)
            ok = ok and self._try(f"{host.name}: restart", host.restart, new=False)
            ok = ok and self._try(f"{host.name}: health", host.gate, new=False, in_maintenance=())
            if ok:
                self._try(f"{host.name}: put back", self.balancer.undrain, host.name)
                self.result.rolled_back.append(host.name)
            else:
                self.result.problems.append(f"{host.name} stays drained from the load balancer")
            drained = None if host is drained else drained
        if drained is not None:  # drained, never switched
            self._try(f"{drained.name}: put back", self.balancer.undrain, drained.name)
        self.result.status = "rolled_back" if switched or drained else "failed"

    # -- one window: a site migrates -----------------------------------------------------------------

    def _window(self) -> None:
        first = self.hosts[0]
        entered: list[tuple[AppHost, str]] = []
        switched: list[AppHost] = []
        started: float | None = None
        current = first
        try:
            for site in self.migrating:
                for host in self.hosts:
                    current = host
                    self._check_stop("maintenance_on")
                    host.maintenance(site, on=True)
                    entered.append((host, site))
                    if started is None:
                        started = self.clock()
            current = first
            for site in self.migrating:
                first.drain_jobs(site)
                if not self.no_backup:
                    self.result.backups[site] = self.database.backup(site)
            for host in self.hosts:
                current = host
                self._check_stop("switch")
                switched.append(host)
                host.switch_new()
            current = first
            self.result.migrated_on = first.name
            for site in self.migrating:
                self._check_stop("migrate")
                self.result.migrated.append(site)
                first.migrate(site)
            for host in self.hosts:
                current = host
                host.restart(new=True)
            for host in self.hosts:
                current = host
                host.gate(new=True, in_maintenance=self.migrating)
            for host, site in entered:
                current = host
                host.maintenance(site, on=False)
        except StepFailed as failure:
            self._fail(failure, current.name)
            self._roll_back_window(switched, entered)
        else:
            self.result.status = "updated"
            self.result.updated = [h.name for h in self.hosts]
        if started is not None:
            self.result.window_s = round(self.clock() - started, 2)

    def _roll_back_window(self, switched: list[AppHost], entered: list[tuple[AppHost, str]]) -> None:
        closed: set[str] = set()
        for host in switched:
            self._try(f"{host.name}: switch back", host.switch_old)
        for site in self.result.migrated:  # each database restored once, every host pointed at it
            backup = self.result.backups.get(site)
            if not backup:
                self.result.problems.append(f"{site}: no backup (--no-backup): its database stays as the migrate "
                                            "left it")
                continue
            try:
                restored = self.database.restore(site, backup)
            except StepFailed as exc:
                self.result.problems.append(f"{site}: {exc.message}")
                closed.add(site)
                continue
            self.result.restored[site] = restored
            for host in self.hosts:
                if not self._try(f"{host.name}: point {site} at the restored database",
                                 host.point_site, site, restored):
                    closed.add(site)
        for host in switched:
            if self._try(f"{host.name}: restart", host.restart, new=False):
                self._try(f"{host.name}: health", host.gate, new=False,
                          in_maintenance=[s for s in self.migrating if s not in closed])
            self.result.rolled_back.append(host.name)
        for host, site in entered:
            if site in closed:
                continue  # its data could not be put back: it stays closed rather than serve it
            self._try(f"{host.name}: maintenance off for {site}", host.maintenance, site, on=False)
        if closed:
            self.result.problems.append(f"kept in maintenance: {', '.join(sorted(closed))}")
        self.result.status = "rolled_back" if switched else "failed"
