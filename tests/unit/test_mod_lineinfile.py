"""lineinfile: Ansible's line rules as a table, argument checks, and decisions from canned probe output."""

from __future__ import annotations

from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.lineinfile import LineInFile, edit_lines, lineinfile_probe, parse_probe
from provision.tasks.shell import write_input
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

STAT_FILE = "file\t644\troot\troot\t10\t-\t-"

# (id, text before, keyword args, text after, msg) — msg "" means unchanged.
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("append at end", "a\nb\n", {"line": "c"}, "a\nb\nc\n", "line added"),
    ("already there", "a\nc\nb\n", {"line": "c"}, "a\nc\nb\n", ""),
    ("new file", "", {"line": "c"}, "c\n", "line added"),
    ("no final newline", "a", {"line": "b"}, "a\nb\n", "line added"),
    # As in Ansible: the CRLF line is found, then rewritten with the module's line ending.
    ("crlf line is normalized", "a\r\nb\r\n", {"line": "a"}, "a\nb\r\n", "line replaced"),
    ("regexp: last match replaced", "x=1\ny\nx=2\n", {"line": "x=9", "regexp": "^x="}, "x=1\ny\nx=9\n",
     "line replaced"),
    ("regexp firstmatch", "x=1\ny\nx=2\n", {"line": "x=9", "regexp": "^x=", "firstmatch": True}, "x=9\ny\nx=2\n",
     "line replaced"),
    ("regexp matches the wanted line", "a\nx=9\n", {"line": "x=9", "regexp": "^x="}, "a\nx=9\n", ""),
    ("regexp no match, line present", "bar\n", {"line": "bar", "regexp": "^foo"}, "bar\n", ""),
    ("regexp no match: append", "a\n", {"line": "x=1", "regexp": "^x="}, "a\nx=1\n", "line added"),
    ("regexp replaces last line without newline", "a\nx=1", {"line": "x=2", "regexp": "^x="}, "a\nx=2\n",
     "line replaced"),
    ("regexp wins over insertafter", "x=1\na\n", {"line": "x=2", "regexp": "^x=", "insertafter": "^a"}, "x=2\na\n",
     "line replaced"),
    ("regexp with $ matches before newline", "port 22\n", {"line": "port 2222", "regexp": "^port 22$"},
     "port 2222\n", "line replaced"),
    ("search_string replaced", "a\nListen 80\n", {"line": "Listen 8080", "search_string": "Listen 80"},
     "a\nListen 8080\n", "line replaced"),
    ("search_string is literal", "a.b\naxb\n", {"line": "z", "search_string": "a.b"}, "z\naxb\n", "line replaced"),
    ("search_string firstmatch", "k 1\nk 2\n", {"line": "k 3", "search_string": "k ", "firstmatch": True},
     "k 3\nk 2\n", "line replaced"),
    ("insertafter: after last match", "a\nb\na\nc\n", {"line": "N", "insertafter": "^a"}, "a\nb\na\nN\nc\n",
     "line added"),
    ("insertafter firstmatch", "a\nb\na\nc\n", {"line": "N", "insertafter": "^a", "firstmatch": True},
     "a\nN\nb\na\nc\n", "line added"),
    ("insertafter anchor is last line", "a\nb\n", {"line": "N", "insertafter": "^b"}, "a\nb\nN\n", "line added"),
    ("insertafter anchor last, no newline", "a\nb", {"line": "N", "insertafter": "^b"}, "a\nb\nN\n", "line added"),
    ("insertafter: line already present", "a\nN\nc\n", {"line": "N", "insertafter": "^a"}, "a\nN\nc\n", ""),
    ("insertafter: no anchor → EOF", "a\n", {"line": "N", "insertafter": "^zz"}, "a\nN\n", "line added"),
    ("insertafter EOF", "a\n", {"line": "N", "insertafter": "EOF"}, "a\nN\n", "line added"),
    ("insertafter BOF", "a\n", {"line": "N", "insertafter": "BOF"}, "N\na\n", "line added"),
    ("insertbefore BOF", "a\nb\n", {"line": "N", "insertbefore": "BOF"}, "N\na\nb\n", "line added"),
    ("insertbefore BOF, present elsewhere", "a\nN\n", {"line": "N", "insertbefore": "BOF"}, "a\nN\n", ""),
    ("insertbefore: before last match", "a\nb\na\n", {"line": "N", "insertbefore": "^a"}, "a\nb\nN\na\n",
     "line added"),
    ("insertbefore firstmatch", "a\nb\na\n", {"line": "N", "insertbefore": "^a", "firstmatch": True},
     "N\na\nb\na\n", "line added"),
    ("insertbefore: no anchor → EOF", "a\n", {"line": "N", "insertbefore": "^zz"}, "a\nN\n", "line added"),
    ("insertbefore with regexp no match", "a\nb\n", {"line": "x=1", "regexp": "^x=", "insertbefore": "^b"},
     "a\nx=1\nb\n", "line added"),
    ("backrefs expand", "key=old\n", {"line": r"\1=new", "regexp": r"^(\w+)=old$", "backrefs": True},
     "key=new\n", "line replaced"),
    ("backrefs no match: untouched", "a\n", {"line": r"\1=new", "regexp": r"^(\w+)=old$", "backrefs": True},
     "a\n", ""),
    ("absent by line: every copy", "a\nb\na\n", {"line": "a", "state": "absent"}, "b\n", "2 line(s) removed"),
    ("absent by line: none", "b\n", {"line": "a", "state": "absent"}, "b\n", ""),
    ("absent by regexp", "#x\ny\n#z\n", {"regexp": "^#", "state": "absent"}, "y\n", "2 line(s) removed"),
    ("absent by search_string", "foo bar\nbaz\n", {"search_string": "bar", "state": "absent"}, "baz\n",
     "1 line(s) removed"),
    ("absent regexp wins over line", "a\nb\n", {"line": "a", "regexp": "^b", "state": "absent"}, "a\n",
     "1 line(s) removed"),
]  # fmt: skip


