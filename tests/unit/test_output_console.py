"""The console reporter: exact text of task lines, blocks, diffs, the recap, and the live view."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from provision.events import HostStats, HostUnreachable, PlayStarted, Recap, TaskDone, TaskStarted
from provision.output import ConsoleReporter
from provision.output.render import format_duration
from provision.secrets import Redactor, Secret

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Db-pass"


def plain_console(width: int = 80) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)


def output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def reporter(verbosity: int = 0, *, hosts: tuple[str, ...] = ("app1", "db2")) -> ConsoleReporter:
    """A reporter on a plain 80-column console, past its play header."""
    console = plain_console()
    reporter = ConsoleReporter(console, verbosity=verbosity, redactor=Redactor([SECRET]))
    reporter.play_started(PlayStarted("deploy", hosts))
    console.file = io.StringIO()
    return reporter


def done(status: str = "ok", **fields: object) -> TaskDone:
    values: dict[str, object] = {"host": "app1", "task": "Install packages", "module": "packages"}
    values.update(fields)
    return TaskDone(status=status, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (done("ok", duration=0.34), "ok       app1  Install packages (packages) 0.3s\n"),
        (done("ok", duration=0.05), "ok       app1  Install packages (packages)\n"),
        (done("changed", host="db2"), "changed  db2   Install packages (packages)\n"),
        (done("skipped", msg="when is false"), "skipped  app1  Install packages (packages)\n"),
        (done("failed", task="Clone", module="git", item="erpnext"), "failed   app1  Clone [erpnext] (git)\n"),
        (
            done("failed", task="Reload nginx", module="service", handler=True, ignored=True),
            "failed   app1  handler: Reload nginx (service) (ignored)\n",
        ),
        (done("changed", check=True), "changed  app1  Install packages (packages) (check)\n"),
    ],
)
def test_task_line_per_status(event: TaskDone, expected: str) -> None:
    reporter_ = reporter()
    reporter_.task_done(event)
    assert output(reporter_.console) == expected


def test_failed_task_shows_its_whole_message_indented() -> None:
    reporter_ = reporter()
    msg = "command: bench --site a.test migrate\nrc: 1\nstderr (last 2 lines):\n  File x\nKeyError: 'a'\n"
    reporter_.task_done(done("failed", task="Migrate", module="command", msg=msg, duration=75.2))
    assert output(reporter_.console) == (
        "failed   app1  Migrate (command) 1m15s\n"
        "         command: bench --site a.test migrate\n"
        "         rc: 1\n"
        "         stderr (last 2 lines):\n"
        "           File x\n"
        "         KeyError: 'a'\n"
    )


def test_long_message_lines_wrap_under_the_indent() -> None:
    reporter_ = reporter()
    reporter_.task_done(done("failed", msg="word " * 20))
    lines = output(reporter_.console).splitlines()
    assert lines[1:] == ["         " + "word " * 13 + "word", "         " + "word " * 5 + "word"]
    assert all(len(line) <= 80 for line in lines)


def test_changed_message_shown_ok_message_only_from_v() -> None:
    quiet, verbose = reporter(0), reporter(1)
    for reporter_ in (quiet, verbose):
        reporter_.task_done(done("changed", msg="installed nginx"))
        reporter_.task_done(done("ok", msg="all present"))
        reporter_.task_done(done("skipped", msg="when is false"))
    assert output(quiet.console) == (
        "changed  app1  Install packages (packages)\n"
        "         installed nginx\n"
        "ok       app1  Install packages (packages)\n"
        "skipped  app1  Install packages (packages)\n"
    )
    assert output(verbose.console) == (
        "changed  app1  Install packages (packages)\n"
        "         installed nginx\n"
        "ok       app1  Install packages (packages)\n"
        "         all present\n"
        "skipped  app1  Install packages (packages)\n"
        "         when is false\n"
    )


def test_registered_data_as_yaml_only_from_vv() -> None:
    data = {"rc": 0, "stdout": "line one\nline two", "changed": False, "paths": ["/a", "/b"]}
    verbose, very_verbose = reporter(1), reporter(2)
    for reporter_ in (verbose, very_verbose):
        reporter_.task_done(done("ok", data=data))
    assert output(verbose.console) == "ok       app1  Install packages (packages)\n"
    assert output(very_verbose.console) == (
        "ok       app1  Install packages (packages)\n"
        "         rc: 0\n"
        "         stdout: |-\n"
        "           line one\n"
        "           line two\n"
        "         changed: false\n"
        "         paths:\n"
        "         - /a\n"
        "         - /b\n"
    )


def test_diff_is_shown_under_the_line() -> None:
    reporter_ = reporter()
    diff = "--- /etc/nginx/x.conf\n+++ /etc/nginx/x.conf\n@@ -1,2 +1,2 @@\n server {\n-  listen 80;\n+  listen 8080;\n"
    reporter_.task_done(done("changed", task="Write config", module="template", diff=diff))
    assert output(reporter_.console) == (
        "changed  app1  Write config (template)\n"
        "         --- /etc/nginx/x.conf\n"
        "         +++ /etc/nginx/x.conf\n"
        "         @@ -1,2 +1,2 @@\n"
        "          server {\n"
        "         -  listen 80;\n"
        "         +  listen 8080;\n"
    )


def test_diff_lines_are_coloured() -> None:
    console = Console(file=io.StringIO(), width=80, color_system="standard", force_terminal=True)
    reporter_ = ConsoleReporter(console, live=False)
    reporter_.task_done(done("changed", diff="@@ -1 +1 @@\n-old\n+new\n"))
    text = output(console)
    assert "\x1b[36m@@ -1 +1 @@\x1b[0m" in text
    assert "\x1b[31m-old\x1b[0m" in text
    assert "\x1b[32m+new\x1b[0m" in text
    assert "\x1b[33mchanged" in text


def test_play_headers() -> None:
    console = plain_console()
    reporter_ = ConsoleReporter(console)
    reporter_.play_started(PlayStarted("deploy", ("app1", "app2")))
    reporter_.task_done(done("ok"))
    reporter_.play_started(PlayStarted("update", ("app1", "app2"), batch=2, batches=3, check=True))
    reporter_.play_started(PlayStarted("backup", tuple(f"h{n}" for n in range(8))))
    assert output(console) == (
        "PLAY deploy  app1, app2\n"
        "ok       app1  Install packages (packages)\n"
        "\n"
        "PLAY update  app1, app2  batch 2/3  CHECK MODE\n"
        "\n"
        "PLAY backup  h0, h1, h2, h3, h4 (+3 more)\n"
    )


def test_check_mode_play_does_not_mark_every_task() -> None:
    console = plain_console()
    reporter_ = ConsoleReporter(console)
    reporter_.play_started(PlayStarted("deploy", ("app1",), check=True))
    reporter_.task_done(done("changed", check=True))
    assert output(console).splitlines()[-1] == "changed  app1  Install packages (packages)"


def test_warning_and_unreachable_lines() -> None:
    reporter_ = reporter()
    reporter_.warning("inventory var 'x' is deprecated", host="app1")
    reporter_.warning("no hosts matched 'stage'")
    reporter_.host_unreachable(HostUnreachable("db2", "connection refused\nport 22 closed"))
    assert output(reporter_.console) == (
        "warning  app1  inventory var 'x' is deprecated\n"
        "warning  no hosts matched 'stage'\n"
        "unreachable  db2   connection refused\n"
        "         port 22 closed\n"
    )


RECAP_TABLE = (
    "\n"
    "RECAP\n"
    "host   ok   changed   failed   skipped   unreachable   rescued   ignored\n"
    "────────────────────────────────────────────────────────────────────────\n"
    "app1   12         3        0         2             0         1         0\n"
    "db2     0         0        0         0             1         0         0\n"
)


def test_recap_table() -> None:
    reporter_ = reporter()
    stats = {"app1": HostStats(ok=12, changed=3, skipped=2, rescued=1), "db2": HostStats(unreachable=1)}
    reporter_.recap(Recap(stats, duration=83.4))
    assert output(reporter_.console) == RECAP_TABLE + "wall time 1m23s\n"


def test_interrupted_recap() -> None:
    reporter_ = reporter()
    stats = {"app1": HostStats(ok=12, changed=3, skipped=2, rescued=1), "db2": HostStats(unreachable=1)}
    reporter_.recap(Recap(stats, duration=4.25, interrupted=True))
    assert output(reporter_.console) == (
        RECAP_TABLE + "wall time 4.2s\ninterrupted: the run was stopped before every task finished\n"
    )


def test_recap_zeros_dimmed_counts_coloured() -> None:
    console = Console(file=io.StringIO(), width=80, color_system="standard", force_terminal=True)
    reporter_ = ConsoleReporter(console, live=False)
    reporter_.recap(Recap({"app1": HostStats(ok=1, failed=2)}, duration=1.0))
    text = output(console)
    assert "\x1b[32m 1\x1b[0m" in text
    assert "\x1b[31m     2\x1b[0m" in text
    assert "\x1b[2m      0\x1b[0m" in text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, "0.0s"), (0.25, "0.2s"), (59.94, "59.9s"), (61, "1m01s"), (3599.6, "1h00m00s"), (3725, "1h02m05s")],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_secrets_never_reach_the_console() -> None:
    unknown = Secret("an-unregistered-secret")
    reporter_ = reporter(2)
    reporter_.play_started(PlayStarted(f"play {SECRET}", ("app1",)))
    reporter_.task_started(TaskStarted("app1", f"set {SECRET}", "command"))
    reporter_.task_done(
        done(
            "failed",
            task=f"Set password {SECRET}",
            item=SECRET,
            msg=f"command: mysql -p{SECRET}\nrc: 1\nstderr: denied for {SECRET}",
            diff=f"@@ -1 +1 @@\n-password = old\n+password = {SECRET}\n",
            data={"password": unknown, SECRET: [SECRET, {"nested": f"x{SECRET}x"}], "tuple": (unknown,)},
        )
    )
    reporter_.warning(f"password {SECRET} is weak", host="app1")
    reporter_.host_unreachable(HostUnreachable("app1", f"auth failed with {SECRET}"))
    reporter_.recap(Recap({"app1": HostStats(failed=1)}, duration=1.0))
    text = output(reporter_.console)
    assert SECRET not in text
    assert str(unknown) not in text
    assert text.count("********") >= 10


def test_no_live_view_when_not_a_terminal() -> None:
    console = plain_console()
    reporter_ = ConsoleReporter(console, live=True)
    reporter_.task_started(TaskStarted("app1", "Install packages", "packages"))
    assert reporter_._live is None
    assert output(console) == ""


def test_live_view_on_a_terminal_is_transient() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=True)
    reporter_ = ConsoleReporter(console)
    reporter_.task_started(TaskStarted("app1", "Install packages", "packages"))
    assert reporter_._live is not None
    rendered = Console(file=io.StringIO(), width=80, color_system=None)
    rendered.print(reporter_._live_view())
    assert output(rendered).startswith("running  app1  Install packages (packages) 0.")
    reporter_.task_done(done("ok"))
    reporter_.recap(Recap({"app1": HostStats(ok=1)}, duration=1.0))
    assert reporter_._live is None
    text = output(console)
    assert "ok       app1  Install packages (packages)" in text
    assert text.rstrip().endswith("wall time 1.0s")
    reporter_.close()


def test_lines_from_many_threads_stay_whole() -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=True)
    reporter_ = ConsoleReporter(console)
    hosts = [f"host{n:02d}" for n in range(16)]
    reporter_.play_started(PlayStarted("deploy", tuple(hosts)))

    def run(host: str) -> None:
        for number in range(20):
            reporter_.task_started(TaskStarted(host, f"task {number}", "command"))
            reporter_.task_done(
                done("changed", host=host, task=f"task {number}", module="command", msg=f"{host} {number}")
            )

    threads = [threading.Thread(target=run, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    reporter_.close()
    text = output(console)
    for host in hosts:
        for number in range(20):
            assert f"changed  {host}  task {number} (command)\n         {host} {number}\n" in text


@pytest.mark.parametrize(
    "event",
    [
        done("ok"),
        done("skipped", item="a" * 30),
        done("ok", task="x" * 90),
        done("ok", task="Größe prüfen 表"),
        done("ok", task="tab\there"),
        done("changed", msg="done", diff="--- a\n+++ b\n"),
    ],
)
def test_plain_lines_written_directly_match_rich(event: TaskDone) -> None:
    """Short plain lines skip rich's rendering; the text must be what rich prints."""
    direct = reporter()
    through_rich = reporter()
    through_rich.console.record = True  # recording keeps every line on rich's path
    direct.task_done(event)
    through_rich.task_done(event)
    assert output(direct.console) == output(through_rich.console)


def test_a_short_plain_line_takes_the_direct_path() -> None:
    """So the comparison above really compares the direct path with rich's."""
    direct = reporter()
    assert direct._writes_plain_line("ok       app1  Install packages (packages)")
    assert not direct._writes_plain_line("x" * 81)
    assert not direct._writes_plain_line("Größe")
    direct.console.record = True
    assert not direct._writes_plain_line("ok")
