"""Hosts in serial batches: the info run, the lock, recovery, the build, each host's flow.

The first batch is the canary: nothing else starts until it is healthy, and with the default
``--max-fail-percentage 0`` any failed host stops the rollout after its batch (later batches are
never touched). The lock of every host of a batch is taken before anything there changes and held
until its flow ends; a held or stale lock stops the rollout with the holder's record.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..connection import Connection, LocalConnection, SSHConnection
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE, ConnectError, ProvisionError
from ..events import HostUnreachable, SilentReporter, TaskDone
from ..runstate import HostState, RunOptions
from .flow import FlowOptions, HostFlow, HostReport
from .plan import HostPlan
from .recover import recover_host
from .report import UpdateReporter

PLAN_TASK = "update plan"


class PlanRecorder(SilentReporter):
    """Keeps each host's ``update plan`` (the debug task's value) from a run's events."""

    def __init__(self) -> None:
        self.plans: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}

    def host_unreachable(self, event: HostUnreachable) -> None:
        self.failed[event.host] = f"unreachable: {event.msg}"

    def task_done(self, event: TaskDone) -> None:
        if event.task == PLAN_TASK and event.status == "ok" and isinstance(event.data.get("update_plan"), dict):
            self.plans[event.host] = event.data["update_plan"]
        elif event.status == "failed" and not event.ignored:
            self.failed.setdefault(event.host, f"{event.task}: {event.msg}")


@dataclass
class RolloutOptions:
    operation: str = "update"
    serial: str = "1"
    max_fail_percentage: float = 0.0
    no_backup: bool = False
    check: bool = False
    app_refs: dict[str, str] = field(default_factory=dict)
    rollback_to: str | None = None
    sequential_flows: bool = False


