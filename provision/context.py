"""The ``TaskContext`` a module gets: one host's connection, as the task's user, in this run's mode."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .connection import Connection
from .errors import ArgumentError
from .tasks.base import CommandResult, RenderedTemplate
from .tasks.shell import SHELL_LIB

TemplateRenderer = Callable[[str, Mapping[str, Any]], RenderedTemplate]


class HostContext:
    """Implements ``provision.tasks.base.TaskContext`` over a ``Connection``."""

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
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.connection = connection
        self.host = host
        self.variables = variables
        self.check = check
        self.diff = diff
        self.become_user = become_user
        self._renderer = renderer
        self._file_dirs = list(file_dirs)
        self._on_change = on_change
        self.changed_host = False

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, readonly: bool = False
    ) -> CommandResult:
        """Run a script as the task's user; a non-readonly script invalidates cached probes."""
        try:
            return self.connection.run(SHELL_LIB + script, stdin=stdin, become_user=self.become_user, timeout=timeout)
        finally:
            if not readonly:
                self.changed_host = True
                if self._on_change is not None:
                    self._on_change()

    def fetch(self, remote_path: str, local_path: Path) -> None:
        """Copy a file from the host to the control host."""
        self.connection.fetch(remote_path, local_path, become_user=self.become_user)

    def render_template(self, name: str, extra: Mapping[str, Any] | None = None) -> RenderedTemplate:
        """Render ``name`` from the template search path with the host's variables (+ ``extra``)."""
        if self._renderer is None:
            raise ArgumentError("templates are not available in this context")
        merged: Mapping[str, Any] = {**self.variables, **extra} if extra else self.variables
        return self._renderer(name, merged)

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
