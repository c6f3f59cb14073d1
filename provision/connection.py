"""One connection per host for the whole run: SSH (Fabric/Paramiko) or local.

Every remote script goes over stdin, never on the command line, so nothing a task sends (file
contents, passwords) is visible in ``ps`` on the host: how a script is framed and what its output
carries is ``connframing``; the fixed command line that reads it (with become through sudo) is
``connbootstrap``; a script left running on its own channel is ``remoteprocess``; opening the SSH
session (host keys pinned: unknown or changed keys are refused) is ``sshsession``. The names
other modules use are all importable from here.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .connbootstrap import BOOTSTRAP, READY, SUDO_PROMPT, answer_sudo, become_prefix, remote_command
from .connfailure import connection_lost
from .connframing import CHUNK, END_GROUP, END_MARK, PID_MARK, RC_CUT, frame, split_pid_mark
from .contract import CommandResult
from .errors import ConnectError
from .remoteprocess import ChannelProcess, PopenProcess, RemoteProcess
from .sshsession import fingerprint, open_ssh

if TYPE_CHECKING:
    from .inventory import ConnectionSpec

# Defined in connframing, connbootstrap, remoteprocess and sshsession; other modules import them from here.
__all__ = ["BOOTSTRAP", "END_MARK", "PID_MARK", "RC_CUT", "READY", "SUDO_PROMPT", "Connection", "LocalConnection",
           "RemoteProcess", "SSHConnection", "become_prefix", "fingerprint", "frame", "remote_command",
           "split_pid_mark", "start_remote", "tcp_reachable"]


class Connection(Protocol):
    """What the runner needs of a host connection."""

    name: str

    def open(self) -> None: ...

    def run(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        become_user: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult: ...

    def fetch(self, remote_path: str, local_path: Path, *, become_user: str | None = None) -> None: ...

    def close(self) -> None: ...


class _BytesConnection:
    """``run`` and ``fetch`` for a connection that implements ``run_bytes``."""

    name: str

    def run_bytes(
        self, script: str, *, stdin: bytes | None = None, become_user: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def run(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        become_user: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``script`` with ``sh`` on the host, as ``become_user`` via sudo if given."""
        rc, out, err = self.run_bytes(script, stdin=stdin, become_user=become_user, timeout=timeout)
        return CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def fetch(self, remote_path: str, local_path: Path, *, become_user: str | None = None) -> None:
        """Copy a file to the control host, raw bytes (streamed through ``cat``, so become works)."""
        rc, out, err = self.run_bytes(f"cat -- {shlex.quote(remote_path)}", become_user=become_user)
        if rc != 0:
            raise ConnectError(f"host {self.name}: cannot read {remote_path}: {err.decode(errors='replace')}")
        local_path.write_bytes(out)


