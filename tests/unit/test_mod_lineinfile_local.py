"""lineinfile: the real module on this machine, in a temp dir."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from provision.tasks.lineinfile import LineInFile
from tests.unit._modrun import local_context, run_task, sessions, tree

pytestmark = pytest.mark.unit


def converge(raw: dict[str, Any], root: Path) -> Any:
    before = tree(root)
    dry = run_task(LineInFile, raw, local_context(check=True, diff=True))
    assert dry.status == "changed", dry.msg
    assert tree(root) == before
    first = run_task(LineInFile, raw, local_context(diff=True))
    assert first.status == "changed", first.msg
    assert first.diff == dry.diff
    ctx = local_context()
    second = run_task(LineInFile, raw, ctx)
    assert second.status == "ok", second.msg
    assert sessions(ctx) == 1
    return first


def test_replace_keeps_the_rest_byte_for_byte(tmp_path: Path) -> None:
    conf = tmp_path / "my.cnf"
    conf.write_text("[mysqld]\n# bind-address = 0.0.0.0\nbind-address = 127.0.0.1\n\n\nport = 3306")
    conf.chmod(0o640)
    result = converge({"path": str(conf), "regexp": "^bind-address", "line": "bind-address = 10.0.0.1"}, tmp_path)
    assert conf.read_text() == "[mysqld]\n# bind-address = 0.0.0.0\nbind-address = 10.0.0.1\n\n\nport = 3306"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert "-bind-address = 127.0.0.1\n+bind-address = 10.0.0.1\n" in result.diff


def test_create_with_parents_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "app" / "env"
    converge({"path": str(path), "line": "A=1", "create": True, "mode": "0600"}, tmp_path)
    assert path.read_text() == "A=1\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_absent_with_backup(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n10.0.0.9 old\n")
    result = converge({"path": str(path), "regexp": r"\bold$", "state": "absent", "backup": True}, tmp_path)
    assert path.read_text() == "127.0.0.1 localhost\n"
    assert result.data["found"] == 1
    assert Path(result.data["backup_file"]).read_text() == "127.0.0.1 localhost\n10.0.0.9 old\n"


def test_insertafter_in_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "sshd_config"
    path.write_text("Port 22\nUsePAM yes")
    converge({"path": str(path), "line": "PasswordAuthentication no", "insertafter": "^Port"}, tmp_path)
    assert path.read_text() == "Port 22\nPasswordAuthentication no\nUsePAM yes"


def test_validate_failure_keeps_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a\n")
    result = run_task(LineInFile, {"path": str(path), "line": "b", "validate": "false %s"}, local_context())
    assert result.status == "failed" and path.read_text() == "a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
