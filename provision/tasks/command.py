"""``command`` and ``shell``: run a program on the host, guarded by ``creates``/``removes``.

The guards are probed with the batch, so a converged guarded command costs no extra call. In
check mode the command is skipped ("would run") unless a guard shows it would not run (ok), as
Ansible's command module does; ``run`` decides that itself, so the runner must call it.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from ..contract import rc_decides
from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .shell import quote

_ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class Guard:
    """Whether ``creates``/``removes`` let the command run."""

    run: bool
    reason: str = ""


def guard_paths(args: dict[str, Any]) -> dict[str, str]:
    """``creates``/``removes`` paths, relative ones taken from ``chdir`` as Ansible does."""
    paths: dict[str, str] = {}
    for key in ("creates", "removes"):
        value = args.get(key)
        if value:
            if not value.startswith("/") and args.get("chdir"):
                value = f"{args['chdir'].rstrip('/')}/{value}"
            paths[key] = value
    return paths


def glob_word(pattern: str) -> str:
    """``pattern`` as one shell word where only ``*`` and ``?`` glob; everything else is quoted."""
    parts = re.split(r"([*?]+)", pattern)
    return "".join(part if i % 2 else (quote(part) if part else "") for i, part in enumerate(parts))


def guard_probe(args: dict[str, Any]) -> str | None:
    """Probe lines ``creates present|absent`` / ``removes present|absent``; ``*`` and ``?`` glob as in Ansible."""
    lines = []
    for key, path in guard_paths(args).items():
        if "*" in path or "?" in path:
            lines.append(
                f"_pv_g=absent; for _pv_f in {glob_word(path)}; do "
                f'if [ -e "$_pv_f" ] || [ -L "$_pv_f" ]; then _pv_g=present; break; fi; done; echo {key} "$_pv_g"'
            )
        else:
            q = quote(path)
            lines.append(f"if [ -e {q} ] || [ -L {q} ]; then echo {key} present; else echo {key} absent; fi")
    return "\n".join(lines) if lines else None


def decide_guard(args: dict[str, Any], state: str | None) -> Guard:
    """Whether the command runs, from the probe's output."""
    seen = dict(line.split(" ", 1) for line in (state or "").splitlines() if " " in line)
    paths = guard_paths(args)
    if "creates" in paths and seen.get("creates") == "present":
        return Guard(False, f"skipped, since {paths['creates']} exists")
    if "removes" in paths and seen.get("removes") == "absent":
        return Guard(False, f"skipped, since {paths['removes']} does not exist")
    return Guard(True)


def env_lines(env: dict[str, Any] | None) -> list[str]:
    """``export NAME=value`` lines; names are checked, values quoted."""
    lines = []
    for name, value in (env or {}).items():
        if not name or name[0].isdigit() or not set(name) <= _ENV_NAME_CHARS:
            raise ArgumentError(f"env: {name!r} is not a valid environment variable name")
        lines.append(f"export {name}={quote('' if value is None else str(value))}")
    return lines


def command_script(args: dict[str, Any], command_line: str) -> str:
    """The script that runs ``command_line`` in ``chdir`` with ``env``; its rc is the command's."""
    lines = []
    if args.get("chdir"):
        lines.append(f"cd -- {quote(args['chdir'])} || exit 1")
    lines += env_lines(args.get("env"))
    lines.append(command_line)
    return "\n".join(lines) + "\n"


class _Runner(Module):
    """What ``command`` and ``shell`` share: guards, stdin, timeout, result data."""

    free_form = "cmd"
    # In check mode the engine skips the command (check_skips) unless a guard says it would not run.
    runs_command_line = True
    shell: ClassVar[bool] = False

    def command_line(self, args: dict[str, Any]) -> str:
        raise NotImplementedError

    def in_subshell(self, args: dict[str, Any]) -> bool:
        """Whether the command line is one subshell: with no chdir or env before it, so is the whole
        script, and a change batch needs no second one around it (``Plan.inline``)."""
        return False

    def display(self, args: dict[str, Any]) -> str:
        """The command as the user wrote it, for messages and ``cmd`` in the result."""
        if args.get("argv"):
            return shlex.join(str(word) for word in args["argv"])
        return str(args.get("cmd") or "")

    def check_args(self, args: dict[str, Any]) -> None:
        if not args.get("cmd") and not args.get("argv"):
            raise ArgumentError(f"{self.name}: give the command (free form or cmd)")
        if args.get("timeout") is not None and args["timeout"] <= 0:
            raise ArgumentError(f"{self.name}: timeout must be a positive number of seconds")
        env_lines(args.get("env"))

    def facts(self, args: dict[str, Any]) -> Probe[str] | None:
        probe = guard_probe(args)
        return Probe(probe, str) if probe is not None else None

    def plan(self, args: dict[str, Any], facts: str | None, ctx: PlanContext) -> Plan:
        cmd = self.display(args)
        guard = decide_guard(args, facts)
        if not guard.run:
            return Plan(guard.reason, data={"cmd": cmd, "rc": 0, "stdout": "", "stderr": "", "stdout_lines": [],
                                            "stderr_lines": []})
        stdin = args.get("stdin")
        data: bytes | None = None
        if stdin is not None:
            text = str(stdin)
            if args.get("stdin_add_newline", True) and not text.endswith("\n"):
                text += "\n"
            data = text.encode()
        script = command_script(args, self.command_line(args))
        # The plan is applied right after it is made: its start is the command's.
        start = datetime.now()
        began = time.monotonic()

        # Fails exactly when the command exits non-zero, so it may run in a batch (its start and
        # delta then count from when the batch was planned).
        @rc_decides
        def outcome(result: CommandResult, _data: dict[str, Any]) -> TaskResult:
            delta = time.monotonic() - began
            return command_outcome(cmd, result, start=start, end=datetime.now(), delta=delta,
                                   timeout=args.get("timeout"))

        return Plan(f"ran {cmd}", script=script, stdin=data, data={"cmd": cmd}, check_msg=f"would run: {cmd}",
                    check_skips=True, outcome=outcome, timeout=args.get("timeout"),
                    inline=data is None and not args.get("chdir") and not args.get("env") and self.in_subshell(args))