class Rollout:
    """One ``provision update|rollback|deploy`` across hosts."""

    def __init__(self, args: argparse.Namespace, pattern: str, options: RolloutOptions, playbook: Path,
                 reporter: UpdateReporter) -> None:
        from ..cli import load_inventory, run_options

        self.args = args
        self.options = options
        self.playbook_path = playbook
        self.reporter = reporter
        self.inventory = load_inventory(args)
        base = run_options(args, pattern)
        extra = dict(base.extra_vars)
        if options.app_refs:
            extra["update_refs"] = {**dict(extra.get("update_refs") or {}), **options.app_refs}
        self.run_options: RunOptions = replace(base, extra_vars=extra)
        self.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        self.stop = threading.Event()     # first Ctrl-C: stop at the next step (the flows roll back)
        self.cancel = threading.Event()   # second Ctrl-C: cut every command now (the journal recovers)
        self.reports: dict[str, HostReport] = {}
        self.states: dict[str, HostState] = {}
        self.local = LocalConnection(cancel=self.cancel)
        self._runners: list[Any] = []

    # -- engine runs -------------------------------------------------------------------------------

    def engine_run(self, playbook_path: Path, *, limit: str | None, tags: frozenset[str] = frozenset(),
                   check: bool | None = None) -> tuple[PlanRecorder, int]:
        from ..output.multi import MultiReporter
        from ..playbook import load_playbook
        from ..runner import Runner

        recorder = PlanRecorder()
        options = replace(self.run_options, tags=tags or self.run_options.tags,
                          check=self.run_options.check if check is None else check)
        if limit is not None:
            options = replace(options, limit=limit)
        runner = Runner(self.inventory, options, MultiReporter(self.reporter.engine, recorder),
                        redactor=self.args.redactor)
        playbook = load_playbook(playbook_path)
        runner.prepare(playbook)
        self._runners.append(runner)
        try:
            outcome = runner.run(playbook)
        finally:
            self._runners.remove(runner)
        for name, state in outcome.hosts.items():
            self.states[name] = state
        return recorder, outcome.exit_code

    def interrupt(self) -> None:
        self.stop.set()
        for runner in list(self._runners):
            runner.interrupt()

    # -- connections -------------------------------------------------------------------------------

    def connection(self, host: str) -> Connection:
        state = self.states[host]
        spec = state.spec
        if spec.local:
            return LocalConnection(host, cancel=self.cancel)
        if spec.become_password is None and self.run_options.become_password is not None:
            spec = replace(spec, become_password=self.run_options.become_password)
        return SSHConnection(spec, known_hosts=self.run_options.known_hosts, ssh_config=self.run_options.ssh_config,
                             connect_timeout=self.run_options.connect_timeout, cancel=self.cancel)

    # -- the rollout -------------------------------------------------------------------------------

    def info(self) -> dict[str, HostPlan]:
        """Every host's plan from a read-only run of the playbook's ``always`` tasks."""
        recorder, _ = self.engine_run(self.playbook_path, limit=None, tags=frozenset({"plan"}))
        for host, reason in recorder.failed.items():
            self.reports[host] = HostReport(host, status="failed", step="plan", error=reason)
        return {host: HostPlan.from_debug(host, data) for host, data in recorder.plans.items()
                if host not in recorder.failed}

    def run(self, build: Callable[[list[str]], dict[str, HostPlan]] | None,
            target: Callable[[HostPlan, Connection], HostPlan | None] | None = None,
            plans: dict[str, HostPlan] | None = None) -> int:
        """Batches of hosts: lock, recover, build (or pick the target), flow. Returns the exit code."""
        from ..cli import interrupts
        from ..runner import serial_batches

        started = time.monotonic()
        try:
            with interrupts(self.interrupt):
                try:
                    plans = plans if plans is not None else self.info()
                    if self.reports or not plans:
                        if not plans and not self.reports:
                            self.reporter.note("-", "no host to update", style="yellow", label="warning")
                        return self.finish(started)
                    hosts = [h for h in self.states if h in plans] + [h for h in plans if h not in self.states]
                    offset = 0
                    batches = serial_batches(len(hosts), [_serial_spec(self.options.serial)])
                    for number, size in enumerate(batches, start=1):
                        batch = hosts[offset:offset + size]
                        offset += size
                        failed = self.batch(batch, plans, build, target)
                        if self.stop.is_set():
                            break
                        if failed and failed * 100.0 / len(batch) > self.options.max_fail_percentage:
                            if offset < len(hosts):
                                self.reporter.note(", ".join(batch), f"stopping the rollout after batch {number}/"
                                                   f"{len(batches)}: {', '.join(hosts[offset:])} untouched",
                                                   style="bold red", label="stop")
                            break
                except KeyboardInterrupt:
                    self.cancel.set()
                    raise
        except KeyboardInterrupt:
            self.finish(started, interrupted=True)
            return EXIT_INTERRUPTED
        return self.finish(started)

    def batch(self, batch: list[str], plans: dict[str, HostPlan],
              build: Callable[[list[str]], dict[str, HostPlan]] | None,
              target: Callable[[HostPlan, Connection], HostPlan | None] | None) -> int:
        from ..hostlock import HostLock

        locks: dict[str, Any] = {}
        connections: dict[str, Connection] = {}
        try:
            for host in batch:
                connection = self.connection(host)
                try:
                    lock = HostLock(connection, operation=self.options.operation, run_id=self.run_id,
                                    lock_dir=plans[host].lock_dir)
                    if not self.options.check:
                        lock.acquire()
                        locks[host] = lock
                except ProvisionError as exc:
                    status = "lost" if isinstance(exc, ConnectError) else "failed"
                    self.reports[host] = HostReport(host, status=status, step="lock", error=str(exc))
                    continue
                connections[host] = connection
            ready = [h for h in batch if h in connections]
            for host in list(ready):
                if self.options.check:
                    continue
                recovered = recover_host(connections[host], self.local, plans[host], self.flow_options(), self.reporter)
                if recovered is not None and recovered.status != "recovered":
                    self.reports[host] = recovered
                    ready.remove(host)
                elif recovered is not None:
                    self.reporter.note(host, "; ".join(recovered.notes), label="recover")
            # update --check builds nothing: the info run names the release, the survey fetches the refs
            if build is not None and ready and not (self.options.check and self.options.operation != "deploy"):
                built = build(ready)
                for host in list(ready):
                    if host not in built:
                        ready.remove(host)
                        self.reports.setdefault(host, HostReport(host, status="failed", step="build",
                                                                 error="the build of the release failed"))
                plans = {**plans, **built}
            if target is not None:
                for host in list(ready):
                    chosen = target(plans[host], connections[host])
                    if chosen is None:
                        ready.remove(host)
                    else:
                        plans[host] = chosen

            def one(host: str) -> None:
                try:
                    flow = HostFlow(connections[host], self.local, plans[host], self.flow_options(), self.reporter)
                except ProvisionError as exc:  # bad hooks in the inventory: nothing ran
                    self.reports[host] = HostReport(host, status="failed", step="hooks", error=str(exc))
                    return
                try:
                    self.reports[host] = flow.update()
                except ConnectError as exc:
                    flow.report.status = "lost"
                    flow.report.error = f"{exc}\nthe next update or deploy finishes or rolls back from the journal"
                    self.reports[host] = flow.report
                except Exception as exc:  # a bug must not take the other hosts' flows down with it
                    flow.report.status = "failed"
                    flow.report.error = (f"unexpected {type(exc).__name__}: {exc}\nthe next update or deploy "
                                         "finishes or rolls back what the journal shows half done")
                    self.reports[host] = flow.report

            if self.options.sequential_flows:
                for position, host in enumerate(ready):
                    one(host)
                    if self.reports[host].failed_run or self.stop.is_set():
                        rest = ready[position + 1:]
                        if rest:
                            self.reporter.note(host, f"stopping the rollout: {', '.join(rest)} untouched",
                                               style="bold red", label="stop")
                        for other in rest:
                            self.reports[other] = HostReport(other, status="failed", step="not started",
                                                             error=f"the update stopped after {host} failed")
                        break
            else:
                with ThreadPoolExecutor(max_workers=max(1, len(ready)), thread_name_prefix="update") as pool:
                    list(pool.map(one, ready))
        finally:
            for lock in locks.values():
                with contextlib.suppress(Exception):  # the connection is gone: the lock stays, stale
                    lock.release()
            for connection in connections.values():
                connection.close()
        return sum(1 for h in batch if h not in self.reports or self.reports[h].failed_run
                   or self.reports[h].status == "failed")

    def flow_options(self) -> FlowOptions:
        return FlowOptions(run_id=self.run_id, operation=self.options.operation, no_backup=self.options.no_backup,
                           check=self.options.check, stop=self.stop)

    def finish(self, started: float, *, interrupted: bool = False) -> int:
        self.reporter.recap(self.reports, time.monotonic() - started, interrupted=interrupted)
        self.reporter.close()
        if interrupted or self.stop.is_set():
            return EXIT_INTERRUPTED
        statuses = [r.status for r in self.reports.values()]
        if any(s in ("rolled_back", "failed") for s in statuses):
            return EXIT_FAILED
        if any(s == "lost" for s in statuses):
            return EXIT_UNREACHABLE
        return EXIT_OK

    def build_with(self, playbook: Path) -> Callable[[list[str]], dict[str, HostPlan]]:
        def build(hosts: list[str]) -> dict[str, HostPlan]:
            recorder, _ = self.engine_run(playbook, limit=":".join(hosts))
            for host, reason in recorder.failed.items():
                self.reports[host] = HostReport(host, status="failed", step="build", error=reason,
                                                notes=["the live release was not touched"])
            return {h: HostPlan.from_debug(h, d) for h, d in recorder.plans.items()
                    if h in hosts and h not in recorder.failed}
        return build


def _serial_spec(serial: str) -> int | str:
    return serial if serial.endswith("%") else int(serial)


def parse_app_refs(text: str | None) -> dict[str, str]:
    """``ledger@v2,frappe@version-15`` → ``{ledger: v2, frappe: version-15}``."""
    from ..errors import OptionsError

    refs: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        app, sep, ref = part.partition("@")
        if not sep or not app or not ref:
            raise OptionsError(f"--apps: {part!r} is not APP@REF", hint="e.g. --apps ledger@v2,frappe@version-15")
        refs[app] = ref
    return refs


def check_serial(serial: str) -> str:
    from ..errors import OptionsError

    text = serial.strip()
    body = text[:-1] if text.endswith("%") else text
    if not body.isdigit() or int(body) < 1 or (text.endswith("%") and int(body) > 100):
        raise OptionsError(f"--serial {serial!r}: give a number of hosts (1, 2, ...) or a percentage (25%)")
    return text


