"""file: the real module on this machine, in a temp dir (changed, then ok; check mode changes nothing)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from provision.tasks.file import File
from tests.unit._modrun import local_context, run_task, tree

pytestmark = pytest.mark.unit


def converge(raw: dict[str, Any], root: Path) -> Any:
    """Check mode first (nothing may change), then a real run (changed), then again (ok)."""
    before = tree(root)
    dry = run_task(File, raw, local_context(check=True, diff=True))
    assert dry.status == "changed", dry.msg
    assert tree(root) == before
    first = run_task(File, raw, local_context(diff=True))
    assert first.status == "changed", first.msg
    assert first.diff == dry.diff
    second = run_task(File, raw, local_context())
    assert second.status == "ok", second.msg
    return first


def test_directory_with_parents_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    result = converge({"path": str(target), "state": "directory", "mode": "0750"}, tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    assert "+state: directory" in (result.diff or "")


def test_recurse_mode(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_text("x")
    (tmp_path / "d" / "link").symlink_to("sub/f")
    (tmp_path / "d").chmod(0o700)
    converge({"path": str(tmp_path / "d"), "state": "directory", "mode": "0700", "recurse": True}, tmp_path)
    assert stat.S_IMODE((tmp_path / "d" / "sub" / "f").stat().st_mode) == 0o700


def test_touch_mode_then_absent(tmp_path: Path) -> None:
    target = tmp_path / "t"
    converge({"path": str(target), "state": "touch", "mode": "0600"}, tmp_path)
    assert target.read_bytes() == b"" and stat.S_IMODE(target.stat().st_mode) == 0o600
    converge({"path": str(target), "state": "absent"}, tmp_path)
    assert not target.exists()


def test_mode_of_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("keep")
    target.chmod(0o644)
    result = converge({"path": str(target), "mode": "0640"}, tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "keep"
    assert result.data["before"]["mode"] == "644" and result.data["after"]["mode"] == "640"


def test_link_created_then_retargeted(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    link = tmp_path / "current"
    converge({"path": str(link), "state": "link", "src": "r1"}, tmp_path)
    assert link.readlink() == Path("r1")
    converge({"path": str(link), "state": "link", "src": str(tmp_path / "r2")}, tmp_path)
    assert link.readlink() == tmp_path / "r2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "r1", "r2"]


def test_link_over_file_needs_force(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "target").write_text("y")
    raw = {"path": str(tmp_path / "f"), "state": "link", "src": "target"}
    refused = run_task(File, raw, local_context())
    assert refused.status == "failed" and "force: true" in refused.msg
    converge({**raw, "force": True}, tmp_path)
    assert (tmp_path / "f").is_symlink()


def test_missing_file_fails(tmp_path: Path) -> None:
    result = run_task(File, {"path": str(tmp_path / "nope"), "state": "file"}, local_context())
    assert result.status == "failed" and "does not exist" in result.msg
