"""A command that ends before it reads all of its stdin is that command's result, not a lost host.

sshd closes the channel once the command has exited; a client still sending the command's stdin
then finds the channel closed ("Socket is closed"). That used to be reported as a lost connection
(the host unreachable for the rest of the run) whenever the unread stdin was more than the SSH
window (~2 MB) or the sending thread was slower than the host: a file upload to a directory that
does not exist, or a batch of changes that stops at a failing part before its later files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.connection import SSHConnection
from provision.connspec import ConnectionSpec

from .conftest import SshServer

pytestmark = pytest.mark.integration

BIG = 3 * 1024 * 1024  # more than sshd's session window, so the client is still sending when it closes


def connection(sshd: SshServer) -> SSHConnection:
    spec = ConnectionSpec("node1", "127.0.0.1", sshd.port, "root", str(sshd.key), str(sshd.known_hosts))
    return SSHConnection(spec)


def test_a_script_that_exits_before_reading_its_stdin_reports_its_own_exit(sshd: SshServer) -> None:
    conn = connection(sshd)
    try:
        result = conn.run("echo before; echo why >&2; exit 3", stdin=b"x" * BIG)
        assert (result.rc, result.stdout, result.stderr) == (3, "before\n", "why\n")
        # The connection is still the same, usable one.
        again = conn.run("head -c 5 | wc -c", stdin=b"12345")
        assert (again.rc, again.stdout.strip()) == (0, "5")
    finally:
        conn.close()


def test_a_write_into_a_missing_directory_fails_as_a_task(sshd: SshServer, tmp_path: Path) -> None:
    from .test_change_batching import provision, recap

    big = tmp_path / "big.bin"
    big.write_bytes(b"y" * BIG)
    project = tmp_path / "project"
    project.mkdir()
    (project / "site.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - name: into a directory that is not there\n      copy: {{src: {big}, dest: {tmp_path}/none/big.bin}}\n"
        "    - name: after it\n      shell: echo reached\n")
    sshd.inventory(project / "inventory.yml")
    result = provision("playbook", "site.yml", "--json", cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert recap(result.stdout)["node1"]["unreachable"] == 0
    assert recap(result.stdout)["node1"]["failed"] == 1
