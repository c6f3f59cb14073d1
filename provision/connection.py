"""One connection per host for the whole run: SSH (Fabric/Paramiko) or local.

Every remote script goes over stdin, never on the command line, so nothing a task sends (file
contents, passwords) is visible in ``ps`` on the host. The command line is a fixed bootstrap
that reads the script's length, then the script, and leaves the rest of stdin to the script:

    sh -c 'IFS= read -r n; s=$(head -c "$n"); eval "$s"'

Become wraps that bootstrap in ``sudo -H -u USER``. A become password is typed only when sudo
shows our prompt (``-p``), so passwordless sudo and cached credentials work the same way.

Host keys are checked against known_hosts files and refused when unknown or changed, with the
fingerprint in the error; Fabric's accept-anything default is replaced.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .connfailure import connect_failure, connection_lost, silence_paramiko
from .contract import CommandResult
from .errors import AuthError, ConnectError, HostKeyError

if TYPE_CHECKING:
    import paramiko

    from .inventory import ConnectionSpec

# The script ends with END_MARK: one cut short (an interrupted upload, a dropped connection) is
# never evaluated half-way, it exits 125 instead.
END_MARK = "\n#pv-end"
BOOTSTRAP = 'IFS= read -r n; s=$(head -c "$n"); case "$s" in *"#pv-end") eval "$s";; *) exit 125;; esac'
# The remote shell names its pid first on stderr, so a cut command's whole process group can be
# ended on the host (closing an SSH channel without a pty signals nothing there).
PID_MARK = "\036pv-pid"
_PID_LINE = re.compile(rb"\036pv-pid (\d+)\n")
# Run on a fresh channel after a timeout or Ctrl-C: TERM the group of that pid, then KILL what is left.
_END_GROUP = """p={pid}
[ -r /proc/$p/stat ] || exit 0
g=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f3)
[ "$g" -gt 1 ] 2>/dev/null || exit 0
kill -s TERM -- -"$g" 2>/dev/null
i=0; while [ $i -lt 20 ] && kill -s 0 -- -"$g" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -s KILL -- -"$g" 2>/dev/null
exit 0
"""
SUDO_PROMPT = "[provision-sudo-password]"
READY = b"\x06provision-ready\n"
# The remote side of an interrupted or timed-out command gets this exit code.
RC_CUT = -1
# Uploads go in pieces of this size, checking for an interrupt between them.
_CHUNK = 256 * 1024


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


def frame(script: str, stdin: bytes | None) -> bytes:
    """The bytes the bootstrap expects: script length, script, then the script's own stdin."""
    body = (script + END_MARK).encode()
    return f"{len(body)}\n".encode() + body + (stdin or b"")


def become_prefix(become_user: str | None, login_user: str | None, *, password: bool) -> str:
    """The sudo words before the bootstrap, or nothing when no user switch is needed."""
    if become_user is None or become_user == login_user:
        return ""
    mode = f"-S -p {shlex.quote(SUDO_PROMPT)}" if password else "-n"
    user = "" if become_user == "root" else f"-u {shlex.quote(become_user)} "
    return f"sudo -H {mode} {user}-- "


def remote_command(become_user: str | None, login_user: str | None, *, password: bool) -> str:
    """The full command line sent to the host for one script."""
    prefix = become_prefix(become_user, login_user, password=password)
    ready = "printf '\\006provision-ready\\n'; " if prefix and password else ""
    # The login user's directory may be closed to the become user (pip, git and bench then fail
    # on a relative path): start in the become user's home, as a login would.
    home = 'cd "$HOME" 2>/dev/null || cd /; ' if prefix else ""
    pid = "printf '\\036pv-pid %s\\n' \"$$\" >&2; "
    return f"{prefix}sh -c {shlex.quote(ready + home + pid + BOOTSTRAP)}"


