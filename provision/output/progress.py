"""Progress a person can follow on long runs (a first deploy takes minutes).

On a terminal, the console's transient live view shows, per running host, task N of M, the
current task and its elapsed time, and under them an overall bar::

    running  app1  12/48  Build assets (bench) 1m05s
    running  db2   30/48  Create site erp.example.com (site) 4.2s
    progress [###########---------]  42/96 tasks  2m10s

Without a terminal (CI logs, pipes) nothing is redrawn: a task still running after
``HEARTBEAT_SECONDS`` gets one plain line, and another each further interval::

    running  app1  12/48  Build assets (bench) 1m00s

``--no-progress`` turns both off. ``M`` is the play's task count for the host (tags applied);
handlers may take N past it, so N is shown capped at M.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group
from rich.text import Text

from provision.output.render import LABEL_WIDTH, format_duration

BAR_WIDTH = 20
HEARTBEAT_SECONDS = 60.0
# The live view lists at most this many running hosts, then "+N more".
MAX_ROWS = 12


@dataclass(frozen=True)
class Running:
    """One host's current task."""

    host: str
    task: str
    module: str
    started: float
    number: int  # 1-based index of the task in the play for this host
    total: int  # the play's task count (0: unknown)


class ProgressTracker:
    """Counts tasks per host in the current play; the snapshot is safe to read from another thread."""

    def __init__(self) -> None:
        self.total_per_host = 0
        self.hosts: tuple[str, ...] = ()
        self.play_started = time.monotonic()
        self._started: dict[str, int] = {}
        self._running: dict[str, Running] = {}
        self.snapshot: tuple[tuple[Running, ...], int, int] = ((), 0, 0)  # running, done, total

    def play(self, hosts: tuple[str, ...], tasks: int) -> None:
        self.hosts, self.total_per_host = hosts, tasks
        self.play_started = time.monotonic()
        self._started, self._running = {}, {}
        self._update()

    def task_started(self, host: str, task: str, module: str) -> None:
        number = self._started.get(host, 0) + 1
        self._started[host] = number
        self._running[host] = Running(host, task, module, time.monotonic(), number, self.total_per_host)
        self._update()

    def host_done(self, host: str) -> None:
        """The host's current task finished (or the host dropped out)."""
        if self._running.pop(host, None) is not None:
            self._update()

    def _update(self) -> None:
        total = self.total_per_host * len(self.hosts)
        done = sum(min(count, self.total_per_host) for count in self._started.values()) - len(self._running)
        self.snapshot = (tuple(self._running.values()), max(done, 0), total)


def running_line(row: Running, host_width: int, now: float) -> Text:
    """``running  app1  12/48  Build assets (bench) 1m05s``; without a count when M is unknown."""
    text = Text.assemble(("running".ljust(LABEL_WIDTH), "blue"), "  ", (row.host.ljust(host_width), "bold"), "  ")
    if row.total:
        width = len(str(row.total))
        text.append(f"{min(row.number, row.total):>{width}}/{row.total}  ", style="cyan")
    text.append(row.task)
    text.append(f" ({row.module})", style="dim")
    text.append(f" {format_duration(now - row.started)}", style="dim")
    return text


def bar_line(done: int, total: int, elapsed: float) -> Text:
    """``progress [#####---------------]  12/48 tasks  1m02s``."""
    filled = round(BAR_WIDTH * done / total) if total else 0
    return Text.assemble(("progress".ljust(LABEL_WIDTH), "blue"), " [", ("#" * filled, "green"),
                         ("-" * (BAR_WIDTH - filled), "dim"), "]  ", f"{done}/{total} tasks",
                         (f"  {format_duration(elapsed)}", "dim"))


def live_view(tracker: ProgressTracker, now: float) -> Group:
    """The terminal view: one line per running host, then the overall bar (when the count is known)."""
    rows, done, total = tracker.snapshot
    width = max((len(row.host) for row in rows), default=0)
    lines: list[Text] = [running_line(row, width, now) for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(Text(f"+{len(rows) - MAX_ROWS} more hosts running", style="dim"))
    if total:
        lines.append(bar_line(done, total, now - tracker.play_started))
    return Group(*lines)


class Heartbeat:
    """Off a terminal: a plain line for each task still running after every ``interval`` seconds."""

    def __init__(self, tracker: ProgressTracker, emit: Callable[[Text], None], *,
                 interval: float = HEARTBEAT_SECONDS, host_width: Callable[[], int] = lambda: 0) -> None:
        self.tracker = tracker
        self.emit = emit
        self.interval = interval
        self.host_width = host_width
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._told: dict[tuple[str, float], int] = {}  # (host, task start) -> intervals reported

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
            self._thread.start()

    def halt(self) -> None:
        """Stop emitting (safe under the reporter's lock: does not wait for the thread)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def beat(self, now: float) -> None:
        """Emit the lines due at ``now`` (called by the thread; tests call it directly)."""
        rows, _, _ = self.tracker.snapshot
        for row in rows:
            due = int((now - row.started) // self.interval)
            key = (row.host, row.started)
            if due > self._told.get(key, 0):
                self._told[key] = due
                self.emit(running_line(row, self.host_width(), now))

    def _loop(self) -> None:
        tick = min(1.0, self.interval / 4)
        while not self._stop.wait(tick):
            self.beat(time.monotonic())
