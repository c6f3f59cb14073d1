"""fetch: the real module on this machine, from one temp dir to another."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.tasks.fetch import Fetch
from tests.unit._modrun import local_context, run_task, sessions, tree

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("data", [b"CREATE TABLE x;\n" * 1000, b""], ids=["text", "empty"])
def test_fetch_then_ok_without_transfer(tmp_path: Path, data: bytes) -> None:
    remote = tmp_path / "host" / "backups" / "db.sql"
    remote.parent.mkdir(parents=True)
    remote.write_bytes(data)
    dest = tmp_path / "control"
    raw = {"src": str(remote), "dest": str(dest)}
    dry = run_task(Fetch, raw, local_context(check=True))
    assert dry.status == "changed" and not dest.exists()
    first = run_task(Fetch, raw, local_context())
    assert first.status == "changed", first.msg
    local = dest / "local" / str(remote).lstrip("/")
    assert local.read_bytes() == data and first.data["dest"] == str(local)
    ctx = local_context()
    assert run_task(Fetch, raw, ctx).status == "ok"
    assert sessions(ctx) == 1  # the probe only


def test_flat(tmp_path: Path) -> None:
    remote = tmp_path / "a.txt"
    remote.write_text("x\n")
    out = tmp_path / "out"
    result = run_task(Fetch, {"src": str(remote), "dest": f"{out}/", "flat": True}, local_context())
    assert result.status == "changed" and (out / "a.txt").read_text() == "x\n"
    before = tree(out)
    assert run_task(Fetch, {"src": str(remote), "dest": f"{out}/", "flat": True}, local_context()).status == "ok"
    assert tree(out) == before


def test_binary_file(tmp_path: Path) -> None:
    remote = tmp_path / "db.sql.gz"
    remote.write_bytes(bytes(range(256)) * 4)
    result = run_task(Fetch, {"src": str(remote), "dest": str(tmp_path / "out")}, local_context())
    assert result.status == "changed", result.msg
