"""What people and ``--json`` consumers see of an update.

The engine's own reporters do the work: each update step is a ``task`` event (module ``update``,
the site as its ``item``) and shows in the live view with its running time while it runs. The
update adds JSON events of its own — ``migrate_decision``, ``backup``, ``release``, ``downtime``,
``recovery``, ``no_backup`` and one ``update_recap`` (per host: status, releases, failed step,
error, and per site: migrate and why, seconds in maintenance, seconds not answering, backup) —
and prints a per-site table after the usual recap. The recaps of the build runs are folded into
the one recap at the end.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..events import HostStats, HostUnreachable, PlayStarted, Recap, Reporter, TaskDone, TaskStarted
from ..output.console import ConsoleReporter
from ..output.jsonstream import JsonReporter
from ..output.render import format_duration
from ..secrets import Redactor
from .flow import HostReport


class _Json(JsonReporter):
    def extra(self, record: Mapping[str, Any]) -> None:
        self._emit(dict(record))


class _Console(ConsoleReporter):
    def line(self, host: str, text: str, style: str = "cyan", label: str = "update") -> None:
        with self._lock:
            width = max(self._host_width, len(host))
            shown = Text()
            shown.append(label.ljust(7), style=style)
            shown.append("  ")
            shown.append(self._text(host).ljust(width), style="bold")
            shown.append("  ")
            shown.append(self._text(text))
            self._print(shown)

    def table(self, table: Table) -> None:
        with self._lock:
            self._print(table)


class EngineReporter:
    """What the build runs report through: everything passes, except their recaps (folded in ours)."""

    def __init__(self, owner: UpdateReporter) -> None:
        self.owner = owner

    def play_started(self, event: PlayStarted) -> None:
        for reporter in self.owner.reporters():
            reporter.play_started(event)

    def task_started(self, event: TaskStarted) -> None:
        for reporter in self.owner.reporters():
            reporter.task_started(event)

    def task_done(self, event: TaskDone) -> None:
        self.owner.count(event)
        for reporter in self.owner.reporters():
            reporter.task_done(event)

    def host_unreachable(self, event: HostUnreachable) -> None:
        self.owner.stats(event.host).unreachable = 1
        for reporter in self.owner.reporters():
            reporter.host_unreachable(event)

    def warning(self, message: str, *, host: str | None = None) -> None:
        for reporter in self.owner.reporters():
            reporter.warning(message, host=host)

    def recap(self, event: Recap) -> None:
        """Folded into the update's recap."""

    def close(self) -> None:
        """The update closes the reporters at its end."""


class UpdateReporter:
    """The update's reporter: the flow's steps and events, the engine's build runs, one recap."""

    def __init__(self, *, json_output: bool, verbosity: int, redactor: Redactor,
                 console: Console | None = None) -> None:
        self.console = _Console(console or Console(stderr=json_output), verbosity=verbosity, redactor=redactor)
        self.json = _Json(sys.stdout, redactor=redactor) if json_output else None
        self.engine: Reporter = EngineReporter(self)
        self._stats: dict[str, HostStats] = {}
        self._lock = threading.Lock()

    def reporters(self) -> list[Reporter]:
        return [r for r in (self.json, self.console) if r is not None]

    def stats(self, host: str) -> HostStats:
        with self._lock:
            return self._stats.setdefault(host, HostStats())

    def count(self, event: TaskDone) -> None:
        stats = self.stats(event.host)
        with self._lock:
            stats.count(event)

    # -- the flow's Events -------------------------------------------------------------------------

    def step_started(self, host: str, step: str, site: str | None) -> None:
        self.console.task_started(TaskStarted(host, f"{site}: {step}" if site else step, "update"))

    def step_done(self, host: str, step: str, site: str | None, status: str, msg: str, duration: float) -> None:
        event = TaskDone(host, step, "update", status, msg, duration=duration, item=site)  # type: ignore[arg-type]
        self.count(event)
        for reporter in self.reporters():
            reporter.task_done(event)

    def event(self, kind: str, record: Mapping[str, Any]) -> None:
        if self.json is not None:
            self.json.extra({"event": kind, **record})
        host = str(record.get("host", ""))
        if kind == "migrate_decision":
            verb = "migrate" if record.get("migrate") else "no migrate"
            self.console.line(host, f"{record.get('site')}: {verb} — {record.get('reason')}")
        elif kind == "recovery":
            self.console.line(host, f"run {record.get('run_id')} was cut: {record.get('action')} "
                                    f"({record.get('reason')})", style="yellow", label="recover")
        elif kind == "no_backup":
            self.console.line(host, f"--no-backup: no backup of {', '.join(record.get('sites', []))}",
                              style="yellow", label="warning")

    def note(self, host: str, text: str, *, style: str = "cyan", label: str = "update") -> None:
        self.console.line(host, text, style=style, label=label)

    # -- the end -----------------------------------------------------------------------------------

    def recap(self, reports: Mapping[str, HostReport], duration: float, *, interrupted: bool = False) -> None:
        hosts = {name: self.stats(name) for name in reports} | {name: s for name, s in self._stats.items()}
        if self.json is not None:
            self.json.recap(Recap(hosts, duration, interrupted))
            self.json.extra({"event": "update_recap", "hosts": {n: r.as_dict() for n, r in reports.items()},
                             "duration": round(duration, 3)})
        self.console.recap(Recap(hosts, duration, interrupted))
        if reports:
            self.console.table(site_table(reports))
        for report in reports.values():
            if report.failed_run:
                where = f"{report.step}" + (f" on {report.site}" if report.site else "")
                backups = ", ".join(f"{s.site}: {s.backup}" for s in report.sites.values() if s.backup) or "none"
                self.console.line(report.host, f"{report.status} at {where}: {report.error.strip()[:600]}"
                                               f"\nbackups: {backups}", style="bold red", label="FAILED")
            for note in report.notes:
                if note:
                    self.console.line(report.host, note, style="dim", label="note")

    def close(self) -> None:
        for reporter in self.reporters():
            reporter.close()


def site_table(reports: Mapping[str, HostReport]) -> Table:
    """Per host and site: result, migrate, seconds in maintenance and not answering, the backup."""
    table = Table(title="sites", title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
    for column in ("host", "site", "result", "migrate", "maintenance", "not answering", "backup"):
        table.add_column(column, no_wrap=column not in ("backup",))
    for host, report in reports.items():
        release = f"{report.from_release} -> {report.to_release}" if report.to_release else ""
        if not report.sites:
            table.add_row(host, "-", report.status, "", "", "", release)
        for site in report.sites.values():
            down = "?" if site.down_s is None else format_duration(site.down_s)
            table.add_row(host, site.site, site.state if report.status != "checked" else "would update",
                          "yes" if site.migrate else "no", format_duration(site.maintenance_s), down,
                          site.backup or "")
    return table
