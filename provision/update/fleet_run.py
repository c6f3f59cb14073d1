"""``provision update`` on a multi-server bench: app hosts behind an ``lb``, one ``db`` host.

When the inventory has ``app`` and ``lb`` groups and the selection holds app hosts, the update
runs as one system (fleet.py orders the steps): the locks of every app host, the load
balancer(s) and the database host are taken before anything changes; each app host's journal
is recovered; the new release is built on every app host in one engine run (in parallel,
nothing live changes); the first app host decides which sites migrate; then the rolling update
or the one maintenance window, with each step journalled on its app host (flow.py's steps). A
sampler on the load balancer counts what the sites' users saw through it (failed requests, the
seconds in maintenance). ``provision rollback`` runs the same steps to a release every app host
already has (each host's choice must agree). Single-host benches never come here.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..connection import Connection, LocalConnection, SSHConnection
from ..errors import ConnectError, OptionsError, ProvisionError
from ..inventory import Inventory
from ..rolegroups import role_members
from . import balancer, downtime
from .fleet import FleetResult, FleetUpdate
from .flow import HostFlow, HostReport, SiteReport, StepFailed
from .plan import SiteTarget
from .recover import recover_host
from .report import UpdateReporter
from .rollout import Rollout, RolloutOptions

# a rollback's choice for one app host: the plan switched to the release to go back to, or why there is none
Target = Callable[[Any, Connection], tuple[Any, str]]


@dataclass(frozen=True)
class Layout:
    """The hosts of a multi-server bench, in inventory order."""

    app: tuple[str, ...]          # the app hosts this run updates
    all_app: tuple[str, ...]      # every app host of the inventory
    lb: tuple[str, ...]
    db: str | None


def multiserver_layout(inventory: Inventory, selected: Sequence[str]) -> Layout | None:
    """The layout when the inventory has app and lb groups and ``selected`` holds app hosts; else None."""
    members = role_members(inventory)
    if not members["app"] or not members["lb"]:
        return None
    chosen = tuple(h for h in members["app"] if h in selected)
    if not chosen:
        return None
    return Layout(app=chosen, all_app=tuple(members["app"]), lb=tuple(members["lb"]),
                  db=members["db"][0] if members["db"] else None)


class FleetRollout:
    """One update across a multi-server bench."""

    def __init__(self, args: argparse.Namespace, layout: Layout, options: RolloutOptions, playbook: Path,
                 reporter: UpdateReporter, target: Target | None = None) -> None:
        self.layout = layout
        self.target = target  # a rollback: each app host's release to go back to, instead of a build
        self.reporter = reporter
        self.playbook = playbook
        self.rollout = Rollout(args, ":".join(layout.app), options, playbook, reporter)
        self.options = options
        self.result: FleetResult | None = None

    # -- connections to hosts the engine run does not touch (lb, db) ----------------------------------

    def variables(self, host: str) -> Mapping[str, Any]:
        from ..backup.targets import deploy_defaults
        from ..secrets import secret_values
        from ..templating import Templar

        merged = {**deploy_defaults(), **self.rollout.inventory.hosts[host].vars,
                  **self.rollout.run_options.extra_vars}
        self.rollout.args.redactor.add(secret_values(merged))
        return Templar().variables(merged)

    def other_connection(self, host: str) -> Connection:
        from ..connspec import connection_spec

        options = self.rollout.run_options
        spec = connection_spec(host, self.variables(host))
        if spec.local:
            return LocalConnection(host, cancel=self.rollout.cancel)
        if spec.become_password is None and options.become_password is not None:
            spec = replace(spec, become_password=options.become_password)
        return SSHConnection(spec, known_hosts=options.known_hosts, ssh_config=options.ssh_config,
                             connect_timeout=options.connect_timeout, cancel=self.rollout.cancel)

    def addresses(self, host: str) -> list[str]:
        """Every name the lb's upstreams file may use for ``host``."""
        values = self.variables(host)
        found = [host]
        for key in ("private_address", "host_private_address", "ssh_host", "ansible_host", "ansible_ssh_host"):
            with contextlib.suppress(Exception):
                value = values.get(key)
                if isinstance(value, str) and value:
                    found.append(value)
        return found

    # -- the run ---------------------------------------------------------------------------------------

    def run(self) -> int:
        from ..cli import interrupts

        started = time.monotonic()
        rollout = self.rollout
        try:
            with interrupts(rollout.interrupt):
                try:
                    self._run()
                except KeyboardInterrupt:
                    rollout.cancel.set()
                    raise
        except KeyboardInterrupt:
            return rollout.finish(started, interrupted=True)
        return rollout.finish(started)

    def _run(self) -> None:
        from ..hostlock import HostLock

        rollout, layout = self.rollout, self.layout
        plans = rollout.info()
        if rollout.reports or not plans:
            return
        if rollout.options.check:
            self._check(plans)
            return
        involved = [*layout.app, *(h for h in layout.lb if h not in layout.app),
                    *([layout.db] if layout.db and layout.db not in layout.app + layout.lb else [])]
        connections: dict[str, Connection] = {}
        locks: list[HostLock] = []
        try:
            for host in involved:  # every lock before anything changes
                try:
                    connection = rollout.connection(host) if host in plans else self.other_connection(host)
                    connections[host] = connection
                    lock_dir = plans[host].lock_dir if host in plans else str(
                        self.variables(host).get("provision_lock_dir") or "/var/lib/provision")
                    lock = HostLock(connection, operation=self.options.operation, run_id=rollout.run_id,
                                    lock_dir=lock_dir)
                    lock.acquire()
                    locks.append(lock)
                except ProvisionError as exc:
                    status = "lost" if isinstance(exc, ConnectError) else "failed"
                    rollout.reports[host] = HostReport(host, status=status, step="lock", error=str(exc))
                    self._untouched(plans, f"the lock of {host} could not be taken")
                    return
            for host in layout.app:
                recovered = recover_host(connections[host], rollout.local, plans[host], rollout.flow_options(),
                                         self.reporter)
                if recovered is not None and recovered.status != "recovered":
                    rollout.reports[host] = recovered
                    self._untouched(plans, f"{host} could not be recovered from a cut run")
                    return
                if recovered is not None:
                    self.reporter.note(host, "; ".join(recovered.notes), label="recover")
            if self.target is None:
                built = rollout.build_with(self.playbook)(list(layout.app))
                if any(h not in built for h in layout.app):
                    self._untouched(plans, "the release could not be built on every app host")
                    return
            else:
                chosen = self._targets(plans, connections)
                if chosen is None:
                    return
                built = chosen
            self._update(built, connections)
        finally:
            for lock in locks:
                with contextlib.suppress(Exception):  # the connection is gone: the lock stays, stale
                    lock.release()
            for connection in connections.values():
                connection.close()

    def _targets(self, plans: Mapping[str, Any], connections: Mapping[str, Connection]) -> dict[str, Any] | None:
        """Each app host's rollback plan; None (every host reported, nothing touched) unless all go back to one
        release: app hosts serving the same sites must run the same code."""
        assert self.target is not None
        chosen: dict[str, Any] = {}
        for host in self.layout.app:
            plan, error = self.target(plans[host], connections[host])
            if plan is None:
                self.rollout.reports[host] = HostReport(host, status="failed", step="rollback", error=error)
                self._untouched(plans, f"{host} has no release to go back to")
                return None
            chosen[host] = plan
        releases = sorted({plan.release for plan in chosen.values()})
        if len(releases) > 1:
            self._untouched(plans, "the app hosts would go back to different releases (" + ", ".join(
                f"{h}: {p.release}" for h, p in chosen.items()) + "); name one with --to RELEASE")
            return None
        return chosen

    def _untouched(self, plans: Mapping[str, Any], why: str) -> None:
        for host in self.layout.app:
            self.rollout.reports.setdefault(host, HostReport(host, status="failed", step="not started", error=why,
                                                             notes=["the live release was not touched"]))

    def _check(self, plans: Mapping[str, Any]) -> None:
        first = self.layout.app[0]
        connection = self.rollout.connection(first)
        try:
            flow = HostFlow(connection, self.rollout.local, plans[first], self.rollout.flow_options(), self.reporter)
            report = flow.update()
        finally:
            connection.close()
        migrating = [s for s, r in report.sites.items() if r.migrate]
        report.notes.append("multi-server: " + (
            f"one maintenance window for {', '.join(migrating)}: one backup on {self.layout.db or first}, one "
            f"migrate on {first}, then every app host ({', '.join(self.layout.app)}) switched"
            if migrating else f"rolling: {', '.join(self.layout.app)} one at a time, drained from "
                              f"{', '.join(self.layout.lb)}"))
        self.rollout.reports[first] = report
        for host in self.layout.app[1:]:
            self.rollout.reports[host] = HostReport(host, status="checked", from_release=plans[host].live_release,
                                                    to_release=plans[host].release)

    def _update(self, plans: Mapping[str, Any], connections: Mapping[str, Connection]) -> None:
        from .fleet_steps import AppHostSteps, DatabaseSteps, LbSteps

        rollout, layout = self.rollout, self.layout
        options = rollout.flow_options()
        flows = {h: HostFlow(connections[h], rollout.local, plans[h], options, self.reporter) for h in layout.app}
        first = flows[layout.app[0]]
        if all(f.plan.live_path == f.plan.release_path for f in flows.values()):
            for host, flow in flows.items():
                rollout.reports[host] = HostReport(host, status="unchanged", from_release=flow.plan.live_release,
                                                   to_release=flow.plan.release, ok=1,
                                                   notes=[f"{flow.plan.release} is already live"])
            return
        try:
            decisions = first.survey(target_exists=True)
        except StepFailed as failure:
            first.report.status, first.report.step, first.report.error = "failed", failure.step, failure.message
            rollout.reports[first.plan.host] = first.report
            self._untouched(plans, "the first app host's survey failed")
            return
        migrating = [d.site for d in decisions if d.migrate]
        if migrating and set(layout.app) != set(layout.all_app):
            raise OptionsError(f"{', '.join(migrating)} migrate: every app host ({', '.join(layout.all_app)}) must be "
                               "switched in the same window, but the selection holds only "
                               f"{', '.join(layout.app)}", hint="update the whole group (no --limit)")
        for flow in flows.values():
            if flow is not first:
                flow.decisions, flow.all_sites = list(first.decisions), list(first.all_sites)
                flow.report.sites = {s: SiteReport(s, r.migrate, r.reason) for s, r in first.report.sites.items()}
        db_connection = connections[layout.db] if layout.db else first.connection
        database = DatabaseSteps(db_connection, layout.db or first.plan.host, first, options.run_id, self.reporter)
        lb_vars = self.variables(layout.lb[0])
        upstreams = str(lb_vars.get("lb_upstream_file") or balancer.DEFAULT_UPSTREAMS_FILE)
        kept_down = lb_vars.get("lb_drained_hosts") or []
        lbs = LbSteps({h: connections[h] for h in layout.lb}, upstreams,
                      {h: self.addresses(h) for h in layout.app}, self.reporter,
                      keep_down=[str(h) for h in kept_down] if isinstance(kept_down, list) else [],
                      max_fails=int(lb_vars.get("lb_max_fails", 1)))
        steps = [AppHostSteps(flows[h]) for h in layout.app]
        sampler = self._start_sampler(connections[layout.lb[0]], first, lb_vars)
        current = first.plan.host
        try:
            for step in steps:  # the journals and the pre_update hooks: nothing has changed yet
                current = step.name
                step.begin(migrate_sites=migrating if step.flow is first else [])
                step.flow.hook("pre_update")
            update = FleetUpdate(steps, lbs, database, migrating=migrating, no_backup=self.options.no_backup,
                                 stop=rollout.stop)
            result = update.run()
        except StepFailed as failure:
            result = FleetResult(mode="window" if migrating else "rolling", step=failure.step, host=current,
                                 error=failure.message)
        seen = self._stop_sampler(connections[layout.lb[0]], sampler)
        self.result = result
        for step in steps:
            step.finish(result, seen)
            rollout.reports[step.flow.plan.host] = step.flow.report
        record = {**result.as_dict(), "hosts": list(layout.app), "lb": list(layout.lb), "db": layout.db,
                  "through_lb": {s: vars(d) for s, d in seen.items()}}
        if self.reporter.json is not None:
            self.reporter.json.extra({"event": "multi_update", **record})
        window = f", maintenance window {result.window_s:.1f}s" if result.window_s is not None else ""
        failed = sum(d.failed for d in seen.values())
        self.reporter.note(",".join(layout.app), f"{result.mode} update {result.status}{window}; "
                           f"{failed} failed request(s) through {layout.lb[0]}"
                           + (f"; {result.error.strip()[:300]}" if result.error else ""),
                           style="bold" if result.status == "updated" else "bold red", label="multi")
        for problem in result.problems:
            self.reporter.note(",".join(layout.app), problem, style="yellow", label="problem")

    def _start_sampler(self, lb: Connection, first: HostFlow, lb_vars: Mapping[str, Any]) -> str:
        port = int(lb_vars.get("lb_http_port") or lb_vars.get("nginx_http_port") or 80)
        work = f"{lb_vars.get('provision_lock_dir') or '/var/lib/provision'!s}/update"
        targets = [SiteTarget(site, port) for site in first.all_sites]
        with contextlib.suppress(ProvisionError):  # no sampler: the report then shows no count through the lb
            lb.run(downtime.start_script(work, self.rollout.run_id, targets), become_user="root", timeout=60)
        return work

    def _stop_sampler(self, lb: Connection, work: str) -> dict[str, downtime.SiteDowntime]:
        try:
            result = lb.run(downtime.stop_script(work, self.rollout.run_id), become_user="root", timeout=60)
        except ProvisionError:
            return {}
        return downtime.parse_downtime(result.stdout)

