"""The NDJSON reporter, the fan-out reporter, and the CLI's reporter factory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from typing import Any

import pytest

from provision.events import HostStats, HostUnreachable, PlayStarted, Recap, TaskDone, TaskStarted
from provision.output import JsonReporter, MultiReporter, build_reporter
from provision.secrets import Redactor, Secret

pytestmark = pytest.mark.unit

SECRET = 'pä"ss\\wörd-42'


class CountingStream(io.StringIO):
    """Remembers how many lines had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed_at: list[int] = []

    def flush(self) -> None:
        self.flushed_at.append(self.getvalue().count("\n"))
        super().flush()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def run_events(reporter: Any) -> None:
    reporter.play_started(PlayStarted("deploy", ("app1", "db2"), batch=1, batches=2, check=True))
    reporter.task_started(TaskStarted("app1", "Write config", "template"))
    reporter.task_done(
        TaskDone(
            "app1",
            "Write config",
            "template",
            "changed",
            msg="updated",
            diff="@@ -1 +1 @@\n-a\n+b\n",
            duration=0.12345,
            item="site1",
            data={"path": "/etc/x"},
        )
    )
    reporter.task_done(TaskDone("app1", "Reload", "service", "failed", msg="boom", ignored=True, handler=True))
    reporter.host_unreachable(HostUnreachable("db2", "connection refused"))
    reporter.warning("deprecated", host="app1")
    reporter.recap(Recap({"app1": HostStats(ok=1, changed=1, ignored=1), "db2": HostStats(unreachable=1)}, 3.21, True))
    reporter.close()


def test_every_line_is_one_event() -> None:
    stream = CountingStream()
    run_events(JsonReporter(stream))
    play, changed, failed, unreachable, warning, recap = records(stream)
    assert play == {
        "event": "play_start",
        "play": "deploy",
        "hosts": ["app1", "db2"],
        "batch": 1,
        "batches": 2,
        "check": True,
        "tasks": 0,
    }
    assert changed == {
        "event": "task",
        "host": "app1",
        "task": "Write config",
        "module": "template",
        "status": "changed",
        "changed": True,
        "diff": "@@ -1 +1 @@\n-a\n+b\n",
        "msg": "updated",
        "duration": 0.123,
        "item": "site1",
        "label": "site1",
        "ignored": False,
        "handler": False,
    }
    assert (failed["status"], failed["changed"], failed["ignored"], failed["handler"]) == ("failed", False, True, True)
    assert (failed["diff"], failed["item"]) == (None, None)
    assert unreachable == {"event": "host_unreachable", "host": "db2", "msg": "connection refused"}
    assert warning == {"event": "warning", "host": "app1", "msg": "deprecated"}
    assert recap == {
        "event": "recap",
        "hosts": {
            "app1": {"ok": 1, "changed": 1, "failed": 0, "skipped": 0, "unreachable": 0, "rescued": 0, "ignored": 1},
            "db2": {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 1, "rescued": 0, "ignored": 0},
        },
        "duration": 3.21,
        "interrupted": True,
    }


def test_each_line_is_flushed_as_written() -> None:
    stream = CountingStream()
    run_events(JsonReporter(stream))
    assert stream.flushed_at[:6] == [1, 2, 3, 4, 5, 6]


def test_secrets_never_reach_the_stream() -> None:
    unknown = Secret("never-registered")
    stream = io.StringIO()
    reporter = JsonReporter(stream, redactor=Redactor([SECRET]))
    reporter.play_started(PlayStarted(f"deploy {SECRET}", ("app1",)))
    reporter.task_done(
        TaskDone(
            "app1",
            f"set {SECRET}",
            "command",
            "failed",
            msg=f"mysql -p{SECRET} failed",
            diff=f"-x\n+password={SECRET}\n",
            item=unknown,
            data={"password": SECRET},
        )
    )
    reporter.host_unreachable(HostUnreachable("app1", f"auth with {SECRET}"))
    reporter.warning(f"weak password {SECRET}")
    reporter.recap(Recap({SECRET: HostStats()}, 1.0))
    text = stream.getvalue()
    escaped = json.dumps(SECRET)[1:-1]
    for form in (SECRET, escaped, "ss\\\\w", "never-registered"):
        assert form not in text
    events = records(stream)
    assert events[1]["msg"] == "mysql -p******** failed"
    assert events[1]["item"] == "********"
    assert events[4]["hosts"] == {"********": {k: 0 for k in events[4]["hosts"]["********"]}}


def test_lines_from_many_threads_parse() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream)

    def run(host: str) -> None:
        for number in range(50):
            reporter.task_done(TaskDone(host, f"task {number}", "command", "ok", msg="x" * 200))

    threads = [threading.Thread(target=run, args=(f"h{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(records(stream)) == 400


class Recording:
    """A reporter that remembers the calls it got."""

    def __init__(self, fail_close: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_close = fail_close

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append(name)
            if name == "close" and self.fail_close:
                raise OSError("broken pipe")

        return record


def test_multi_reporter_fans_out_in_order() -> None:
    first, second = Recording(), Recording()
    run_events(MultiReporter(first, second))
    expected = ["play_started", "task_started", "task_done", "task_done", "host_unreachable", "warning"]
    assert first.calls == second.calls == [*expected, "recap", "close"]


def test_multi_reporter_closes_all_then_raises() -> None:
    failing, fine = Recording(fail_close=True), Recording()
    with pytest.raises(OSError, match="broken pipe"):
        MultiReporter(failing, fine).close()
    assert fine.calls == ["close"]


def test_build_reporter_json_on_stdout_people_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = build_reporter(json_output=True, verbosity=0, redactor=Redactor())
    reporter.play_started(PlayStarted("deploy", ("app1",)))
    reporter.close()
    captured = capsys.readouterr()
    assert json.loads(captured.out)["event"] == "play_start"
    assert "PLAY deploy" in captured.err


def test_build_reporter_console_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = build_reporter(json_output=False, verbosity=0, redactor=Redactor())
    reporter.play_started(PlayStarted("deploy", ("app1",)))
    reporter.close()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("PLAY deploy  app1\n", "")


def test_importing_the_output_package_does_not_import_rich() -> None:
    code = "import sys, provision.output; assert not any(m.startswith('rich') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
