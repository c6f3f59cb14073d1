#!/usr/bin/env python3
"""Run one tool command and record the control-host CPU seconds of its whole process tree.

Usage: cpu_wrap.py LOG LABEL COMMAND [ARG ...]  (stdin, stdout, stderr and the exit code pass through)

Appends one JSON line to LOG: ``{"label", "user_s", "sys_s", "cpu_s", "wall_s", "rc", "orphans"}``.
The count is what ``wait4`` reports for the command and every descendant it waited for, plus the
descendants it did not wait for: the wrapper makes itself a child subreaper, so processes that
detach (Ansible's ControlPersist ssh masters) are re-parented to it and counted too, reaped if they
ended, read from ``/proc/<pid>/stat`` if they still run when the command exits (they are then left
running: the tool's runner stops them). Started as ``python3 -I -S`` it costs some 15 ms of wall
time per run, the same for every tool. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def stat_ticks(text: str) -> int:
    """utime + stime + cutime + cstime (clock ticks) from a ``/proc/<pid>/stat`` line.

    The command name (field 2) is in brackets and may hold spaces or brackets: count from the last ``)``.
    """
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17.
    return sum(int(value) for value in fields[11:15])


def stat_parent(text: str) -> int:
    """The parent pid (field 4) of a ``/proc/<pid>/stat`` line."""
    return int(text[text.rindex(")") + 2:].split()[1])


def live_children_seconds(parent: int, proc: str = "/proc") -> tuple[float, int]:
    """CPU seconds so far of ``parent``'s live children and their waited-for descendants, and how many."""
    ticks, count = 0, 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as fh:
                text = fh.read()
        except OSError:  # ended meanwhile
            continue
        if stat_parent(text) == parent:
            ticks += stat_ticks(text)
            count += 1
    return ticks / os.sysconf("SC_CLK_TCK"), count


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    log, label, command = argv[0], argv[1], argv[2:]
    with contextlib.suppress(OSError, AttributeError):  # not Linux: detached processes go uncounted
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    start = time.monotonic()
    child = os.fork()
    if child == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    user = system = 0.0
    rc = 1
    while True:
        pid, status, usage = os.wait4(-1, 0)
        user += usage.ru_utime
        system += usage.ru_stime
        if pid == child:
            rc = os.waitstatus_to_exitcode(status)
            break
    wall = time.monotonic() - start
    while True:  # orphans that ended: reap them, with their usage
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        user += usage.ru_utime
        system += usage.ru_stime
    running, orphans = live_children_seconds(os.getpid())
    record = {"label": label, "user_s": round(user, 3), "sys_s": round(system, 3),
              "cpu_s": round(user + system + running, 3), "wall_s": round(wall, 3), "rc": rc, "orphans": orphans}
    with open(log, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
