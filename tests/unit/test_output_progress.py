"""Progress: task N of M per host and an overall bar on a terminal, plain lines off one, --no-progress."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from provision.cli import build_parser
from provision.events import PlayStarted, TaskDone, TaskStarted
from provision.output import ConsoleReporter
from provision.output.progress import Heartbeat, ProgressTracker, Running, bar_line, live_view, running_line

pytestmark = pytest.mark.unit


def text_of(renderable: object, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_running_line_and_bar_golden() -> None:
    row = Running("app1", "Build assets", "bench", started=100.0, number=12, total=48)
    assert text_of(running_line(row, 4, now=165.0)) == "running  app1  12/48  Build assets (bench) 1m05s\n"
    assert text_of(bar_line(42, 96, 130.0)) == "progress [#########-----------]  42/96 tasks  2m10s\n"
    assert text_of(running_line(Running("a", "t", "m", 0.0, 3, 0), 1, now=0.5)) == "running  a  t (m) 0.5s\n"


def test_tracker_counts_tasks_per_host_and_caps_at_the_total() -> None:
    tracker = ProgressTracker()
    tracker.play(("app1", "db2"), 2)
    tracker.task_started("app1", "one", "command")
    tracker.host_done("app1")
    tracker.task_started("app1", "two", "command")
    tracker.task_started("db2", "one", "command")
    rows, done, total = tracker.snapshot
    assert [(r.host, r.number) for r in rows] == [("app1", 2), ("db2", 1)] and (done, total) == (1, 4)
    tracker.host_done("app1")
    tracker.task_started("app1", "handler", "service")  # handlers may go past M
    tracker.host_done("app1")
    assert tracker.snapshot[1:] == (2, 4)
    lines = text_of(live_view(tracker, tracker.play_started + 1.0), width=100).splitlines()
    assert lines[0].startswith("running  db2  1/2  one (command) ")
    assert lines[-1] == "progress [##########----------]  2/4 tasks  1.0s"


def test_terminal_live_view_shows_n_of_m_and_the_bar() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=True)
    reporter = ConsoleReporter(console)
    reporter.play_started(PlayStarted("deploy", ("app1",), tasks=3))
    reporter.task_started(TaskStarted("app1", "Install packages", "packages"))
    view = text_of(reporter._live_view()).splitlines()
    assert view[0].startswith("running  app1  1/3  Install packages (packages) 0.")
    assert view[1].startswith("progress [--------------------]  0/3 tasks")
    reporter.close()


def test_plain_lines_off_a_terminal() -> None:
    tracker = ProgressTracker()
    tracker.play(("app1",), 5)
    tracker.task_started("app1", "Build assets", "bench")
    lines: list[str] = []
    heartbeat = Heartbeat(tracker, lambda text: lines.append(text.plain), interval=60.0, host_width=lambda: 4)
    started = tracker.snapshot[0][0].started
    heartbeat.beat(started + 30.0)
    heartbeat.beat(started + 61.0)
    heartbeat.beat(started + 62.0)
    heartbeat.beat(started + 125.0)
    assert lines == ["running  app1  1/5  Build assets (bench) 1m01s", "running  app1  1/5  Build assets (bench) 2m05s"]


def test_reporter_off_a_terminal_never_redraws() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    reporter = ConsoleReporter(console)
    reporter.play_started(PlayStarted("deploy", ("app1",), tasks=1))
    reporter.task_started(TaskStarted("app1", "t", "command"))
    reporter.task_done(TaskDone("app1", "t", "command", "ok"))
    reporter.close()
    assert isinstance(console.file, io.StringIO)
    assert console.file.getvalue() == "PLAY deploy  app1\nok       app1  t (command)\n"
    assert reporter._live is None


def test_no_progress_turns_the_live_view_off() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=True)
    reporter = ConsoleReporter(console, progress=False)
    reporter.task_started(TaskStarted("app1", "t", "command"))
    assert reporter._live is None and reporter._heartbeat is None
    args = build_parser().parse_args(["deploy", "prod", "--no-progress"])
    assert args.no_progress is True
