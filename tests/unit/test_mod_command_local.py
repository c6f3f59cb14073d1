"""command and shell: the real modules on this machine, in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.tasks.command import Command, Shell
from tests.unit._modrun import local_context, run_task, sessions, tree

pytestmark = pytest.mark.unit


def test_command_words_are_not_shell(tmp_path: Path) -> None:
    result = run_task(Command, {"argv": ["echo", "$HOME", "*", "a;b"]}, local_context())
    assert result.status == "changed" and result.data["stdout"] == "$HOME * a;b"


def test_shell_features_env_stdin_chdir(tmp_path: Path) -> None:
    raw = {"cmd": 'read x; echo "$x-$GREETING" | tr a-z A-Z > out.txt; ls', "chdir": str(tmp_path),
           "env": {"GREETING": "hi there"}, "stdin": "abc"}  # fmt: skip
    result = run_task(Shell, raw, local_context())
    assert result.status == "changed", result.msg
    assert (tmp_path / "out.txt").read_text() == "ABC-HI THERE\n"
    assert result.data["stdout_lines"] == ["out.txt"]


def test_creates_guard_is_idempotent_and_costs_only_the_probe(tmp_path: Path) -> None:
    raw = {"cmd": f"touch {tmp_path}/done", "creates": "done", "chdir": str(tmp_path)}
    before = tree(tmp_path)
    dry = run_task(Command, raw, local_context(check=True))
    assert dry.status == "skipped" and tree(tmp_path) == before
    assert run_task(Command, raw, local_context()).status == "changed"
    ctx = local_context()
    again = run_task(Command, raw, ctx)
    assert again.status == "ok" and again.msg == f"skipped, since {tmp_path}/done exists"
    assert sessions(ctx) == 1
    assert run_task(Command, raw, local_context(check=True)).status == "ok"


def test_removes_guard(tmp_path: Path) -> None:
    raw = {"cmd": f"rm {tmp_path}/lock", "removes": f"{tmp_path}/lock"}
    assert run_task(Command, raw, local_context()).status == "ok"
    (tmp_path / "lock").write_text("")
    assert run_task(Command, raw, local_context()).status == "changed"
    assert not (tmp_path / "lock").exists()


def test_failure_and_exit_in_shell_text(tmp_path: Path) -> None:
    result = run_task(Shell, "echo partial; echo boom >&2; exit 7", local_context())
    assert result.status == "failed" and result.data["rc"] == 7
    assert result.msg == "'echo partial; echo boom >&2; exit 7' failed (exit 7)\nboom"
    assert result.data["stdout"] == "partial"


def test_missing_chdir_fails(tmp_path: Path) -> None:
    result = run_task(Command, {"cmd": "true", "chdir": str(tmp_path / "nope")}, local_context())
    assert result.status == "failed" and "exit 1" in result.msg


def test_timeout(tmp_path: Path) -> None:
    result = run_task(Command, {"cmd": "sleep 3", "timeout": 1}, local_context())
    assert result.status == "failed" and "timed out after 1s" in result.msg


def test_glob_guard(tmp_path: Path) -> None:
    raw = {"cmd": "false", "creates": f"{tmp_path}/build */*.done"}
    assert run_task(Command, raw, local_context(check=True)).status == "skipped"
    (tmp_path / "build 1").mkdir()
    (tmp_path / "build 1" / "x.done").write_text("")
    result = run_task(Command, raw, local_context())
    assert result.status == "ok" and result.msg.startswith("skipped, since")
