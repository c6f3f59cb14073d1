"""The lab's record of what it created (processes, namespaces, links, mounts), so ``down`` undoes exactly that."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import LabError

STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRef:
    """A process as the lab started it: its pid plus its start time, so a recycled pid is never signalled."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        """The running process ``pid``, or None if there is none."""
        start = process_start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        """True while this very process exists and is not a zombie."""
        return process_start_time(self.pid) == self.start_time and not _is_zombie(self.pid)


@dataclass
class HostRecord:
    """One lab host: its network objects, its init process, its directory and how it logs in."""

    name: str
    address: str
    netns: str
    veth: str
    base: str
    profile: str = "key"
    process: ProcessRef | None = None
    netns_id: int = 0  # inode of /run/netns/NAME once created: only that namespace is ever deleted


@dataclass
class LabState:
    """Everything a lab made; written before each thing is created, so a crashed ``up`` is undone by ``down``."""

    subnet: str
    bridge: str | None = None
    run_netns_mount: bool = False
    proxy: ProcessRef | None = None
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        hosts = {
            name: HostRecord(**{**host, "process": _process(host.get("process"))})
            for name, host in data.get("hosts", {}).items()
        }
        return cls(
            subnet=data["subnet"],
            bridge=data.get("bridge"),
            run_netns_mount=bool(data.get("run_netns_mount")),
            proxy=_process(data.get("proxy")),
            hosts=hosts,
        )

    def empty(self) -> bool:
        """True when nothing recorded is left to undo."""
        return not (self.bridge or self.run_netns_mount or self.proxy or self.hosts)


def load_state(path: Path, subnet: str) -> LabState:
    """The recorded state, or an empty one; a LabError if the file cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return LabState(subnet=subnet)
    try:
        return LabState.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(
            f"lab state file {path} is unreadable: {exc}",
            hint="remove what it listed by hand (ip netns, ip link) and delete the file",
        ) from None


def save_state(path: Path, state: LabState) -> None:
    """Write the state atomically (temp file, fsync, rename)."""
    write_file_atomic(path, state.to_json(), mode=0o600)


def write_file_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), None if absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _process(data: Any) -> ProcessRef | None:
    return ProcessRef(int(data["pid"]), int(data["start_time"])) if data else None
