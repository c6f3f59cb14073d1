"""supervisor: the real module against a private supervisord whose config, socket and logs live in a temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.tasks.supervisor import Supervisor
from tests.unit._modrun import local_context, run_task

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(shutil.which("supervisord") is None, reason="supervisor is not installed"),
]

PROGRAMS = """[program:sleeper]
command=sleep 600
startsecs=0
[program:web]
command=sleep 600
numprocs=2
process_name=%(program_name)s-%(process_num)d
startsecs=0
[group:bench-web]
programs=web
"""


@pytest.fixture
def supervisord() -> Iterator[Path]:
    """A supervisord config in a short temp dir (unix socket paths are limited); the daemon is stopped after."""
    root = Path(tempfile.mkdtemp(prefix="pv-sv-", dir="/tmp"))
    (root / "conf.d").mkdir()
    (root / "conf.d" / "bench.conf").write_text(PROGRAMS)
    config = root / "supervisord.conf"
    config.write_text(
        f"[unix_http_server]\nfile={root}/sock\n"
        f"[supervisord]\nlogfile={root}/supervisord.log\npidfile={root}/supervisord.pid\nchildlogdir={root}\n"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[supervisorctl]\nserverurl=unix://{root}/sock\n"
        f"[include]\nfiles = {root}/conf.d/*.conf\n"
    )
    try:
        yield config
    finally:
        pidfile = root / "supervisord.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def task(config: Path, **raw: object) -> dict[str, object]:
    return {"config": str(config), "sudo": False, **raw}


def test_lifecycle(supervisord: Path) -> None:
    # supervisord is not running yet: the task starts it (supervisord -c CONFIG), then the program.
    first = run_task(Supervisor, task(supervisord, name="sleeper"), local_context())
    assert first.status == "changed", first.msg
    assert first.data["started_supervisord"] is True
    assert run_task(Supervisor, task(supervisord, name="sleeper"), local_context()).status == "ok"

    group = run_task(Supervisor, task(supervisord, name="bench-web:"), local_context())
    assert group.status == "ok" and set(group.data["processes"]) == {"bench-web:web-0", "bench-web:web-1"}

    stopped = run_task(Supervisor, task(supervisord, name="bench-web:", state="stopped"), local_context())
    assert stopped.status == "changed", stopped.msg
    assert set(stopped.data["processes"].values()) == {"STOPPED"}
    assert run_task(Supervisor, task(supervisord, name="bench-web:", state="stopped"), local_context()).status == "ok"

    check = run_task(Supervisor, task(supervisord, name="bench-web:", state="started"), local_context(check=True))
    assert check.status == "changed"
    again = run_task(Supervisor, task(supervisord, name="bench-web:", state="stopped"), local_context())
    assert again.status == "ok", "check mode must not have started the group"

    restarted = run_task(Supervisor, task(supervisord, name="sleeper", state="restarted"), local_context())
    assert restarted.status == "changed"


def test_new_config_is_added_once(supervisord: Path) -> None:
    assert run_task(Supervisor, task(supervisord, name="sleeper"), local_context()).status == "changed"
    (supervisord.parent / "conf.d" / "extra.conf").write_text("[program:extra]\ncommand=sleep 600\nstartsecs=0\n")
    added = run_task(Supervisor, task(supervisord, name="extra", state="present"), local_context())
    assert added.status == "changed", added.msg
    assert run_task(Supervisor, task(supervisord, name="extra", state="present"), local_context()).status == "ok"
    unchanged = run_task(Supervisor, task(supervisord, name="extra", state="present", reread=True), local_context())
    assert unchanged.status == "ok", unchanged.msg

    (supervisord.parent / "conf.d" / "extra.conf").write_text("[program:extra]\ncommand=sleep 601\nstartsecs=0\n")
    updated = run_task(Supervisor, task(supervisord, name="extra", state="present", reread=True), local_context())
    assert updated.status == "changed", updated.msg

    removed = run_task(Supervisor, task(supervisord, name="extra", state="absent"), local_context())
    assert removed.status == "changed" and removed.data["processes"] == {}
    assert run_task(Supervisor, task(supervisord, name="extra", state="absent"), local_context()).status == "ok"
