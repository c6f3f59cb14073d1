"""The ``TaskContext`` a module gets: one host's connection, as the task's user, in this run's mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .connection import Connection
from .contract import CommandResult, RenderedTemplate
from .errors import ArgumentError, TaskFailed
from .probes import SHELL_LIB, ProbeCache, after_change_script, new_nonce, split_after_change

TemplateRenderer = Callable[[str, Mapping[str, Any]], RenderedTemplate]


class AfterChange:
    """What a changing script does for the probe cache: forget it, then refill it in the same round trip.

    ``scripts`` lists the probes of the tasks that come next (as the same user); they run at the end
    of the changing script, so the next task's check costs no extra channel and still sees the
    state this change left.
    """

    def __init__(self, cache: ProbeCache, user: str | None, scripts: Callable[[], list[str]]) -> None:
        self.cache = cache
        self.user = user
        self._scripts = scripts
        self._computed: list[str] | None = None

    def scripts(self) -> list[str]:
        if self._computed is None:
            self._computed = self._scripts()
        return self._computed


class HostContext:
    """Implements ``provision.contract.TaskContext`` (and what a plan reads through it) over a ``Connection``."""

    def __init__(
        self,
        connection: Connection,
        *,
        host: str,
        variables: Mapping[str, Any],
        check: bool = False,
        diff: bool = False,
        become_user: str | None = None,
        renderer: TemplateRenderer | None = None,
        file_dirs: Sequence[Path] = (),
        after_change: AfterChange | None = None,
        timeout: float | None = None,
    ) -> None:
        self.connection = connection
        self.timeout = timeout  # the task's `timeout:` keyword, bounding all its scripts together
        self._deadline = time.monotonic() + timeout if timeout else None
        self.host = host
        self.variables = variables
        self.check = check
        self.diff = diff
        self.become_user = become_user
        self._renderer = renderer
        self._file_dirs = list(file_dirs)
        self._after_change = after_change
        self.changed_host = False

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, readonly: bool = False
    ) -> CommandResult:
        """Run a script as the task's user; a changing script also re-probes the next tasks."""
        after = None if readonly else self._after_change
        probes = after.scripts() if after is not None else []
        if not probes:
            try:
                return self._run(SHELL_LIB + script, stdin, timeout)
            finally:
                if not readonly:
                    self.changed_host = True
                    if after is not None:
                        after.cache.invalidate()
        assert after is not None
        nonce = new_nonce()
        combined = after_change_script(script, probes, nonce)
        try:
            result = self._run(combined, stdin, timeout)
        finally:
            self.changed_host = True
            after.cache.invalidate()
        own, answers = split_after_change(result.stdout, len(probes), nonce)
        if answers is not None and result.rc >= 0:
            after.cache.store({(after.user, p): a for p, a in zip(probes, answers, strict=True) if a is not None})
        return CommandResult(result.rc, own, result.stderr)

    def _run(self, script: str, stdin: bytes | None, timeout: float | None) -> CommandResult:
        """One script, bounded by the module's timeout or what is left of the task's, whichever is shorter."""
        by_task = False
        if self._deadline is not None:
            left = max(self._deadline - time.monotonic(), 0.001)
            if timeout is None or left < timeout:
                timeout, by_task = left, True
        result = self.connection.run(script, stdin=stdin, become_user=self.become_user, timeout=timeout)
        if by_task and result.rc < 0 and "[provision: timed out" in result.stderr:
            raise TaskFailed(f"timed out: the task's bound (timeout: {self.timeout:g}) passed; its command was "
                             "cut and its processes on the host were ended",
                             hint="raise the task's timeout: if the step really needs longer")
        return result

    def fetch(self, remote_path: str, local_path: Path) -> None:
        """Copy a file from the host to the control host."""
        self.connection.fetch(remote_path, local_path, become_user=self.become_user)

    def render_template(self, name: str) -> RenderedTemplate:
        """Render ``name`` from the template search path with the host's variables."""
        if self._renderer is None:
            raise ArgumentError("templates are not available in this context")
        return self._renderer(name, self.variables)

    def find_file(self, name: str) -> Path:
        """Resolve a control-host file: absolute, else under each files/ dir, else each dir itself."""
        path = Path(name).expanduser()
        if path.is_absolute():
            if path.exists():
                return path
            raise ArgumentError(f"file not found on the control host: {path}")
        for base in self._file_dirs:
            for candidate in (base / "files" / path, base / path):
                if candidate.exists():
                    return candidate
        searched = ", ".join(str(d / "files") for d in self._file_dirs) or "(no directories)"
        raise ArgumentError(
            f"file {name!r} not found on the control host (searched {searched})",
            hint="put it under files/ beside the playbook, or give an absolute path",
        )

