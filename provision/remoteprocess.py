"""A script left running on a channel of its own: lines read as they come, stdin written later.

For holders that must live as long as the run (a host lock's keeper dies with the SSH connection):
``connection.start_remote`` starts one over SSH (``ChannelProcess``) or locally (``PopenProcess``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from typing import Any, Protocol

from .connframing import RC_CUT


class RemoteProcess(Protocol):
    """A script left running on its own channel: lines read as they come, stdin written later."""

    def readline(self, timeout: float) -> bytes | None:
        """The next line (without its newline), b"" at end of output, None when ``timeout`` ran out."""
        ...

    def write(self, data: bytes) -> None: ...

    def wait(self, timeout: float) -> int:
        """Close our end of stdin and wait for the exit status (RC_CUT when ``timeout`` ran out)."""
        ...


class ChannelProcess:
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


class PopenProcess:
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