class SSHConnection(_BytesConnection):
    """A host reached over SSH; one transport, a fresh channel per script."""

    def __init__(
        self,
        spec: ConnectionSpec,
        *,
        known_hosts: Iterable[Path] = (),
        ssh_config: Path | None = None,
        connect_timeout: float = 10.0,
        cancel: threading.Event | None = None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self._known_hosts = [p for p in known_hosts if p.exists()]
        if spec.known_hosts_file:
            self._known_hosts.append(Path(os.path.expanduser(spec.known_hosts_file)))
        self._ssh_config = ssh_config
        self._connect_timeout = connect_timeout
        self._cancel = cancel or threading.Event()
        self._conn: Any = None
        self._lock = threading.Lock()
        self.sessions = 0  # channels opened, for tests and benchmarks
        self.login_user: str | None = spec.user

    # -- connecting ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and authenticate, or raise ConnectError/AuthError/HostKeyError."""
        with self._lock:
            if self._conn is not None:
                return
            self._conn = self._connect()

    def _connect(self) -> Any:
        conn = open_ssh(self.spec, known_hosts=self._known_hosts, ssh_config=self._ssh_config,
                        connect_timeout=self._connect_timeout)
        self.login_user = conn.user
        return conn

    # -- running ------------------------------------------------------------------------------------

    def run_bytes(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        become_user: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Like ``run``, with stdout and stderr as raw bytes (file transfers).

        A timeout or an interrupt cuts the channel and ends the command's process group on the
        host; a connection that dies meanwhile raises ``ConnectError`` (the host is unreachable).
        """
        return self._run_channel(script, stdin=stdin, become_user=become_user, timeout=timeout,
                                 cancel=self._cancel)

    def _run_channel(self, script: str, *, stdin: bytes | None, become_user: str | None,
                     timeout: float | None, cancel: threading.Event, end_cut: bool = True) -> tuple[int, bytes, bytes]:
        import paramiko

        self.open()
        password = self.spec.become_password if become_user not in (None, self.login_user) else None
        command = remote_command(become_user, self.login_user, password=password is not None)
        try:
            channel = self._conn.transport.open_session(timeout=self._connect_timeout)
        except Exception as exc:
            raise connection_lost(self.name, exc) from None
        self.sessions += 1
        out: list[bytes] = []
        err: list[bytes] = []
        cut = False
        step = "starting the command"
        try:
            with channel:
                channel.exec_command(command)
                if password is not None:
                    step = "answering sudo"
                    self._answer_sudo(channel, password, out, err, cancel)
                step = "sending the script"
                sent = self._send(channel, frame(script, stdin), cancel)
                step = "reading the output"
                if sent is None:
                    channel.close()
                    err.append(b"\n[provision: interrupted]")
                    rc, cut = RC_CUT, True
                else:
                    if sent:
                        channel.shutdown_write()
                    rc, cut = self._drain(channel, out, err, timeout, cancel)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            state = "the transport still up" if self._alive() else "the transport closed"
            raise connection_lost(self.name, exc, why=f"while {step}, {state}") from None
        if not cut and rc == RC_CUT and not self._alive():  # no exit status: the transport died
            raise connection_lost(self.name)
        pid, stderr = split_pid_mark(b"".join(err))
        if cut and end_cut and pid is not None:
            self._end_group(pid, become_user)
        return rc, b"".join(out), stderr

    def _alive(self) -> bool:
        transport = getattr(self._conn, "transport", None)
        return transport is not None and bool(transport.is_active())

    def _end_group(self, pid: int, become_user: str | None) -> None:
        """End a cut command's process group on the host, whatever the run's cancel state (bounded)."""
        import paramiko

        with contextlib.suppress(ConnectError, OSError, EOFError, paramiko.SSHException):
            self._run_channel(END_GROUP.format(pid=int(pid)), stdin=None, become_user=become_user,
                              timeout=15, cancel=threading.Event(), end_cut=False)

    def _send(self, channel: Any, data: bytes, cancel: threading.Event) -> bool | None:
        """Send in chunks so an interrupt cuts a large upload: True when all was sent, None if cut.

        False: the command ended before it read all of its stdin (a script that fails before it
        reads its data, a batch that stops before its later parts) and sshd closed the channel.
        That is the command's own result, read as usual, not a lost connection.
        """
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            if cancel.is_set():
                return None
            try:
                channel.sendall(view[start:start + CHUNK])
            except OSError:
                if self._alive() and (channel.closed or channel.exit_status_ready()):
                    return False
                raise
        return True

    def _answer_sudo(self, channel: Any, password: str, out: list[bytes], err: list[bytes],
                     cancel: threading.Event | None = None) -> None:
        """Wait for sudo's prompt (type the password) or the ready mark (no password needed)."""
        answer_sudo(channel, password, out, err, host=self.name, cancel=self._cancel if cancel is None else cancel,
                    wait=self._connect_timeout + 20)

    def _drain(self, channel: Any, out: list[bytes], err: list[bytes], timeout: float | None,
               cancel: threading.Event) -> tuple[int, bool]:
        """Read both streams until the exit status; (rc, True) when cut by ``timeout`` or ``cancel``."""
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            if cancel.is_set() or (deadline is not None and time.monotonic() > deadline):
                # What already arrived first: the shell's pid mark may still sit unread, and without
                # it the command's process group cannot be ended on the host.
                while channel.recv_stderr_ready():
                    err.append(channel.recv_stderr(65536))
                while channel.recv_ready():
                    out.append(channel.recv(65536))
                channel.close()
                reason = "interrupted" if cancel.is_set() else f"timed out after {timeout:g}s"
                err.append(f"\n[provision: {reason}]".encode())
                return RC_CUT, True
            if channel.recv_ready():
                out.append(channel.recv(65536))
                continue
            if channel.recv_stderr_ready():
                err.append(channel.recv_stderr(65536))
                continue
            if channel.exit_status_ready():
                # Output may still be in flight after the status: read until both streams close.
                while True:
                    chunk = channel.recv(65536)
                    if not chunk:
                        break
                    out.append(chunk)
                while True:
                    chunk = channel.recv_stderr(65536)
                    if not chunk:
                        break
                    err.append(chunk)
                return int(channel.recv_exit_status()), False
            if channel.eof_received:
                # No more output, the exit status is on its way. The channel's pipe stays readable
                # after EOF, so select would return at once: wait for the status itself instead of
                # spinning, which took the interpreter lock from every other host's transport.
                channel.status_event.wait(0.2)
                continue
            select.select([channel], [], [], 0.2)


    def start(self, script: str, *, stdin: bytes | None = None,
              become_user: str | None = None) -> RemoteProcess:
        """Start ``script`` on a channel of its own and return at once; see ``start_remote``."""
        self.open()
        password = self.spec.become_password if become_user not in (None, self.login_user) else None
        command = remote_command(become_user, self.login_user, password=password is not None)
        try:
            channel = self._conn.transport.open_session(timeout=self._connect_timeout)
        except Exception as exc:
            raise ConnectError(f"host {self.name}: connection lost: {exc}") from None
        self.sessions += 1
        channel.exec_command(command)
        out: list[bytes] = []
        err: list[bytes] = []
        if password is not None:
            self._answer_sudo(channel, password, out, err)
        channel.sendall(frame(script, stdin))
        return ChannelProcess(channel, b"".join(out))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None


class LocalConnection(_BytesConnection):
    """The control host itself (``delegate_to: localhost``, ``ansible_connection: local``)."""

    def __init__(self, name: str = "localhost", *, become_password: str | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.name = name
        self._become_password = become_password
        self._cancel = cancel or threading.Event()
        self.login_user = _current_user()
        self.sessions = 0

    def open(self) -> None:
        """Nothing to open."""

    def run_bytes(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        become_user: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Like ``run``, with raw bytes; a timeout or interrupt kills the script's whole process group."""
        argv = shlex.split(remote_command(become_user, self.login_user, password=False))
        self.sessions += 1
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout if timeout else None
        data: bytes | None = frame(script, stdin)
        while True:
            try:
                # Short slices, so Ctrl-C (the run's cancel) is seen while a command runs.
                out, err = proc.communicate(data, timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                data = None  # already sent: communicate() keeps feeding it
                timed_out = deadline is not None and time.monotonic() > deadline
                if not (timed_out or self._cancel.is_set()):
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                reason = f"timed out after {timeout:g}s" if timed_out else "interrupted"
                return RC_CUT, out, split_pid_mark(err)[1] + f"\n[provision: {reason}]".encode()
        return proc.returncode, out, split_pid_mark(err)[1]


    def start(self, script: str, *, stdin: bytes | None = None,
              become_user: str | None = None) -> RemoteProcess:
        """Start ``script`` in a session of its own and return at once; see ``start_remote``."""
        argv = shlex.split(remote_command(become_user, self.login_user, password=False))
        self.sessions += 1
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        assert proc.stdin is not None
        proc.stdin.write(frame(script, stdin))
        proc.stdin.flush()
        return PopenProcess(proc)

    def close(self) -> None:
        """Nothing to close."""


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def tcp_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """True if a TCP connection to host:port opens (used by ``wait_for`` on the control host)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_remote(connection: Connection, script: str, *, stdin: bytes | None = None,
                 become_user: str | None = None) -> RemoteProcess:
    """Start ``script`` on its own channel of ``connection`` and return at once (stdin stays open).

    For holders that must live as long as the run: a lock's keeper dies with the SSH connection.
    """
    if isinstance(connection, SSHConnection):
        return connection.start(script, stdin=stdin, become_user=become_user)
    if isinstance(connection, LocalConnection):
        return connection.start(script, stdin=stdin, become_user=become_user)
    raise TypeError(f"cannot start a remote process over {type(connection).__name__}")