def command_outcome(
    cmd: str, result: CommandResult, *, start: datetime, end: datetime, delta: float, timeout: float | None
) -> TaskResult:
    """changed with rc/stdout/stderr when it exited 0, else failed with the tail of its output."""
    stdout = result.stdout.removesuffix("\n")
    stderr = result.stderr.removesuffix("\n")
    data: dict[str, Any] = {
        "cmd": cmd,
        "rc": result.rc,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_lines": stdout.splitlines(),
        "stderr_lines": stderr.splitlines(),
        "start": start.isoformat(sep=" "),
        "end": end.isoformat(sep=" "),
        "delta": f"{delta:.3f}s",
    }
    if result.ok:
        return TaskResult.changed("", **data)
    if result.rc < 0 and timeout:
        return TaskResult.failed(f"{cmd!r} timed out after {timeout:g}s (raise timeout: if it needs longer)", **data)
    return TaskResult.failed(f"{cmd!r} failed (exit {result.rc})\n{result.tail()}".rstrip(), **data)


_COMMON_ARGS = {
    "cmd": Arg(str, help="the command line"),
    "chdir": Arg(str, help="directory to run in"),
    "creates": Arg(str, help="skip when this path exists"),
    "removes": Arg(str, help="skip when this path does not exist"),
    "env": Arg(dict, help="environment variables exported for the command"),
    "stdin": Arg(str, help="data fed to the command's standard input"),
    "stdin_add_newline": Arg(bool, default=True, help="end stdin with a newline"),
    "timeout": Arg(int, help="seconds before the command is cut off (fails)"),
}


class Command(_Runner):
    """Run a program with its words quoted (no shell features: no pipes, globs, variables).

    cmd: the command line (free form), split like a shell would, each word passed as is
    argv: the command as a list of words (instead of cmd)
    chdir: directory to run in
    creates: skip when this path exists (relative: from chdir; * and ? match as globs)
    removes: skip when this path does not exist (relative: from chdir; * and ? match as globs)
    env: mapping of environment variables for the command
    stdin: data fed to the command's standard input (stdin_add_newline: end it with a newline, default true)
    timeout: seconds before the command is cut off and the task fails
    """

    name = "command"
    args = {**_COMMON_ARGS, "argv": Arg(list, help="the command as a list of words")}

    def check_args(self, args: dict[str, Any]) -> None:
        if args.get("cmd") and args.get("argv"):
            raise ArgumentError("command: give either cmd (free form) or argv, not both")
        super().check_args(args)
        if args.get("cmd"):
            try:
                shlex.split(args["cmd"])
            except ValueError as exc:
                raise ArgumentError(f"command: cannot split {args['cmd']!r} into words: {exc}") from None

    def command_line(self, args: dict[str, Any]) -> str:
        words = [str(w) for w in args["argv"]] if args.get("argv") else shlex.split(args["cmd"])
        return " ".join(quote(word) for word in words)


class Shell(_Runner):
    """Run the text with ``sh`` (pipes, redirections, variables and globs work).

    cmd: the shell text (free form)
    executable: the shell to run it with (default /bin/sh)
    chdir: directory to run in
    creates: skip when this path exists (relative: from chdir; * and ? match as globs)
    removes: skip when this path does not exist (relative: from chdir; * and ? match as globs)
    env: mapping of environment variables for the command
    stdin: data fed to the command's standard input (stdin_add_newline: end it with a newline, default true)
    timeout: seconds before the command is cut off and the task fails
    """

    name = "shell"
    shell = True
    args = {**_COMMON_ARGS, "executable": Arg(str, default="/bin/sh", help="the shell that runs the text")}

    def command_line(self, args: dict[str, Any]) -> str:
        # A subshell, so the user's `exit`, `set -e` or traps cannot touch the framing script; the
        # text is eval'd there rather than passed to `sh -c`, so it never shows in `ps` (it may
        # hold secrets). Another executable can only take the text as an argument.
        if self.in_subshell(args):
            return f"( eval {quote(args['cmd'])} )"
        return f"{quote(args.get('executable') or '/bin/sh')} -c {quote(args['cmd'])}"

    def in_subshell(self, args: dict[str, Any]) -> bool:
        return (args.get("executable") or "/bin/sh") in ("/bin/sh", "sh")
