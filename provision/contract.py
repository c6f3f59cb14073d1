"""The contract every task module keeps.

A module declares its arguments (``args``), the typed *fact* it decides from (``facts``: a
read-only shell command and its parser) and a pure ``plan``: what would change, with its diff.
The engine batches the facts of a run of upcoming tasks into one remote script on one channel
(throwing the answers away as soon as a task changes the host, so a plan always sees what earlier
tasks left), then applies the plan, or in check mode only reports it (``provision.apply``):

    class Directory(Module):
        name = "dir"
        args = {"path": Arg(str, required=True)}

        def facts(self, args):
            return PathState(args["path"])          # provision.tasks.facts

        def plan(self, args, facts, ctx):
            if facts.type == "directory":
                return Plan()                        # converged
            return Plan(f"created {args['path']}", script=f"mkdir -- {quote(args['path'])}")

A module has no check-mode or diff-mode code of its own. Modules not converted yet implement the
older ``probe``/``run`` pair (``run`` gets the probe's raw output and ``ctx.check``). Modules never
print; the engine turns a plan into a ``TaskResult``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .errors import ArgumentError
from .events import Status

T = TypeVar("T")


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

    def render_template(self, name: str) -> RenderedTemplate:
        """Render a template from the project's or the built-in ``templates/`` with the host's vars."""
        ...

    def find_file(self, name: str) -> Path:
        """Resolve a control-host file named in a task (relative to the playbook's ``files/``)."""
        ...


class Fact(Generic[T]):
    """A typed read of a host's state: a read-only shell command and the parser of its output.

    The engine sends ``command()`` in a batch with the other upcoming tasks' (``provision.probes``)
    and gives ``parse(output)`` to the module's ``plan``. Facts are reusable across modules
    (``provision.tasks.facts``); equal commands are read once.
    """

    # A read that may fail on its own (``git ls-remote``): a non-zero exit raises ``FactReadFailed``
    # from ``PlanContext.read``, bounded by ``timeout`` seconds.
    checks_exit: ClassVar[bool] = False
    timeout: ClassVar[float | None] = None

    def command(self) -> str:
        raise NotImplementedError

    def parse(self, output: str) -> T:
        raise NotImplementedError

    def absent_path(self) -> str | None:
        """A path whose absence alone decides this read's whole answer (None: there is none).

        When the answer was "absent" for it, a batch checks that answer again with the shell's own
        tests, without starting a process (``provision.changebatch``).
        """
        return None


class FactReadFailed(Exception):
    """A ``checks_exit`` fact's command failed; ``result`` says how."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.tail())
        self.result = result


class PlanContext(Protocol):
    """What a ``plan`` may use: control-host files and templates, and further facts. Nothing changes."""

    host: str
    variables: Mapping[str, Any]
    become_user: str | None  # whom the change runs as (None: the login user)

    def read(self, fact: Fact[T]) -> T:
        """Read one more fact now, on its own (a plan that needs facts its arguments did not name)."""
        ...

    def render_template(self, name: str) -> RenderedTemplate:
        """Render a template from the project's or the built-in ``templates/`` with the host's vars."""
        ...

    def find_file(self, name: str) -> Path:
        """Resolve a control-host file named in a task (relative to the playbook's ``files/``)."""
        ...


Outcome = Callable[[CommandResult, dict[str, Any]], "TaskResult | None"]


def rc_decides(outcome: Outcome) -> Outcome:
    """Mark a plan's ``outcome`` as failing exactly when its script exits non-zero, and reading
    nothing but that script's own result: such a change may travel in a batch with the next ones
    (``provision.batching``), since the host can tell where the batch must stop."""
    outcome.rc_decides = True  # type: ignore[attr-defined]
    return outcome


def outcome_rc_decides(outcome: Outcome | None) -> bool:
    return outcome is None or bool(getattr(outcome, "rc_decides", False))


@dataclass
class Plan:
    """What a task would change, decided from its facts alone; the engine applies it (or, in check
    mode, only reports it). A plan with no ``script`` and no ``error`` is converged.

    ``msg`` says what the change does ("created /srv/x") or why none is needed; check mode reports
    ``check_msg`` (default "would have <msg>"). ``error`` fails the task before anything runs,
    except in check mode when ``pending`` says the error may be an earlier task's doing (a link's
    source that task creates). ``diff`` is computed only in diff mode; ``what`` names the change
    when its script fails; ``outcome`` reads the script's result (a backup's path, a validation
    that failed) and may replace the engine's result.
    """

    msg: str = ""
    script: str = ""
    stdin: bytes | None = None
    data: dict[str, Any] = field(default_factory=dict)
    diff: Callable[[PlanContext], str] | None = None
    error: str | None = None
    pending: str | None = None
    check_msg: str | None = None
    what: str = ""
    outcome: Callable[[CommandResult, dict[str, Any]], TaskResult | None] | None = None
    timeout: float | None = None  # seconds the script may take (None: the task's own bound only)
    # A change whose effect cannot be predicted (a command): check mode skips it with check_msg
    # (and a pending error with its message) instead of reporting a change.
    check_skips: bool = False
    # A change made from the control host instead of a script (fetch writes a local file).
    control_host: Callable[[TaskContext], TaskResult] | None = None
    # A change in steps: once the script ran (ok or not), the next plan (or the final result) from
    # its result and, if needed, further facts. Check mode reports the first step's check_msg only.
    then: Callable[[CommandResult, PlanContext], Plan | TaskResult] | None = None
    # Nothing to do here at all (a site without TLS): the task is reported skipped with ``msg``.
    skipped: bool = False
    # What the module's own fact will answer once the script succeeded, when the module can tell
    # (None: it cannot). The next change of the same thing may then be planned from it in the
    # same batch (provision.batching); the host checks the prediction before that change runs.
    predicts: str | None = None
    # ``predicts`` is certain, not a guess (no owner taken for granted): a change planned from it
    # right after this one needs no check on the host, as nothing else ran in between.
    predicts_exactly: bool = False
    # The script reads exactly ``stdin`` before anything can end it (an atomic file write): in a
    # change batch it then takes its bytes straight from the channel (``tasks.shell.reads_exactly_first``).
    reads_stdin_first: bool = False
    # The script is safe to run in a change batch's own shell, without a subshell: it never exits,
    # sets no option, trap, umask, directory or variable, and its status is its outcome
    # (``tasks.shell.chain``). It reads no stdin.
    inline: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.script or self.control_host) and self.error is None


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
    # A module that cannot tell what it would do without doing it sets this False: the engine
    # then skips it in check mode (with ``check_mode_msg``), as Ansible skips such modules.
    supports_check: ClassVar[bool] = True
    # Modules that take arbitrary names as arguments (set_fact) skip name validation.
    free_args: ClassVar[bool] = False
    # What the engine does around a module, said by the module rather than by its name:
    # ``result.data["facts"]`` become host variables (set_fact) ...
    sets_variables: ClassVar[bool] = False
    # ... the look-ahead does not probe past it (its effect on later tasks' arguments is unknown) ...
    stops_lookahead: ClassVar[bool] = False
    # ... and the engine acts on the task itself (meta: flush_handlers, end_host).
    steers_run: ClassVar[bool] = False
    # The arguments become a command line on the host (command, shell): the engine warns when a
    # secret would show in `ps` there.
    runs_command_line: ClassVar[bool] = False

    def prepare(self, args: dict[str, Any], evaluate: Callable[[str], Any]) -> None:
        """Fill in arguments that are expressions on the task's variables (``evaluate`` one: its value)."""

    @classmethod
    def templates(cls, args: Mapping[str, Any]) -> list[Any]:
        """Template names the task renders (checked before the run when they are literal)."""
        return []

    def check_args(self, args: dict[str, Any]) -> None:
        """Cross-argument validation after coercion; raise ArgumentError with the fix."""

    def facts(self, args: dict[str, Any]) -> Fact[Any] | None:
        """The fact ``plan`` decides from (None: it needs none)."""
        return None

    def plan(self, args: dict[str, Any], facts: Any, ctx: PlanContext) -> Plan:
        """What would change, from the parsed facts alone; the engine applies it or reports it."""
        raise NotImplementedError

    @classmethod
    def plans(cls) -> bool:
        """True for a module that keeps the plan contract (``facts`` + ``plan``), not its own ``run``."""
        return cls.plan is not Module.plan

    def probe(self, args: dict[str, Any]) -> str | None:
        """The read-only shell snippet the engine batches: the command of ``facts`` by default."""
        fact = self.facts(args)
        return fact.command() if fact is not None else None

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        """The older contract, for modules not yet planned: compare, change unless ``ctx.check``."""
        raise NotImplementedError

    def check_mode_msg(self, args: dict[str, Any]) -> str:
        """Why a module without check-mode support was skipped in check mode."""
        return f"skipped in check mode: {self.name} cannot tell what it would do without doing it"

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
    def arg_help(cls) -> dict[str, str]:
        """Each argument's help: its ``Arg.help``, else its ``name: text`` line in the class docstring."""
        documented: dict[str, str] = {}
        for line in (cls.__doc__ or "").splitlines():
            name, sep, text = line.strip().partition(": ")
            if sep and name in cls.args and name not in documented:
                documented[name] = text.strip()
        return {name: arg.help or documented.get(name, "") for name, arg in cls.args.items()}

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