def split_pid_mark(err: bytes) -> tuple[int | None, bytes]:
    """The remote shell's pid from its stderr, and the stderr without that line."""
    match = _PID_LINE.search(err)
    if match is None:
        return None, err
    return int(match.group(1)), err[: match.start()] + err[match.end():]


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


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
        import paramiko
        from fabric import Config
        from fabric import Connection as FabricConnection

        silence_paramiko()
        spec = self.spec
        config = Config(runtime_ssh_path=str(self._ssh_config)) if self._ssh_config else Config()
        # Without it a port that accepts and stays silent holds the host for paramiko's own 15 s.
        connect_kwargs: dict[str, Any] = {"banner_timeout": self._connect_timeout}
        if spec.private_key_file:
            connect_kwargs.update(
                key_filename=[os.path.expanduser(spec.private_key_file)], look_for_keys=False, allow_agent=False
            )
        if spec.password:
            connect_kwargs["password"] = spec.password
        conn = FabricConnection(
            spec.host,
            user=spec.user,
            port=spec.port,
            config=config,
            connect_timeout=int(self._connect_timeout),
            connect_kwargs=connect_kwargs,
        )
        self._pin_host_keys(conn)
        target = f"{conn.user}@{conn.host}:{conn.port}"
        try:
            self._open(conn)
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"host {self.name} ({target}) presented a DIFFERENT host key than the one pinned: "
                f"got {exc.key.get_name()} {fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}. "
                "This can mean the server was rebuilt, or that someone is in the middle "
                "(fix: if the server was really rebuilt, remove its old line with "
                f"`ssh-keygen -R {_known_hosts_name(conn.host, conn.port)}` and pin the new key)",
            ) from None
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:  # auth failures included
            raise connect_failure(exc, host=self.name, target=target, timeout=self._connect_timeout) from None
        self.login_user = conn.user
        return conn

    def _open(self, conn: Any) -> None:
        """Open ``conn`` (over our own socket unless a gateway carries it); nothing stays open on failure."""
        sock = None
        try:
            if not conn.gateway:
                sock = self._tcp_socket(conn.host, int(conn.port))
                conn.connect_kwargs["sock"] = sock
            conn.open()
            for hop in _hops(conn):  # gateway hops' sockets were made by paramiko, with Nagle on
                _no_delay(getattr(hop.transport, "sock", None))
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            if sock is not None:
                sock.close()
            raise

    def _tcp_socket(self, host: str, port: int) -> socket.socket:
        """A connected TCP socket with Nagle's algorithm off.

        SSH sends small messages back to back (channel open, exec, data, EOF). With Nagle on, the
        second waits for the host's delayed ACK, about 40 ms: every script cost ~48 ms instead of
        ~6, and the handshake ~70 ms instead of ~25. OpenSSH sets TCP_NODELAY too; paramiko,
        making its own socket, does not.
        """
        sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        _no_delay(sock)
        return sock

    def _pin_host_keys(self, conn: Any) -> None:
        """Replace Fabric's AutoAddPolicy by a refusal, on this hop and every gateway hop."""
        for hop in _hops(conn):
            hop.client.set_missing_host_key_policy(_reject_unknown(self.name))
            default = Path.home() / ".ssh" / "known_hosts"
            if default.exists():
                hop.client.load_host_keys(str(default))
            for path in self._known_hosts:
                try:
                    hop.client.load_host_keys(str(path))
                except OSError as exc:
                    raise HostKeyError(f"host {self.name}: cannot read known_hosts file {path}: "
                                       f"{exc.strerror or exc}", hint="fix ssh_known_hosts_file") from None

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
        try:
            with channel:
                channel.exec_command(command)
                if password is not None:
                    self._answer_sudo(channel, password, out, err, cancel)
                if not self._send(channel, frame(script, stdin), cancel):
                    channel.close()
                    err.append(b"\n[provision: interrupted]")
                    rc, cut = RC_CUT, True
                else:
                    channel.shutdown_write()
                    rc, cut = self._drain(channel, out, err, timeout, cancel)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise connection_lost(self.name, exc) from None
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
            self._run_channel(_END_GROUP.format(pid=int(pid)), stdin=None, become_user=become_user,
                              timeout=15, cancel=threading.Event(), end_cut=False)

    def _send(self, channel: Any, data: bytes, cancel: threading.Event) -> bool:
        """Send in chunks so an interrupt cuts a large upload; False if it was cut."""
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            if cancel.is_set():
                return False
            channel.sendall(view[start:start + _CHUNK])
        return True

    def _answer_sudo(self, channel: Any, password: str, out: list[bytes], err: list[bytes],
                     cancel: threading.Event | None = None) -> None:
        """Wait for sudo's prompt (type the password) or the ready mark (no password needed)."""
        cancel = self._cancel if cancel is None else cancel
        deadline = time.monotonic() + self._connect_timeout + 20
        seen_out = b""
        seen_err = b""
        while time.monotonic() < deadline and not cancel.is_set():
            select.select([channel], [], [], 0.2)
            if channel.recv_stderr_ready():
                seen_err += channel.recv_stderr(4096)
                if SUDO_PROMPT.encode() in seen_err:
                    seen_err = seen_err.replace(SUDO_PROMPT.encode(), b"", 1)
                    channel.sendall(password.encode() + b"\n")
            if channel.recv_ready():
                seen_out += channel.recv(4096)
                if READY in seen_out:
                    _, _, after = seen_out.partition(READY)
                    out.append(after)
                    err.append(seen_err)
                    return
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
        err.append(seen_err)
        if cancel.is_set():  # Ctrl-C while sudo asked: an interrupt, not a refused password
            return
        raise AuthError(
            f"host {self.name}: sudo did not accept the become password: {seen_err.decode(errors='replace').strip()}",
            hint="check become_password (or --ask-become-pass) for this host",
        )

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
        return _ChannelProcess(channel, b"".join(out))

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
        return _PopenProcess(proc)

    def close(self) -> None:
        """Nothing to close."""


