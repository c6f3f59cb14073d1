"""How a script travels over a connection's stdin and what its output carries besides its own.

A script is sent as a frame: its length on a line, the script ending in ``END_MARK``, then the
script's own stdin (file contents, secrets), so nothing a task sends shows in ``ps`` on the host.
The remote reader (``connbootstrap.BOOTSTRAP``) runs a script only when its end mark arrived: one
cut short (an interrupted upload, a dropped connection) exits 125 instead of running half-way.

On stderr the remote shell first names its pid (``PID_MARK``), so a command cut by a timeout or
Ctrl-C can have its whole process group ended on the host (``END_GROUP``); ``split_pid_mark``
takes that line out of what the task sees.
"""

from __future__ import annotations

import re

END_MARK = "\n#pv-end"
PID_MARK = "\036pv-pid"
_PID_LINE = re.compile(rb"\036pv-pid (\d+)\n")
# The shell words that print PID_MARK with the remote shell's pid (first thing on stderr).
PRINT_PID = "printf '\\036pv-pid %s\\n' \"$$\" >&2; "
# Run on a fresh channel after a timeout or Ctrl-C: TERM the group of that pid, then KILL what is left.
END_GROUP = """p={pid}
[ -r /proc/$p/stat ] || exit 0
g=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f3)
[ "$g" -gt 1 ] 2>/dev/null || exit 0
kill -s TERM -- -"$g" 2>/dev/null
i=0; while [ $i -lt 20 ] && kill -s 0 -- -"$g" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -s KILL -- -"$g" 2>/dev/null
exit 0
"""
# The remote side of an interrupted or timed-out command gets this exit code.
RC_CUT = -1
# Uploads go in pieces of this size, checking for an interrupt between them.
CHUNK = 256 * 1024


def frame(script: str, stdin: bytes | None) -> bytes:
    """The bytes the bootstrap expects: script length, script, then the script's own stdin."""
    body = (script + END_MARK).encode()
    return f"{len(body)}\n".encode() + body + (stdin or b"")


def split_pid_mark(err: bytes) -> tuple[int | None, bytes]:
    """The remote shell's pid from its stderr, and the stderr without that line."""
    match = _PID_LINE.search(err)
    if match is None:
        return None, err
    return int(match.group(1)), err[: match.start()] + err[match.end():]
