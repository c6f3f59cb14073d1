"""The exceptions of provision, and the exit codes they map to.

Every error a user can meet on purpose is a ``ProvisionError``: it carries a one-paragraph
message, where in the user's files it comes from (``source``), and what to do next (``hint``).
The CLI prints ``str(error)`` and exits with ``error.exit_code``; no traceback unless ``-vv``.

    ProvisionError
    ├── InputError                  bad input, nothing ran (exit 4)
    │   ├── InventoryError          inventory file, group_vars/host_vars, --limit patterns
    │   ├── PlaybookError           playbook structure, unknown module, includes
    │   ├── ArgumentError           a task's arguments do not fit its module
    │   ├── TemplateError           Jinja2 syntax, undefined variable, missing template
    │   └── OptionsError            command-line options
    ├── ConnectError                a host cannot be reached (exit 3)
    │   ├── AuthError               the host refused every credential offered
    │   └── HostKeyError            unknown or changed host key
    ├── TaskFailed                  a task failed on a host (exit 2)
    ├── BackupError                 a backup could not be made, pulled or verified (exit 2)
    └── LabError                    the local lab could not be built or torn down (exit 1)
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 2
EXIT_UNREACHABLE = 3
EXIT_BAD_INPUT = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Source:
    """Where something came from in the user's files."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class ProvisionError(Exception):
    """Base of every expected error."""

    exit_code = 1

    def __init__(self, message: str, *, source: Source | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" if self.source else self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class InputError(ProvisionError):
    """Bad input: the run stops before anything touches a host."""

    exit_code = EXIT_BAD_INPUT


class InventoryError(InputError):
    """The inventory, its group_vars/host_vars, or a host pattern is wrong."""


class PlaybookError(InputError):
    """A playbook or task file is malformed."""


class ArgumentError(InputError):
    """A task's arguments do not fit its module."""


class TemplateError(InputError):
    """A template or expression cannot be rendered."""


class OptionsError(InputError):
    """Command-line options are wrong or contradict each other."""


class ConnectError(ProvisionError):
    """A host cannot be reached or logged into."""

    exit_code = EXIT_UNREACHABLE


class AuthError(ConnectError):
    """The host refused every credential offered."""


class HostKeyError(ConnectError):
    """The host's key is unknown or differs from the pinned one."""


class TaskFailed(ProvisionError):
    """A task failed on a host."""

    exit_code = EXIT_FAILED


class BackupError(ProvisionError):
    """A backup could not be made, pulled or verified."""

    exit_code = EXIT_FAILED


class LabError(ProvisionError):
    """The local lab could not be brought up or down."""