@pytest.mark.parametrize(("before", "kwargs", "after", "msg"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_edit_lines(before: str, kwargs: dict[str, Any], after: str, msg: str) -> None:
    edit = edit_lines(before, **kwargs)
    assert edit.text == after
    assert edit.msg == msg
    assert edit.changed == bool(msg)
    if edit.changed:  # applying it again changes nothing (the module is idempotent)
        assert not edit_lines(edit.text, **kwargs).changed


def test_absent_counts_found() -> None:
    assert edit_lines("a\na\nb\n", line="a", state="absent").found == 2


BAD_ARGS = [
    ({"path": "/f", "line": "x", "insertafter": "a", "insertbefore": "b"}, "insertbefore and insertafter"),
    ({"path": "/f", "line": "x", "regexp": "a", "search_string": "b"}, "regexp and search_string"),
    ({"path": "/f", "line": "x", "search_string": "b", "backrefs": True}, "backrefs and search_string"),
    ({"path": "/f"}, "line is required"),
    ({"path": "/f", "line": "x", "backrefs": True}, "backrefs needs regexp"),
    ({"path": "/f", "state": "absent"}, "needs one of line"),
    ({"path": "/f", "line": "x", "regexp": ""}, "matches every line"),
    ({"path": "/f", "line": "x", "regexp": "("}, "not a valid regex"),
    ({"path": "/f", "line": "x", "insertafter": "[a"}, "not a valid regex"),
    ({"path": "/f", "line": "x", "mode": "rw"}, "not an octal mode"),
    ({"path": "/f", "line": "x", "validate": "visudo -c"}, "must contain %s"),
]


@pytest.mark.parametrize(("raw", "error"), BAD_ARGS)
def test_bad_arguments(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        LineInFile().check_args(args_of(LineInFile, raw))


def test_aliases() -> None:
    assert args_of(LineInFile, {"dest": "/f", "regex": "^a", "value": "b"})["path"] == "/f"


PROBES = [
    (f"{STAT_FILE}\npresent\na\nb\n\n.pv-end\n", "a\nb\n"),
    (f"{STAT_FILE}\npresent\na\nb\n.pv-end\n", "a\nb"),
    (f"{STAT_FILE}\npresent\na\n\n\n\n.pv-end", "a\n\n\n"),
    (f"{STAT_FILE}\npresent\n\n.pv-end\n", ""),
    ("absent\nabsent\n\n.pv-end\n", None),
    ("", None),
]


@pytest.mark.parametrize(("probe", "content"), PROBES)
def test_parse_probe(probe: str, content: str | None) -> None:
    assert parse_probe(probe)[1] == content


def probe_of(content: str | None, stat: str = STAT_FILE) -> str:
    if content is None:
        return "absent\nabsent\n\n.pv-end\n"
    return f"{stat}\npresent\n{content}\n.pv-end\n"


def run(raw: dict[str, Any], probe: str, **ctx_kw: Any) -> tuple[Any, FakeContext]:
    ctx = FakeContext(**ctx_kw)
    args = args_of(LineInFile, raw)
    LineInFile().check_args(args)
    return execute_module(LineInFile(), args, ctx, probe), ctx


def test_probe_is_readonly_snippet() -> None:
    assert lineinfile_probe("/etc/a b") == "pv_stat '/etc/a b'\npv_cat '/etc/a b'\nprintf '\\n.pv-end\\n'"


def test_converged_costs_no_call() -> None:
    result, ctx = run({"path": "/etc/f", "line": "b"}, probe_of("a\nb\n"))
    assert result.status == "ok"
    assert ctx.calls == []


def test_change_is_one_atomic_write() -> None:
    result, ctx = run({"path": "/etc/f", "line": "c", "backup": True}, probe_of("a\n"),
                      results=[CommandResult(0, "/etc/f.2026~\n", "")])  # fmt: skip
    assert result.status == "changed"
    assert result.msg == "line added"
    assert result.data["backup_file"] == "/etc/f.2026~"
    [(script, stdin, readonly)] = ctx.calls
    assert stdin == write_input(b"a\nc\n")
    assert not readonly
    assert "mv -f" in script and "cp -p /etc/f" in script


def test_check_mode_changes_nothing_and_diffs() -> None:
    result, ctx = run({"path": "/etc/f", "line": "c"}, probe_of("a\n"), check=True, diff=True)
    assert result.status == "changed"
    assert ctx.calls == []
    assert result.diff == "--- before: /etc/f\n+++ after: /etc/f\n@@ -1 +1,2 @@\n a\n+c\n"


def test_attributes_only() -> None:
    result, ctx = run({"path": "/etc/f", "line": "a", "mode": "0600", "owner": "root"}, probe_of("a\n"), diff=True)
    assert result.status == "changed"
    [(script, stdin, _)] = ctx.calls
    assert "chmod 600 -- /etc/f" in script and "chown" not in script and stdin is None
    assert "-mode: 644\n+mode: 600" in (result.diff or "")


def test_missing_file_without_create_fails() -> None:
    result, ctx = run({"path": "/etc/f", "line": "a"}, probe_of(None))
    assert result.status == "failed" and "create: true" in result.msg
    assert ctx.calls == []


def test_missing_file_with_create() -> None:
    result, ctx = run({"path": "/etc/new/f", "line": "a", "create": True}, probe_of(None))
    assert result.status == "changed"
    [(script, stdin, _)] = ctx.calls
    assert script.startswith("[ -d /etc/new ] || mkdir -p -- /etc/new\n") and stdin == write_input(b"a\n")


def test_absent_on_missing_file_is_ok() -> None:
    result, ctx = run({"path": "/etc/f", "line": "a", "state": "absent"}, probe_of(None))
    assert (result.status, result.msg, ctx.calls) == ("ok", "file not present", [])


@pytest.mark.parametrize(
    ("stat", "error"),
    [("directory\t755\troot\troot\t4096\t-\t-", "is a directory"), ("link\t777\troot\troot\t3\t-\t/x", "symlink")],
)
def test_not_a_file_fails(stat: str, error: str) -> None:
    result, _ = run({"path": "/etc/f", "line": "a"}, f"{stat}\nabsent\n\n.pv-end\n")
    assert result.status == "failed" and error in result.msg


def test_non_utf8_content_is_refused() -> None:
    result, ctx = run({"path": "/etc/f", "line": "a"}, probe_of("caf\ufffd\n"))
    assert result.status == "failed" and "UTF-8" in result.msg and ctx.calls == []


def test_failed_write_reports_stderr() -> None:
    stderr = "syntax error near line 2\nvalidation failed: visudo -cf %s\n"
    raw = {"path": "/etc/f", "line": "c", "validate": "visudo -cf %s"}
    result, _ = run(raw, probe_of("a\n"), results=[CommandResult(3, "", stderr)])
    assert result.status == "failed"
    assert "exit 3" in result.msg and "syntax error" in result.msg


@pytest.mark.parametrize(("raw", "content", "user", "become", "exact"), [
    ({}, "a\n", "root", None, True),  # root keeps the old file's owner and group
    ({}, None, "root", None, False),  # a new file's owner and group are the writer's: a guess
    ({}, "a\n", "deploy", None, False),  # chown --reference may fail for another user
    ({}, "a\n", "deploy", "root", True),
    ({"owner": "www"}, "a\n", "root", None, False),  # the group is then the writer's
    ({"owner": "www", "group": "www"}, None, "deploy", None, True),
])  # fmt: skip
def test_the_prediction_is_exact_only_when_no_owner_or_group_is_guessed(
        raw: dict[str, Any], content: str | None, user: str, become: str | None, exact: bool) -> None:
    from provision.apply import PlanReader

    ctx = FakeContext()
    ctx.variables = {"facts": {"user": user}}
    ctx.become_user = become  # type: ignore[attr-defined]
    args = args_of(LineInFile, {"path": "/etc/f", "line": "b", "create": True, **raw})
    module = LineInFile()
    plan = module.plan(args, module.facts(args).parse(probe_of(content)), PlanReader(ctx))  # type: ignore[arg-type]
    assert plan.predicts is not None and plan.predicts_exactly is exact
