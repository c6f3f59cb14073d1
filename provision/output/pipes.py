"""Standard streams that survive their reader leaving (``provision deploy prod | head -1``).

A closed stdout or stderr must never change what runs on the hosts nor the exit status: a CI
job piping the output into ``head`` would otherwise pass a deploy that stopped half-way. The
choice made here: the run goes on, the rest of that stream's output is dropped, and the exit code
is the run's own. The first write that fails with a broken pipe points the file descriptor at
``/dev/null`` (so Python's flush at exit stays quiet too) and later writes go nowhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from typing import Any, TextIO

_GONE = (errno.EPIPE, errno.ECONNRESET, errno.EBADF)


class PipeSafeStream:
    """Wraps a text stream: a write or flush to a reader that is gone is dropped, never raised."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if self.closed_by_reader:
            return len(text)
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as exc:
            self._gone(exc)
            return len(text)

    def flush(self) -> None:
        if self.closed_by_reader:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._gone(exc)

    def _gone(self, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno not in _GONE:
            raise exc
        if isinstance(exc, ValueError) and not getattr(self._stream, "closed", False):
            raise exc  # a real bug, not "I/O operation on closed file"
        with self._lock:
            if self.closed_by_reader:
                return
            self.closed_by_reader = True
            with contextlib.suppress(OSError, ValueError):
                fd = self._stream.fileno()
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
            # Whatever is still in Python's buffer now goes to /dev/null instead of raising at exit.
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_std_streams() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by pipe-safe wrappers (once per process)."""
    if not isinstance(sys.stdout, PipeSafeStream) and sys.stdout is not None:
        sys.stdout = PipeSafeStream(sys.stdout)
    if not isinstance(sys.stderr, PipeSafeStream) and sys.stderr is not None:
        sys.stderr = PipeSafeStream(sys.stderr)
