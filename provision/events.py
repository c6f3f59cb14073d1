"""What the engine tells the outside world while it runs.

The runner emits these events to a ``Reporter``; it never prints. The console reporter and the
NDJSON reporter (``--json``) in ``provision/output/`` are the two implementations. Field names
here are the JSON contract: ``play_start``, ``task``, ``host_unreachable``, ``recap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Status = Literal["ok", "changed", "failed", "skipped"]


@dataclass(frozen=True)
class PlayStarted:
    """A play begins on a batch of hosts."""

    name: str
    hosts: tuple[str, ...]
    batch: int = 1
    batches: int = 1
    check: bool = False
    tasks: int = 0  # tasks each host will run in this play (tags applied), for progress


@dataclass(frozen=True)
class TaskStarted:
    """A host starts a task (drives the live view of who runs what)."""

    host: str
    task: str
    module: str


@dataclass(frozen=True)
class TaskDone:
    """A task (or one loop item of it) finished on a host."""

    host: str
    task: str
    module: str
    status: Status
    msg: str = ""
    diff: str | None = None
    duration: float = 0.0
    item: str | None = None
    ignored: bool = False
    handler: bool = False
    check: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    item_value: Any = None  # the loop item itself (``item`` is its label), for --json

    @property
    def changed(self) -> bool:
        return self.status == "changed"


@dataclass(frozen=True)
class HostUnreachable:
    """A host could not be connected to (or dropped mid-run)."""

    host: str
    msg: str


@dataclass
class HostStats:
    """Counters for the recap of one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    rescued: int = 0
    ignored: int = 0

    def count(self, event: TaskDone) -> None:
        """Add one finished task to the counters (changed tasks count as ok too, as Ansible does)."""
        if event.status == "failed":
            if event.ignored:
                self.ignored += 1
            else:
                self.failed += 1
        elif event.status == "skipped":
            self.skipped += 1
        else:
            self.ok += 1
            if event.status == "changed":
                self.changed += 1


@dataclass(frozen=True)
class Recap:
    """The end of a run: counters per host and wall time."""

    hosts: dict[str, HostStats]
    duration: float
    interrupted: bool = False


class Reporter(Protocol):
    """Receives events from the runner; implementations must be thread-safe."""

    def play_started(self, event: PlayStarted) -> None: ...

    def task_started(self, event: TaskStarted) -> None: ...

    def task_done(self, event: TaskDone) -> None: ...

    def host_unreachable(self, event: HostUnreachable) -> None: ...

    def warning(self, message: str, *, host: str | None = None) -> None: ...

    def recap(self, event: Recap) -> None: ...

    def close(self) -> None: ...


class SilentReporter:
    """A reporter that drops everything (a run that never starts, ``--syntax-check``, ``--explain-var``)."""

    def play_started(self, event: PlayStarted) -> None: ...
    def task_started(self, event: TaskStarted) -> None: ...
    def task_done(self, event: TaskDone) -> None: ...
    def host_unreachable(self, event: HostUnreachable) -> None: ...
    def warning(self, message: str, *, host: str | None = None) -> None: ...
    def recap(self, event: Recap) -> None: ...
    def close(self) -> None: ...
