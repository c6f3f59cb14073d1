"""The human reporter: one line per finished task, a live view of who runs what, the recap."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from provision.events import HostUnreachable, PlayStarted, Recap, TaskDone, TaskStarted
from provision.output import render
from provision.output.progress import Heartbeat, ProgressTracker, live_view
from provision.output.redact import scrub_data, scrub_text
from provision.secrets import Redactor

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

# Longer host names still print whole; they just stop widening the column for everyone.
MAX_HOST_WIDTH = 24


class ConsoleReporter:
    """Writes events to a rich console for people; thread-safe.

    Args:
        console: where to write (stdout normally, stderr under ``--json``).
        verbosity: 0 shows ok/skipped compactly, 1 adds their messages, 2 adds registered data.
        redactor: scrubs every string before it is written.
        live: show the transient "who runs what" view; ``None`` means only on a terminal.
            It is never shown when the console is not a terminal.
        progress: task N of M and the overall bar in the live view, or, off a terminal, a plain
            line for a task still running after a minute (``--no-progress``: neither, no live view).
    """

    def __init__(
        self,
        console: Console,
        *,
        verbosity: int = 0,
        redactor: Redactor | None = None,
        live: bool | None = None,
        progress: bool = True,
    ) -> None:
        self.console = console
        self.verbosity = verbosity
        self.redactor = redactor if redactor is not None else Redactor()
        self._live_wanted = (progress and live is not False and console.is_terminal
                             and not console.is_dumb_terminal)
        self._heartbeat_wanted = progress and not console.is_terminal
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._host_width = 0
        self._play_check = False
        self._printed = False
        # Its snapshot is read by the live view's refresh thread without our lock (see _live_view).
        self._progress = ProgressTracker()
        self._heartbeat: Heartbeat | None = None

    def play_started(self, event: PlayStarted) -> None:
        hosts = tuple(self._text(host) for host in event.hosts)
        header = render.play_header(replace(event, name=self._text(event.name), hosts=hosts))
        with self._lock:
            self._host_width = min(max((len(host) for host in hosts), default=0), MAX_HOST_WIDTH)
            self._play_check = event.check
            self._progress.play(hosts, event.tasks)
            if self._printed:
                self._print(Text(""))
            self._print(header)

    def task_started(self, event: TaskStarted) -> None:
        with self._lock:
            self._progress.task_started(self._text(event.host), self._text(event.task), self._text(event.module))
            if self._live_wanted and self._live is None:
                self._start_live()
            elif self._heartbeat_wanted and self._heartbeat is None:
                self._heartbeat = Heartbeat(self._progress, self._print_locked, host_width=lambda: self._host_width)
                self._heartbeat.start()

    def task_done(self, event: TaskDone) -> None:
        event = self._scrubbed(event)
        with self._lock:
            line = render.task_line(event, self._host_width, mark_check=event.check and not self._play_check)
            blocks: list[RenderableType] = [line]
            # debug's message is its whole point: shown at every verbosity, as Ansible does.
            if event.msg and (event.status in ("failed", "changed") or self.verbosity >= 1
                              or (event.module == "debug" and event.status == "ok")):
                blocks.append(render.message_block(event.msg))
            if event.diff:
                blocks.append(render.diff_block(event.diff))
            if event.data and self.verbosity >= 2:
                blocks.append(render.data_block(scrub_data(self.redactor, event.data)))
            self._print(Group(*blocks) if len(blocks) > 1 else line)
            self._forget(event.host)

    def host_unreachable(self, event: HostUnreachable) -> None:
        event = HostUnreachable(host=self._text(event.host), msg=self._text(event.msg))
        with self._lock:
            self._print(render.unreachable_line(event, self._host_width))
            self._forget(event.host)

    def warning(self, message: str, *, host: str | None = None) -> None:
        shown_host = self._text(host) if host is not None else None
        with self._lock:
            self._print(render.warning_line(self._text(message), shown_host, self._host_width))

    def recap(self, event: Recap) -> None:
        hosts = {self._text(name): stats for name, stats in event.hosts.items()}
        with self._lock:
            self._stop_live()
            if self._heartbeat is not None:
                self._heartbeat.halt()
            self._print(Text(""))
            for block in render.recap_lines(replace(event, hosts=hosts)):
                self._print(block)

    def close(self) -> None:
        with self._lock:
            self._stop_live()
        if self._heartbeat is not None:  # outside the lock: its thread may be waiting for it
            self._heartbeat.stop()
            self._heartbeat = None

    def _text(self, value: object) -> str:
        return scrub_text(self.redactor, value)

    def _scrubbed(self, event: TaskDone) -> TaskDone:
        return replace(
            event,
            host=self._text(event.host),
            task=self._text(event.task),
            module=self._text(event.module),
            msg=self._text(event.msg),
            diff=self._text(event.diff) if event.diff is not None else None,
            item=self._text(event.item) if event.item is not None else None,
        )

    def _print(self, renderable: RenderableType) -> None:
        if isinstance(renderable, Text) and self._writes_plain_line(renderable.plain):
            # Rich would print exactly this; a converged run prints hundreds of such lines.
            self.console.file.write(renderable.plain + "\n")
        else:
            self.console.print(renderable, highlight=False, markup=False, emoji=False)
        self._printed = True

    def _writes_plain_line(self, plain: str) -> bool:
        """True when ``plain`` would come out of rich unchanged: no colours, no wrapping, nothing to expand."""
        console = self.console
        return (console.color_system is None and not console.record and not console.is_terminal
                and plain.isascii() and plain.isprintable() and len(plain) <= console.width)

    def _print_locked(self, renderable: RenderableType) -> None:
        with self._lock:
            self._print(renderable)

    def _forget(self, host: str) -> None:
        self._progress.host_done(host)

    def _start_live(self) -> None:
        from rich.live import Live

        # stdout/stderr stay unredirected: under --json, stdout carries the event stream.
        self._live = Live(
            console=self.console,
            get_renderable=self._live_view,
            transient=True,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _live_view(self) -> RenderableType:
        # Runs on Live's refresh thread while it holds Live's lock; taking self._lock here could
        # deadlock with a printing thread, so it reads the tracker's immutable snapshot instead.
        return live_view(self._progress, time.monotonic())
