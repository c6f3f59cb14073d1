"""The contract every task module keeps.

A module declares its arguments (``args``), may describe a read-only *probe* of the host's state
as a POSIX shell snippet, and decides and applies its change in ``run``. The runner batches the
probes of a run of upcoming tasks into one remote script on one channel, and throws the cached
results away as soon as a task changes the host, so a check always sees what earlier tasks left.

    class Directory(Module):
        name = "dir"
        args = {"path": Arg(str, required=True)}

        def probe(self, args):
            return f"pv_stat {quote(args['path'])}"

        def run(self, args, ctx, state):
            if parse_stat(state).type == "directory":
                return TaskResult.ok("exists")
            ...

Modules never print; they return a ``TaskResult``. In check mode (``ctx.check``) they change
nothing and report what would change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import ArgumentError
from ..events import Status


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one remote script."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 10) -> str:
        """The last lines of stderr (or stdout when stderr is empty), for error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


@dataclass
class TaskResult:
    """What a module reports; ``data`` is what ``register`` stores."""

    status: Status
    msg: str = ""
    diff: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, msg: str = "", **data: Any) -> TaskResult:
        return cls("ok", msg, data=data)

    @classmethod
    def changed(cls, msg: str = "", *, diff: str | None = None, **data: Any) -> TaskResult:
        return cls("changed", msg, diff=diff, data=data)

    @classmethod
    def failed(cls, msg: str, **data: Any) -> TaskResult:
        return cls("failed", msg, data=data)

    @classmethod
    def skipped(cls, msg: str = "", **data: Any) -> TaskResult:
        return cls("skipped", msg, data=data)

    @classmethod
    def from_command(cls, what: str, result: CommandResult) -> TaskResult:
        """A failed result that shows what ran, its exit code and the tail of its output."""
        return cls.failed(
            f"{what} failed (exit {result.rc})\n{result.tail()}".rstrip(),
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
        )


@dataclass(frozen=True)
class RenderedTemplate:
    """A template rendered on the control host."""

    text: str
    source: str