def _hops(conn: Any) -> Iterator[Any]:
    """A Fabric connection, then each gateway connection it goes through (a ProxyCommand string ends it)."""
    hop = conn
    while hop is not None and hasattr(hop, "client"):
        yield hop
        gateway = getattr(hop, "gateway", None)
        hop = gateway if gateway is not None and not isinstance(gateway, str) else None


def _no_delay(sock: object) -> None:
    """Nagle off on a TCP socket (see ``SSHConnection._tcp_socket``); a channel-backed hop is left alone."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _reject_unknown(name: str) -> Any:
    """A paramiko policy that refuses an unknown host key, showing its fingerprint."""
    import paramiko

    class RejectUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise HostKeyError(
                f"host {name} ({hostname}) is not in known_hosts; its {key.get_name()} key is {fingerprint(key)} "
                "(fix: verify that fingerprint out of band, then pin it: `provision onboard` does this, or add "
                "the host's key (`ssh-keyscan`) to ~/.ssh/known_hosts or the project's known_hosts)",
            )

    return RejectUnknown()


def tcp_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """True if a TCP connection to host:port opens (used by ``wait_for`` on the control host)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class RemoteProcess(Protocol):
    """A script left running on its own channel: lines read as they come, stdin written later."""

    def readline(self, timeout: float) -> bytes | None:
        """The next line (without its newline), b"" at end of output, None when ``timeout`` ran out."""
        ...

    def write(self, data: bytes) -> None: ...

    def wait(self, timeout: float) -> int:
        """Close our end of stdin and wait for the exit status (RC_CUT when ``timeout`` ran out)."""
        ...


class _ChannelProcess:
    """``RemoteProcess`` over a paramiko channel."""

    def __init__(self, channel: Any, early: bytes) -> None:
        self._channel = channel
        self._buffer = early

    def readline(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self._channel.recv_ready():
                chunk = self._channel.recv(4096)
                if not chunk:
                    break
                self._buffer += chunk
                continue
            if self._channel.eof_received or self._channel.closed:
                # The last output and the EOF can arrive together, after recv_ready() said no:
                # read what is left before treating the end as the answer.
                while chunk := self._channel.recv(4096):
                    self._buffer += chunk
                break
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([self._channel], [], [], min(left, 0.2))
        line, newline, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        return line if newline or line else b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._channel.sendall(data)

    def wait(self, timeout: float) -> int:
        with contextlib.suppress(OSError, EOFError):
            self._channel.shutdown_write()
        if not self._channel.status_event.wait(timeout):
            self._channel.close()
            return RC_CUT
        status = int(self._channel.recv_exit_status())
        self._channel.close()
        return status


class _PopenProcess:
    """``RemoteProcess`` over a local process (its own session, killed whole on a timeout)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._buffer = b""

    def readline(self, timeout: float) -> bytes | None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self._buffer += chunk
        line, newline, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        return line if newline or line else b""

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.write(data)
            self._proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            return RC_CUT


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
