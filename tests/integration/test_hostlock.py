"""The host lock over a real sshd: one holder at a time, a killed run leaves it stale, unlock breaks it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from provision.connection import SSHConnection
from provision.hostlock import HostLock, LockHeldError, StaleLockError, break_lock, lock_status
from provision.inventory import connection_spec

from .conftest import SshServer

pytestmark = pytest.mark.integration


def _connection(sshd: SshServer) -> SSHConnection:
    return _connection_to(sshd.port, str(sshd.key), str(sshd.known_hosts))


def _provision(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_one_holder_at_a_time_and_released_on_exit(sshd: SshServer, tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    first, second = _connection(sshd), _connection(sshd)
    try:
        with HostLock(first, operation="update", run_id="run-1", lock_dir=lock_dir) as held:
            assert held.record is not None
            owner = json.loads((tmp_path / "locks" / "lock" / "owner.json").read_text())
            assert owner["run_id"] == "run-1" and owner["operation"] == "update" and owner["pid"] == os.getpid()
            with pytest.raises(LockHeldError) as refused:
                HostLock(second, operation="backup", run_id="run-2", lock_dir=lock_dir).acquire()
            assert refused.value.record is not None and refused.value.record.run_id == "run-1"
            assert "update run run-1" in str(refused.value)
            assert lock_status(second, lock_dir=lock_dir).state == "held"
        assert not (tmp_path / "locks" / "lock").exists()
        assert lock_status(second, lock_dir=lock_dir).state == "free"
        with HostLock(second, operation="backup", run_id="run-2", lock_dir=lock_dir):
            pass
    finally:
        first.close()
        second.close()


def test_released_when_the_run_fails(sshd: SshServer, tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    connection = _connection(sshd)
    try:
        with pytest.raises(RuntimeError), HostLock(connection, operation="update", run_id="r", lock_dir=lock_dir):
            raise RuntimeError("migrate failed")
        assert lock_status(connection, lock_dir=lock_dir).state == "free"
    finally:
        connection.close()


def test_a_killed_run_leaves_a_stale_lock_that_only_unlock_breaks(sshd: SshServer, tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    holder = tmp_path / "holder.py"
    holder.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.integration.test_hostlock import _connection_to
        from provision.hostlock import HostLock
        lock = HostLock(_connection_to({sshd.port}, {str(sshd.key)!r}, {str(sshd.known_hosts)!r}),
                        operation="update", run_id="killed-run", lock_dir={str(lock_dir)!r})
        lock.acquire()
        print("held", flush=True)
        time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, str(holder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    connection = _connection(sshd)
    try:
        deadline = time.monotonic() + 15  # sshd notices the dead client and ends the keeper
        while lock_status(connection, lock_dir=str(lock_dir)).state != "stale":
            assert time.monotonic() < deadline, "the lock never became stale"
            time.sleep(0.2)
        with pytest.raises(StaleLockError) as stale:
            HostLock(connection, operation="update", run_id="next", lock_dir=str(lock_dir)).acquire()
        assert stale.value.record is not None and stale.value.record.run_id == "killed-run"
        assert "provision unlock node1 --reason" in str(stale.value)

        project = tmp_path / "project"
        project.mkdir()
        sshd.inventory(project / "inventory.yml", extra=f"    provision_lock_dir: {lock_dir}\n")
        shown = _provision("locks", "all", cwd=project)
        assert shown.returncode == 0 and "node1: stale: update run killed-run" in shown.stdout, shown.stderr
        result = _provision("unlock", "node1", "--reason", "the run was killed by the test", cwd=project)
        assert result.returncode == 0, result.stderr
        assert "unlocked (the lock was left by update run killed-run" in result.stdout
        assert "the run was killed by the test" in (lock_dir / "unlock.log").read_text()
        assert lock_status(connection, lock_dir=str(lock_dir)).state == "free"
        with HostLock(connection, operation="update", run_id="next", lock_dir=str(lock_dir)):
            pass
    finally:
        connection.close()


def test_unlock_refuses_a_live_lock_and_a_free_host(sshd: SshServer, tmp_path: Path) -> None:
    lock_dir = str(tmp_path / "locks")
    connection, other = _connection(sshd), _connection(sshd)
    try:
        with pytest.raises(Exception, match="not locked"):
            break_lock(other, reason="x", lock_dir=lock_dir)
        with HostLock(connection, operation="backup", run_id="live", lock_dir=lock_dir):
            with pytest.raises(LockHeldError):
                break_lock(other, reason="x", lock_dir=lock_dir)
            assert lock_status(other, lock_dir=lock_dir).state == "held"
    finally:
        connection.close()
        other.close()


def _connection_to(port: int, key: str, known_hosts: str) -> SSHConnection:
    """A root connection to the test sshd (also used by the holder process of the kill test)."""
    spec = connection_spec("node1", {"ssh_host": "127.0.0.1", "ssh_port": port, "ssh_user": "root",
                                     "ssh_private_key_file": key})
    return SSHConnection(spec, known_hosts=[Path(known_hosts)])
