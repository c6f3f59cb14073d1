"""Running the machine's own tools (ip, mount, unshare, ssh-keygen …) with timeouts and clear errors."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from provision.errors import LabError
from provision.lab.state import ProcessRef

# A clean environment for everything the lab starts: nothing of the caller's leaks into the hosts.
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

# Tool → Debian package that provides it.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mmdebstrap": "mmdebstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "ssh-keygen": "openssh-client",
    "openssl": "openssl",
}


def check_machine() -> None:
    """A LabError unless this is Linux, we are root, and every tool the lab uses is installed."""
    if platform.system() != "Linux":
        raise LabError("the lab needs Linux (network, PID and mount namespaces)")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, a bridge and mounts)", hint="run it with sudo")
    path = CLEAN_ENV["PATH"]
    missing = sorted({package for tool, package in REQUIRED_TOOLS.items() if shutil.which(tool, path=path) is None})
    if missing:
        raise LabError(f"the lab needs these packages: {', '.join(missing)}",
                       hint=f"apt-get install {' '.join(missing)}")


def run(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float = 30,
    input_text: str | None = None,
    hint: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; on failure or timeout a LabError naming ``what`` with the tail of the output."""
    try:
        result = subprocess.run(
            list(argv), input=input_text, capture_output=True, text=True, timeout=timeout, env=CLEAN_ENV,
            stdin=None if input_text is not None else subprocess.DEVNULL, check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: `{argv[0]}` did not finish within {timeout:.0f} s", hint=hint) from None
    except FileNotFoundError:
        raise LabError(f"{what}: `{argv[0]}` is not installed", hint=hint) from None
    if check and result.returncode != 0:
        output = tail(result.stderr or result.stdout)
        raise LabError(f"{what}: `{' '.join(argv[:3])} …` exited {result.returncode}: {output}", hint=hint)
    return result


def tail(text: str, lines: int = 6) -> str:
    """The last few non-empty lines of a command's output, joined for an error message."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def spawn_detached(argv: Sequence[str], *, log: Path) -> ProcessRef:
    """Start a long-lived process in its own session, output appended to ``log``; it is our child until we exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = os.posix_spawn(
        argv[0],
        list(argv),
        CLEAN_ENV,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
    )
    ref = ProcessRef.of(pid)
    if ref is None:
        reap(pid)
        raise LabError(f"`{argv[0]}` exited at once; see {log}")
    return ref


def signal_process(ref: ProcessRef, signum: int) -> None:
    """Send ``signum`` to the process if it is still the one recorded."""
    if ref.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, signum)


def wait_gone(refs: Sequence[ProcessRef], *, timeout: float, what: str) -> None:
    """Wait until every process has exited (reaping our own children); a LabError after ``timeout``."""
    deadline = time.monotonic() + timeout
    pending = list(refs)
    while pending:
        for ref in pending:
            reap(ref.pid)
        pending = [ref for ref in pending if ref.alive()]
        if not pending:
            return
        if time.monotonic() > deadline:
            pids = ", ".join(str(ref.pid) for ref in pending)
            raise LabError(f"{what}: process {pids} still running after {timeout:.0f} s",
                           hint="check them with `ps -fp PID`, then run `provision lab down` again")
        time.sleep(0.05)


def reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is our exited child; nothing otherwise."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
