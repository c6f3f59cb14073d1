"""One lock per host for every job that changes a bench: deploy, update, rollback, backup, restore.

The lock is two things on the host, under ``lock_dir`` (default ``/var/lib/provision``):

- the directory ``lock/``, made by ``mkdir`` (atomic: of two runs exactly one makes it), holding
  ``owner.json``, the record of who holds it;
- a keeper: a shell on an SSH channel of its own that holds ``flock`` on ``lock.flock`` for as long
  as the run lives. A run that ends says ``release`` and the keeper removes the directory. A run
  that dies (``kill -9``, the connection lost, sshd stopped) closes the channel: the keeper exits
  without removing anything, and its flock goes with it.

So the next run tells three states apart without trusting clocks or pids of another machine:
free (no directory), held (directory and flock: a live run), stale (directory, no flock: the run
that left it is gone). A stale lock is never broken silently; ``provision unlock HOST --reason``
breaks it and appends the old record and the reason to ``unlock.log``. Deployer's check-then-write
lock (two runs both get in) and Kamal's lock that a killed run leaves behind are what this avoids.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import time
from dataclasses import asdict, dataclass
from types import TracebackType

from .connection import Connection, RemoteProcess, start_remote
from .errors import EXIT_FAILED, ProvisionError

DEFAULT_LOCK_DIR = "/var/lib/provision"
# How long the host may take to answer the keeper (its shell and sudo start).
ANSWER_TIMEOUT = 30.0

_PREAMBLE = """\
base={base}
d="$base/lock"
umask 077
mkdir -p "$base" 2>/dev/null || {{ echo "ERROR cannot create $base"; exit 0; }}
exec 9>>"$base/lock.flock" || {{ echo "ERROR cannot open $base/lock.flock"; exit 0; }}
owner() {{ cat "$d/owner.json" 2>/dev/null | head -c 4096 | tr -d '\\n' || true; echo; }}
"""

# Holds the flock until the run says "release" (then removes the directory) or goes away.
_KEEP = """\
if ! flock -n 9; then printf 'HELD '; owner; exit 0; fi
if ! mkdir "$d" 2>/dev/null; then printf 'STALE '; owner; exit 0; fi
IFS= read -r record || record='{}'
printf '%s\\n' "$record" > "$d/owner.json.tmp" && mv -f "$d/owner.json.tmp" "$d/owner.json"
echo ACQUIRED
IFS= read -r word || word=
if [ "$word" = release ]; then rm -rf "$d" && echo RELEASED; fi
"""

_STATUS = """\
if [ ! -d "$d" ]; then echo FREE
elif flock -n 9; then printf 'STALE '; owner
else printf 'HELD '; owner
fi
"""

# Breaks only a stale lock: a live owner is never cut off.
_BREAK = """\
if [ ! -d "$d" ]; then echo FREE; exit 0; fi
if ! flock -n 9; then printf 'HELD '; owner; exit 0; fi
old=$(owner)
IFS= read -r audit || audit='{}'
printf '%s\\n' "$audit" >> "$base/unlock.log"
rm -rf "$d" && printf 'BROKEN %s\\n' "$old"
"""


@dataclass(frozen=True)
class LockRecord:
    """Who holds a host's lock."""

    run_id: str
    operation: str
    user: str
    control_host: str
    pid: int
    started_at: str

    @classmethod
    def mine(cls, run_id: str, operation: str) -> LockRecord:
        """A record for this process."""
        return cls(run_id=run_id, operation=operation, user=_user(), control_host=socket.gethostname(),
                   pid=os.getpid(), started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @classmethod
    def parse(cls, text: str) -> LockRecord | None:
        """The record in ``owner.json``'s text, or None when it is missing or unreadable."""
        try:
            data = json.loads(text or "{}")
            return cls(run_id=str(data["run_id"]), operation=str(data["operation"]), user=str(data["user"]),
                       control_host=str(data["control_host"]), pid=int(data["pid"]),
                       started_at=str(data["started_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self) -> str:
        return (f"{self.operation} run {self.run_id} by {self.user}@{self.control_host} (pid {self.pid}), "
                f"since {self.started_at}")


class LockError(ProvisionError):
    """The host's lock could not be taken; ``record`` says who has it (None when unreadable)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, host: str, record: LockRecord | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self.record = record


class LockHeldError(LockError):
    """A live run holds the lock."""


class StaleLockError(LockError):
    """A run that is gone left the lock behind."""


@dataclass(frozen=True)
class LockState:
    """What ``lock_status`` found: ``free``, ``held`` or ``stale``, and the record if any."""

    state: str
    record: LockRecord | None


class HostLock:
    """The host's lock for one run, as a context manager: taken on enter, released on exit.

    ``release`` happens on exceptions and Ctrl-C too; when the connection is already gone it
    cannot, and the lock stays behind as stale, which is what the next run must see.
    """

    def __init__(self, connection: Connection, *, operation: str, run_id: str, become_user: str | None = "root",
                 lock_dir: str = DEFAULT_LOCK_DIR) -> None:
        self.connection = connection
        self.operation = operation
        self.run_id = run_id
        self.become_user = become_user
        self.lock_dir = lock_dir
        self.record: LockRecord | None = None
        self._keeper: RemoteProcess | None = None

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise LockHeldError / StaleLockError / ProvisionError."""
        record = LockRecord.mine(self.run_id, self.operation)
        keeper = start_remote(self.connection, _script(self.lock_dir, _KEEP), stdin=record.to_json().encode() + b"\n",
                              become_user=self.become_user)
        line = keeper.readline(ANSWER_TIMEOUT)
        word, text = _answer(line)
        if word == "ACQUIRED":
            self.record = record
            self._keeper = keeper
            return
        keeper.wait(5)
        raise _refusal(self.connection.name, word, text, self.lock_dir)

    def release(self) -> bool:
        """Give the lock back; False when the host could not be told (the lock then stays, stale)."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return True
        keeper.write(b"release\n")
        line = keeper.readline(ANSWER_TIMEOUT)
        keeper.wait(5)
        return line == b"RELEASED"


def lock_status(connection: Connection, *, become_user: str | None = "root",
                lock_dir: str = DEFAULT_LOCK_DIR) -> LockState:
    """Whether the host's lock is free, held by a live run, or stale."""
    result = connection.run(_script(lock_dir, _STATUS), become_user=become_user, timeout=ANSWER_TIMEOUT)
    word, text = _answer(result.stdout.splitlines()[0].encode() if result.stdout else b"")
    if word == "FREE":
        return LockState("free", None)
    if word in ("HELD", "STALE"):
        return LockState(word.lower(), LockRecord.parse(text))
    raise ProvisionError(f"host {connection.name}: cannot read the lock in {lock_dir}: "
                         f"{(result.stdout + result.stderr).strip() or 'no answer'}")


def break_lock(connection: Connection, *, reason: str, become_user: str | None = "root",
               lock_dir: str = DEFAULT_LOCK_DIR) -> LockRecord | None:
    """Remove a stale lock, logging its record and ``reason``; returns the record it had.

    Raises LockHeldError when a live run holds it, ProvisionError when there is no lock.
    """
    audit = json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": _user(),
                        "control_host": socket.gethostname(), "reason": reason})
    result = connection.run(_script(lock_dir, _BREAK), stdin=audit.encode() + b"\n", become_user=become_user,
                            timeout=ANSWER_TIMEOUT)
    word, text = _answer(result.stdout.splitlines()[0].encode() if result.stdout else b"")
    if word == "BROKEN":
        return LockRecord.parse(text)
    if word == "FREE":
        raise ProvisionError(f"host {connection.name} is not locked; nothing to unlock")
    if word == "HELD":
        raise _refusal(connection.name, word, text, lock_dir)
    raise ProvisionError(f"host {connection.name}: cannot unlock {lock_dir}: "
                         f"{(result.stdout + result.stderr).strip() or 'no answer'}")


def _script(lock_dir: str, body: str) -> str:
    return _PREAMBLE.format(base=shlex.quote(lock_dir.rstrip("/") or "/")) + body


def _answer(line: bytes | None) -> tuple[str, str]:
    if line is None:
        return "TIMEOUT", ""
    word, _, text = line.decode(errors="replace").strip().partition(" ")
    return word, text


def _refusal(host: str, word: str, text: str, lock_dir: str) -> ProvisionError:
    record = LockRecord.parse(text)
    who = record.describe() if record else "a run whose record is unreadable"
    if word == "HELD":
        return LockHeldError(
            f"host {host} is locked by {who}: another provision run is changing this bench",
            host=host, record=record, hint="wait for that run to finish, then run this again",
        )
    if word == "STALE":
        return StaleLockError(
            f"host {host} has a stale lock left by {who}; that run is gone (killed, or its connection was lost)",
            host=host, record=record,
            hint=f"an operation may be half done on {host}: check it, then run "
                 f"`provision unlock {host} --reason '...'`; the next update or deploy finishes or rolls back "
                 "what its journal shows half done",
        )
    if word == "TIMEOUT":
        return ProvisionError(f"host {host}: the lock did not answer within {ANSWER_TIMEOUT:g}s")
    detail = f"{word} {text}".strip() or "the host closed the connection"
    return ProvisionError(f"host {host}: cannot take the lock in {lock_dir}: {detail}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


__all__ = [
    "DEFAULT_LOCK_DIR",
    "HostLock",
    "LockError",
    "LockHeldError",
    "LockRecord",
    "LockState",
    "StaleLockError",
    "break_lock",
    "lock_status",
]

