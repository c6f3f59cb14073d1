"""A real OpenSSH server on loopback, started by the test session, for everything that crosses SSH.

The server runs as root on 127.0.0.1 and a free port, with its own host key, its own
authorized_keys and a known_hosts pinning its key. A throwaway sudo user ``pvtest<N>`` (created here,
removed at the end; named per test process, so parallel workers and sessions never remove each
other's) covers become from a non-root login.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_USER = f"pvtest{os.getpid() % 100000}"


@dataclass
class SshServer:
    """A running test sshd and the files to reach it."""

    port: int
    key: Path
    known_hosts: Path
    host_key: Path
    log: Path
    workdir: Path

    def inventory(self, path: Path, *, hosts: int = 1, user: str = "root", extra: str = "") -> Path:
        """Write an inventory with ``hosts`` names all pointing at this server."""
        lines = ["all:", "  hosts:"]
        for index in range(1, hosts + 1):
            lines.append(f"    node{index}:")
        lines += [
            "  vars:",
            "    ssh_host: 127.0.0.1",
            f"    ssh_port: {self.port}",
            f"    ssh_user: {user}",
            f"    ssh_private_key_file: {self.key}",
            f"    ssh_known_hosts_file: {self.known_hosts}",
        ]
        text = "\n".join(lines) + "\n" + extra
        path.write_text(text)
        return path

    def sessions(self) -> int:
        """Sessions (channels) sshd has started so far (LogLevel VERBOSE)."""
        return self.log.read_text(errors="replace").count("Starting session:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {port} within {timeout}s")


def _ensure_test_user() -> bool:
    """Create the sudo user pvtest; returns True if this session created it."""
    created = subprocess.run(["id", TEST_USER], capture_output=True).returncode != 0
    if created:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
        # A locked account ("!") is refused by sshd even for key logins; "*" means "no password".
        subprocess.run(["usermod", "-p", "*", TEST_USER], check=True)
    Path(f"/etc/sudoers.d/{TEST_USER}").write_text(f"{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(f"/etc/sudoers.d/{TEST_USER}", 0o440)
    return created


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip("needs root and openssh-server (sshd)")
    work = tmp_path_factory.mktemp("sshd")
    # sshd reads authorized_keys as the logging-in user: pytest's 0700 temp root would hide them.
    keys = Path(tempfile.mkdtemp(prefix="provision-sshd-keys-"))
    keys.chmod(0o755)
    host_key = work / "host_ed25519"
    client_key = work / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
    pubkey = client_key.with_suffix(".pub").read_text()
    (keys / "root").write_text(pubkey)
    (keys / TEST_USER).write_text(pubkey)
    for key in keys.iterdir():
        key.chmod(0o644)
    # The sessions' HOME: an empty folder, so a bash the tests start (executable: /bin/bash, run by
    # sshd) reads no rc file of this machine's users. Root's here runs `pyenv rehash`, which waits
    # 60 s on a lock left by a shell killed during it.
    home = Path(tempfile.mkdtemp(prefix="provision-sshd-home-"))
    home.chmod(0o1777)
    created_user = _ensure_test_user()
    port = free_port()
    log = work / "sshd.log"
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {work}/sshd.pid\n"
        f"AuthorizedKeysFile {keys}/%u\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\nUseDNS no\n"
        "MaxSessions 100\nMaxStartups 100:30:200\nSubsystem sftp internal-sftp\n"
        f"SetEnv HOME={home}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log.open("wb"))
    try:
        _wait_port(port, proc)
        known = work / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text().split(' ')[0]} "
                         f"{host_key.with_suffix('.pub').read_text().split(' ')[1]}\n")
        yield SshServer(port, client_key, known, host_key, log, work)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(keys, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        Path(f"/etc/sudoers.d/{TEST_USER}").unlink(missing_ok=True)
        if created_user:
            subprocess.run(["userdel", "--remove", TEST_USER], capture_output=True)
