"""Pulling a file in pieces over a real (local) shell: resume, a flipped byte pulled again, disk full."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from provision.backup.remote import DiskFull, pull_file, push_file
from provision.connection import LocalConnection
from provision.errors import BackupError

pytestmark = pytest.mark.unit


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "host" / "20261201_023000-site-database.sql.gz"
    path.parent.mkdir()
    path.write_bytes(os.urandom(300_000))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_partly_pulled_file_resumes_from_its_last_byte(tmp_path: Path, remote: tuple[Path, str]) -> None:
    source, digest = remote
    local = tmp_path / "local.gz"
    local.write_bytes(source.read_bytes()[:123_457])
    connection = LocalConnection()
    again = pull_file(connection, str(source), local, size=source.stat().st_size, sha256=digest, become_user=None,
                      chunk=64_000)
    assert again == 0
    assert local.read_bytes() == source.read_bytes()
    assert connection.sessions == 3  # 176,543 bytes left in pieces of 64,000: nothing sent twice
    assert pull_file(connection, str(source), local, size=source.stat().st_size, sha256=digest,
                     become_user=None) == 0
    assert connection.sessions == 3  # already complete and matching: not sent again


def test_a_flipped_byte_is_detected_and_the_file_pulled_again(tmp_path: Path, remote: tuple[Path, str]) -> None:
    source, digest = remote
    local = tmp_path / "local.gz"
    damaged = bytearray(source.read_bytes()[:200_000])
    damaged[1234] ^= 0x40
    local.write_bytes(bytes(damaged))
    again = pull_file(LocalConnection(), str(source), local, size=source.stat().st_size, sha256=digest,
                      become_user=None)
    assert again == 1
    assert hashlib.sha256(local.read_bytes()).hexdigest() == digest


def test_a_file_that_never_matches_fails_after_bounded_attempts(tmp_path: Path, remote: tuple[Path, str]) -> None:
    source, _ = remote
    with pytest.raises(BackupError, match="still differs from the host's sha256 after 3 pulls"):
        pull_file(LocalConnection(), str(source), tmp_path / "x", size=source.stat().st_size, sha256="0" * 64,
                  become_user=None)
    with pytest.raises(BackupError, match="cannot read"):
        pull_file(LocalConnection(), str(source) + ".gone", tmp_path / "y", size=10, sha256="0" * 64,
                  become_user=None)


def test_disk_full_is_a_clear_error(remote: tuple[Path, str]) -> None:
    source, digest = remote
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with pytest.raises(DiskFull, match="no space left on the control host in /dev"):
        pull_file(LocalConnection(), str(source), Path("/dev/full"), size=source.stat().st_size, sha256=digest,
                  become_user=None)


def test_push_checks_the_upload_on_the_host(tmp_path: Path, remote: tuple[Path, str]) -> None:
    source, digest = remote
    target = tmp_path / "up.gz"
    push_file(LocalConnection(), source, str(target), become_user=None, chunk=100_000)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_the_host_program_is_one_module_and_answers_in_json(tmp_path: Path) -> None:
    from provision.backup.remote import call_helper, helper_program

    program = helper_program().decode()
    compile(program, "host-helper", "exec")
    assert "from .remote_helper" not in program and program.count("from __future__") == 1
    site = tmp_path / "sites" / "erp.local"
    site.mkdir(parents=True)
    (site / "site_config.json").write_text("{}")
    (tmp_path / "sites" / "assets").mkdir()
    answer = call_helper(LocalConnection(), {"action": "sites", "sites_dir": str(tmp_path / "sites")},
                         become_user=None)
    assert answer == {"ok": True, "sites": ["erp.local"]}
    assert call_helper(LocalConnection(), {"action": "nope"}, become_user=None) == {
        "ok": False, "error": "unknown action 'nope'"}
