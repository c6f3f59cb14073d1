"""State of a run: options, what all hosts share, and what each host keeps across plays."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .connection import Connection, LocalConnection, SSHConnection
from .contract import RenderedTemplate
from .errors import ConnectError
from .events import HostStats, HostUnreachable, Reporter
from .inventory import ConnectionSpec, Host
from .probes import ProbeCache
from .secrets import Redactor
from .templating import Templar
from .variables import RUNTIME, VariableLayers


@dataclass
class RunOptions:
    """Everything the command line decides about a run."""

    check: bool = False
    diff: bool = False
    forks: int = 10
    limit: str | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: dict[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    known_hosts: tuple[Path, ...] = ()
    ssh_config: Path | None = None
    become_password: str | None = None
    connect_timeout: float = 10.0
    force_handlers: bool = False
    project_dir: Path = Path(".")
    # Ansible's -u, --private-key, -b, --become-user: below the inventory's own settings.
    remote_user: str | None = None
    private_key_file: str | None = None
    become: bool = False
    become_user: str | None = None
    start_at_task: str | None = None
    # Changes of consecutive independent tasks travel in one script (provision.batching).
    batch_changes: bool = True


class BatchControl:
    """Failure accounting for one serial batch: max_fail_percentage and any_errors_fatal."""

    def __init__(self, size: int, max_fail_percentage: float | None, any_errors_fatal: bool) -> None:
        self.size = size
        self.threshold = 0.0 if any_errors_fatal else max_fail_percentage
        self.failed: set[str] = set()
        self.aborted = False
        self._lock = threading.Lock()

    def host_failed(self, name: str) -> None:
        with self._lock:
            self.failed.add(name)
            # Ansible aborts when the failed share is strictly greater than the percentage.
            if self.threshold is not None and len(self.failed) * 100.0 / self.size > self.threshold:
                self.aborted = True


class RunShared:
    """What every host's worker thread shares during a run."""

    def __init__(self, *, options: RunOptions, templar: Templar, reporter: Reporter, redactor: Redactor,
                 file_dirs: list[Path]) -> None:
        self.options = options
        self.templar = templar
        self.reporter = reporter
        self.redactor = redactor
        self.file_dirs = file_dirs
        self.cancel = threading.Event()
        self.local = LocalConnection(become_password=options.become_password, cancel=self.cancel)
        self.batch = BatchControl(1, None, False)

    def render_file(self, name: str, variables: Mapping[str, Any]) -> RenderedTemplate:
        text, path = self.templar.render_file(name, variables)
        return RenderedTemplate(text, path)

    def host_failed(self, name: str) -> None:
        self.batch.host_failed(name)

    def batch_aborted(self) -> bool:
        return self.batch.aborted


class HostState:
    """One host across the whole run: its connection, facts, registered vars and counters."""

    def __init__(self, host: Host, spec: ConnectionSpec, layers: VariableLayers) -> None:
        self.name = host.name
        self.host = host
        self.spec = spec
        # The host's levels for the whole run (inventory, runtime, extra vars, magic); each play
        # copies them and adds its own (see provision.variables).
        self.layers = layers
        self.runtime: dict[str, Any] = {}
        self.facts: dict[str, Any] | None = None
        self.probes = ProbeCache()
        self.stats = HostStats()
        self.unreachable = False
        self.failed = False
        # --start-at-task: tasks before the first one of that name are passed over, across plays.
        self.reached_start = False
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def connect(self, shared: RunShared) -> Connection:
        """The host's one connection for the run, opened on first use."""
        with self._lock:
            if self._connection is None:
                if self.spec.local:
                    self._connection = LocalConnection(self.name, cancel=shared.cancel)
                else:
                    spec = self.spec
                    if spec.become_password is None and shared.options.become_password is not None:
                        spec = replace(spec, become_password=shared.options.become_password)
                    self._connection = SSHConnection(spec, known_hosts=shared.options.known_hosts,
                                                     ssh_config=shared.options.ssh_config,
                                                     connect_timeout=shared.options.connect_timeout,
                                                     cancel=shared.cancel)
            connection = self._connection
        try:
            connection.open()
        except ConnectError as exc:
            self.mark_unreachable(str(exc), shared)
            raise
        return connection

    def set_runtime(self, values: Mapping[str, Any], source: str) -> None:
        """Record ``register``/``set_fact`` values: they outlive the play that set them."""
        self.runtime.update(values)
        self.layers.push(RUNTIME, source, values)

    @property
    def sessions(self) -> int:
        return int(getattr(self._connection, "sessions", 0))

    def mark_unreachable(self, message: str, shared: RunShared) -> None:
        with self._lock:
            if self.unreachable:
                return
            self.unreachable = True
            self.stats.unreachable = 1
        shared.reporter.host_unreachable(HostUnreachable(self.name, message))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
