"""Run a task module the way the runner does (normalize, coerce, check_args, probe, run), for module tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provision.apply import execute_module
from provision.connection import LocalConnection
from provision.context import HostContext
from provision.tasks.base import Module, TaskResult


def local_context(
    *, check: bool = False, diff: bool = False, file_dirs: tuple[Path, ...] = (), renderer: Any = None
) -> HostContext:
    """A HostContext on this machine (as the current user)."""
    return HostContext(
        LocalConnection(), host="local", variables={}, check=check, diff=diff, file_dirs=file_dirs, renderer=renderer
    )


def run_task(module_cls: type[Module], raw: Any, ctx: HostContext) -> TaskResult:
    """normalize → coerce → check_args → probe (one readonly call) → the engine applies the module."""
    module = module_cls()
    args = module_cls.coerce(module_cls.normalize(raw))
    module.check_args(args)
    script = module.probe(args)
    state = ctx.run(script, readonly=True).stdout if script is not None else None
    return execute_module(module, args, ctx, state)


def tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """A full listing of a directory tree: relative path → (kind, mode, content or link target)."""
    listing: dict[str, tuple[str, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            listing[rel] = ("link", st.st_mode, str(path.readlink()))
        elif path.is_dir():
            listing[rel] = ("dir", st.st_mode, b"")
        else:
            listing[rel] = ("file", st.st_mode, path.read_bytes())
    return listing


def args_of(module_cls: type[Module], raw: Mapping[str, Any] | str) -> dict[str, Any]:
    """Raw YAML arguments as run() gets them."""
    return module_cls.coerce(module_cls.normalize(raw))


class FakeContext:
    """A TaskContext that records scripts and answers from a queue (for decision tests)."""

    def __init__(self, *, check: bool = False, diff: bool = False, results: list[Any] | None = None) -> None:
        from provision.tasks.base import CommandResult

        self.host = "web1"
        self.check = check
        self.diff = diff
        self.variables: Mapping[str, Any] = {}
        self.calls: list[tuple[str, bytes | None, bool]] = []
        self.results = list(results or [])
        self.default = CommandResult(0, "", "")
        self.templates: dict[str, str] = {}
        self.files: dict[str, Path] = {}
        self.fetched: dict[str, bytes] = {}

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, readonly: bool = False
    ) -> Any:
        self.calls.append((script, stdin, readonly))
        return self.results.pop(0) if self.results else self.default

    @property
    def changes(self) -> list[tuple[str, bytes | None, bool]]:
        """The calls that were allowed to change the host."""
        return [call for call in self.calls if not call[2]]

    def fetch(self, remote_path: str, local_path: Path) -> None:
        local_path.write_bytes(self.fetched[remote_path])

    def render_template(self, name: str) -> Any:
        from provision.tasks.base import RenderedTemplate

        return RenderedTemplate(self.templates[name], name)

    def find_file(self, name: str) -> Path:
        from provision.errors import ArgumentError

        if name not in self.files:
            raise ArgumentError(f"file {name!r} not found on the control host")
        return self.files[name]


def sessions(ctx: HostContext) -> int:
    """How many scripts a local context has run (each is one channel over SSH)."""
    connection = ctx.connection
    assert isinstance(connection, LocalConnection)
    return connection.sessions
