"""command and shell: quoting, guards from canned probes, check mode, results, arguments."""

from __future__ import annotations

from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.command import Command, Shell, decide_guard, glob_word, guard_probe
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit


def args(cls: type[Command] | type[Shell], raw: Any) -> dict[str, Any]:
    parsed = args_of(cls, raw)
    cls().check_args(parsed)
    return parsed


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ("echo hello", "echo hello"),
        ("echo 'a b' $HOME *", "echo 'a b' '$HOME' '*'"),
        ('printf "%s\\n" x;y', "printf '%s\\n' 'x;y'"),
        ({"argv": ["ls", "-l", "my dir"]}, "ls -l 'my dir'"),
        ({"argv": ["echo", 5]}, "echo 5"),
    ],
)
def test_command_quotes_words(raw: Any, line: str) -> None:
    assert Command().command_line(args(Command, raw)) == line


def test_shell_runs_text_in_a_subshell_without_putting_it_in_argv() -> None:
    assert Shell().command_line(args(Shell, "ls | wc -l")) == "( eval 'ls | wc -l' )"
    assert Shell().command_line(args(Shell, {"cmd": "echo", "executable": "/bin/bash"})) == "/bin/bash -c echo"


@pytest.mark.parametrize(("cls", "raw", "inline"), [
    (Shell, "echo hi", True),
    (Shell, {"cmd": "echo hi", "chdir": "/srv"}, False),  # its `cd || exit` runs in the script's shell
    (Shell, {"cmd": "echo hi", "env": {"A": "1"}}, False),
    (Shell, {"cmd": "cat", "stdin": "data"}, False),
    (Shell, {"cmd": "echo", "executable": "/bin/bash"}, False),
    (Command, "exit 3", False),  # a plain command line may be a builtin that ends the shell
])  # fmt: skip
def test_only_a_script_that_is_one_subshell_may_run_in_a_batchs_shell(cls: type[Command], raw: Any,
                                                                    inline: bool) -> None:
    assert cls().plan(args(cls, raw), None, FakeContext()).inline is inline


GUARDS = [
    ({"creates": "/a"}, "creates present", False, "skipped, since /a exists"),
    ({"creates": "/a"}, "creates absent", True, ""),
    ({"removes": "/a"}, "removes absent", False, "skipped, since /a does not exist"),
    ({"removes": "/a"}, "removes present", True, ""),
    ({"creates": "/a", "removes": "/b"}, "creates absent\nremoves present", True, ""),
    ({"creates": "/a", "removes": "/b"}, "creates absent\nremoves absent", False, "skipped, since /b does not exist"),
    ({"creates": "out", "chdir": "/srv"}, "creates present", False, "skipped, since /srv/out exists"),
    ({}, None, True, ""),
]


@pytest.mark.parametrize(("guards", "probe", "runs", "reason"), GUARDS)
def test_guards(guards: dict[str, str], probe: str | None, runs: bool, reason: str) -> None:
    guard = decide_guard(args(Command, {"cmd": "make", **guards}), probe)
    assert (guard.run, guard.reason) == (runs, reason)


def test_guard_probe() -> None:
    assert guard_probe(args(Command, "make")) is None
    probe = guard_probe(args(Command, {"cmd": "make", "creates": "b i n", "chdir": "/srv"}))
    assert probe == (
        "if [ -e '/srv/b i n' ] || [ -L '/srv/b i n' ]; then echo creates present; else echo creates absent; fi"
    )


def test_guarded_converged_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Command(), args(Command, {"cmd": "make", "creates": "/a"}), ctx, "creates present")
    assert result.status == "ok" and result.msg == "skipped, since /a exists" and ctx.calls == []


def test_check_mode_skips_unless_guarded() -> None:
    ctx = FakeContext(check=True)
    skipped = execute_module(Command(), args(Command, "make install"), ctx, None)
    assert skipped.status == "skipped" and skipped.msg == "would run: make install"
    guarded = execute_module(Command(), args(Command, {"cmd": "make", "creates": "/a"}), ctx, "creates present")
    assert guarded.status == "ok"
    assert ctx.calls == []


def test_run_script_env_chdir_stdin() -> None:
    ctx = FakeContext(results=[CommandResult(0, "one\ntwo\n", "warn\n")])
    raw = {"cmd": "cat", "chdir": "/srv/app", "env": {"A_B": "x y", "N": 1}, "stdin": "data", "timeout": 9}
    result = execute_module(Command(), args(Command, raw), ctx, None)
    [(script, stdin, readonly)] = ctx.calls
    assert script == "cd -- /srv/app || exit 1\nexport A_B='x y'\nexport N=1\ncat\n"
    assert stdin == b"data\n" and not readonly
    assert result.status == "changed"
    data = result.data
    assert (data["rc"], data["stdout"], data["stderr"]) == (0, "one\ntwo", "warn")
    assert data["stdout_lines"] == ["one", "two"] and data["stderr_lines"] == ["warn"]
    assert data["cmd"] == "cat" and {"start", "end", "delta"} <= set(data)


def test_stdin_without_added_newline() -> None:
    ctx = FakeContext()
    execute_module(Command(), args(Command, {"cmd": "cat", "stdin": "x", "stdin_add_newline": False}), ctx, None)
    assert ctx.calls[0][1] == b"x"


def test_failure_shows_exit_code_and_stderr_tail() -> None:
    stderr = "".join(f"line {n}\n" for n in range(30))
    ctx = FakeContext(results=[CommandResult(2, "", stderr)])
    result = execute_module(Command(), args(Command, "make"), ctx, None)
    assert result.status == "failed"
    assert result.msg.startswith("'make' failed (exit 2)\nline 20\n") and result.msg.endswith("line 29")
    assert result.data["rc"] == 2


def test_timeout_message() -> None:
    ctx = FakeContext(results=[CommandResult(-1, "", "[timed out]")])
    result = execute_module(Command(), args(Command, {"cmd": "sleep 99", "timeout": 5}), ctx, None)
    assert result.status == "failed" and "timed out after 5s" in result.msg


BAD = [
    (Command, {}, "give the command"),
    (Command, {"cmd": "a", "argv": ["b"]}, "not both"),
    (Command, {"cmd": "echo 'unterminated"}, "cannot split"),
    (Command, {"cmd": "a", "env": {"1X": "y"}}, "not a valid environment variable"),
    (Command, {"cmd": "a", "env": {"A-B": "y"}}, "not a valid environment variable"),
    (Command, {"cmd": "a", "timeout": 0}, "positive"),
    (Shell, {"argv": ["a"]}, "no argument 'argv'"),
]


@pytest.mark.parametrize(("cls", "raw", "error"), BAD)
def test_bad_arguments(cls: type[Command], raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        args(cls, raw)


@pytest.mark.parametrize(
    ("pattern", "word"),
    [
        ("/srv/*.done", "/srv/*.done"),
        ("/my dir/?.lock", "'/my dir/'?.lock"),
        ("$(reboot)*", "'$(reboot)'*"),
        ("/a/[ab]*", "'/a/[ab]'*"),
    ],
)
def test_glob_word_only_globs_star_and_question_mark(pattern: str, word: str) -> None:
    assert glob_word(pattern) == word


def test_glob_guard_probe() -> None:
    probe = guard_probe(args(Command, {"cmd": "make", "creates": "/srv/*.done"}))
    assert probe is not None and "for _pv_f in /srv/*.done; do" in probe
