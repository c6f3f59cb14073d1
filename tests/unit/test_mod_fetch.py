"""fetch: Ansible's local layout, checksum compare (no transfer when equal), verification after transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.tasks.fetch import Fetch, local_dest
from provision.tasks.shell import sha256_hex
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

DATA = b"backup bytes\x00\xff\n"


def stat_of(data: bytes) -> str:
    return f"file\t600\troot\troot\t{len(data)}\t{sha256_hex(data)}\t-"


@pytest.mark.parametrize(
    ("src", "dest", "flat", "want"),
    [
        ("/var/backups/db.sql.gz", "/b", False, "/b/web1/var/backups/db.sql.gz"),
        ("relative/x", "/b", False, "/b/web1/relative/x"),
        ("/var/x.gz", "/b/y.gz", True, "/b/y.gz"),
        ("/var/x.gz", "/b/", True, "/b/x.gz"),
    ],
)
def test_local_dest(src: str, dest: str, flat: bool, want: str) -> None:
    assert local_dest(src, dest, "web1", flat=flat) == Path(want)


def test_flat_into_existing_directory(tmp_path: Path) -> None:
    assert local_dest("/var/x.gz", str(tmp_path), "web1", flat=True) == tmp_path / "x.gz"


def run(tmp_path: Path, probe: str, *, check: bool = False, remote: bytes = DATA, **raw: Any) -> tuple[Any, Path]:
    ctx = FakeContext(check=check)
    ctx.fetched["/var/db.gz"] = remote
    args = args_of(Fetch, {"src": "/var/db.gz", "dest": str(tmp_path / "out"), **raw})
    Fetch().check_args(args)
    assert Fetch().probe(args) == "pv_stat /var/db.gz sum"
    return execute_module(Fetch(), args, ctx, probe), tmp_path / "out" / "web1" / "var" / "db.gz"


def test_transfer_then_converged(tmp_path: Path) -> None:
    first, dest = run(tmp_path, stat_of(DATA))
    assert first.status == "changed" and dest.read_bytes() == DATA
    assert first.data["checksum"] == sha256_hex(DATA)
    second, _ = run(tmp_path, stat_of(DATA), remote=b"must not be fetched")
    assert second.status == "ok" and dest.read_bytes() == DATA
    assert [p.name for p in dest.parent.iterdir()] == ["db.gz"]  # no temp file left


def test_checksum_mismatch_fails_and_keeps_old(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "web1" / "var" / "db.gz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    result, _ = run(tmp_path, stat_of(DATA), remote=b"changed while reading")
    assert result.status == "failed" and "checksum mismatch" in result.msg
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["db.gz"]


def test_check_mode_transfers_nothing(tmp_path: Path) -> None:
    result, dest = run(tmp_path, stat_of(DATA), check=True)
    assert result.status == "changed" and not dest.exists()


@pytest.mark.parametrize(
    ("probe", "raw", "status", "msg"),
    [
        ("absent", {}, "failed", "does not exist on web1"),
        ("absent", {"fail_on_missing": False}, "ok", "nothing fetched"),
        ("directory\t755\troot\troot\t4096\t-\t-", {}, "failed", "is a directory"),
        ("file\t600\troot\troot\t10\t\t-", {}, "failed", "cannot read"),
    ],
)
def test_remote_problems(tmp_path: Path, probe: str, raw: dict[str, Any], status: str, msg: str) -> None:
    result, _ = run(tmp_path, probe, **raw)
    assert result.status == status and msg in result.msg