class TaskContext(Protocol):
    """What a module may use of the host and the run; provided by the runner."""

    host: str
    check: bool
    diff: bool
    variables: Mapping[str, Any]

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, readonly: bool = False
    ) -> CommandResult:
        """Run a POSIX sh script on the host as the task's user; ``SHELL_LIB`` is defined in it.

        ``stdin`` is fed to the script (file contents, secrets: never put those in the script's
        command line). ``readonly=True`` promises the script changed nothing, so cached probes of
        later tasks stay valid.
        """
        ...

    def fetch(self, remote_path: str, local_path: Path) -> None:
        """Copy a file from the host to the control host."""
        ...

    def render_template(self, name: str, extra: Mapping[str, Any] | None = None) -> RenderedTemplate:
        """Render a template from the project's or the built-in ``templates/`` with the host's vars."""
        ...

    def find_file(self, name: str) -> Path:
        """Resolve a control-host file named in a task (relative to the playbook's ``files/``)."""
        ...


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Arg:
    """One declared argument of a module."""

    type: type = str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    aliases: tuple[str, ...] = ()
    secret: bool = False
    help: str = ""

    def coerce(self, name: str, value: Any) -> Any:
        """Convert a (rendered) value to the declared type, or raise ArgumentError."""
        if value is None:
            return None
        if self.type is bool:
            value = _to_bool(name, value)
        elif self.type is int and not isinstance(value, bool):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ArgumentError(f"argument {name!r} must be an integer, got {value!r}") from None
        elif self.type is list:
            if isinstance(value, str | int | float):
                value = [value] if not isinstance(value, str) else [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise ArgumentError(f"argument {name!r} must be a list, got {type(value).__name__}")
            value = list(value)
        elif self.type is dict:
            if not isinstance(value, Mapping):
                raise ArgumentError(f"argument {name!r} must be a mapping, got {type(value).__name__}")
            value = dict(value)
        elif self.type is str:
            if isinstance(value, Mapping | list):
                raise ArgumentError(f"argument {name!r} must be a string, got {type(value).__name__}")
            value = value if isinstance(value, str) else str(value)
        if self.choices and value not in self.choices:
            choices = ", ".join(map(str, self.choices))
            raise ArgumentError(f"argument {name!r} must be one of {choices}, got {value!r}")
        return value


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1", "y"):
        return True
    if text in ("no", "false", "off", "0", "n", ""):
        return False
    raise ArgumentError(f"argument {name!r} must be true or false, got {value!r}")


class Module:
    """Base of every task module; subclasses set ``name`` and ``args`` and implement ``run``."""

    name: ClassVar[str]
    args: ClassVar[Mapping[str, Arg]] = {}
    # The argument that takes a free-form string (`command: ls -l`), if any.
    free_form: ClassVar[str | None] = None
    # Modules that run commands whose effect cannot be predicted are skipped in check mode.
    supports_check: ClassVar[bool] = True
    # Modules that take arbitrary names as arguments (set_fact) skip name validation.
    free_args: ClassVar[bool] = False

    def check_args(self, args: dict[str, Any]) -> None:
        """Cross-argument validation after coercion; raise ArgumentError with the fix."""

    def probe(self, args: dict[str, Any]) -> str | None:
        """A read-only shell snippet whose stdout ``run`` receives as ``state``; None for no probe."""
        return None

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        """Compare, then change the host unless ``ctx.check``; return the result."""
        raise NotImplementedError

    # -- argument handling shared by every module -------------------------------------------------

    @classmethod
    def canonical_names(cls) -> dict[str, str]:
        """Every accepted argument name (aliases included) mapped to its canonical name."""
        names = {name: name for name in cls.args}
        for name, arg in cls.args.items():
            names.update({alias: name for alias in arg.aliases})
        return names

    @classmethod
    def normalize(cls, raw: Any) -> dict[str, Any]:
        """Turn the YAML value under the module key into a dict of canonical names (unrendered).

        Raises ArgumentError for unknown names; the caller adds the task's source.
        """
        if raw is None:
            raw = {}
        if isinstance(raw, str) and cls.free_form:
            raw = {cls.free_form: raw}
        elif isinstance(raw, str):
            raw = key_value_args(raw, cls.canonical_names()) or raw
        if not isinstance(raw, Mapping):
            expected = f"a mapping of arguments or a string for {cls.free_form!r}" if cls.free_form else "a mapping"
            raise ArgumentError(f"module {cls.name!r} takes {expected}, got {type(raw).__name__}")
        if cls.free_args:
            return dict(raw)
        names = cls.canonical_names()
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in names:
                known = ", ".join(sorted(cls.args))
                raise ArgumentError(f"module {cls.name!r} has no argument {key!r} (it takes: {known})")
            out[names[key]] = value
        missing = [n for n, a in cls.args.items() if a.required and n not in out]
        if missing:
            raise ArgumentError(f"module {cls.name!r} needs argument(s): {', '.join(missing)}")
        return out

    @classmethod
    def coerce(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """Apply defaults and types to rendered arguments."""
        if cls.free_args:
            return dict(args)
        out: dict[str, Any] = {}
        for name, arg in cls.args.items():
            value = args.get(name, arg.default)
            out[name] = arg.coerce(name, value)
            if arg.required and out[name] in (None, ""):
                raise ArgumentError(f"module {cls.name!r}: argument {name!r} must not be empty")
        return out

    @classmethod
    def secret_args(cls) -> tuple[str, ...]:
        """Names of the arguments whose values are redacted from all output."""
        return tuple(name for name, arg in cls.args.items() if arg.secret)


def type_name(kind: type) -> str:
    """Human name of an argument type, for help and errors."""
    return _TYPE_NAMES.get(kind, kind.__name__)


def key_value_args(text: str, names: Mapping[str, str]) -> dict[str, str] | None:
    """Ansible's one-line ``name=value name2="two words"`` form, when every name is an argument."""
    import shlex

    try:
        words = shlex.split(text)
    except ValueError:
        return None
    pairs = [word.partition("=") for word in words]
    if not pairs or any(not sep or key not in names for key, sep, _ in pairs):
        return None
    return {key: value for key, _, value in pairs}
