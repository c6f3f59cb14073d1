"""Output that reads like Ansible's: debug at default verbosity, var as YAML, templated task names,
JSON items as values, no hard wrap off a terminal, YAML hints that fit, help and usage, name checks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from provision.cli import main
from provision.errors import InventoryError, PlaybookError
from provision.events import PlayStarted, TaskDone
from provision.inventory import Inventory
from provision.output import ConsoleReporter, JsonReporter, make_console, render_error
from provision.yamlfile import parse_yaml
from tests.unit.test_runner_local import run

pytestmark = pytest.mark.unit


def plain_console(width: int = 80) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)


def printed(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_debug_message_shown_at_default_verbosity() -> None:
    console = plain_console()
    reporter = ConsoleReporter(console, verbosity=0)
    reporter.play_started(PlayStarted("p", ("app1",)))
    reporter.task_done(TaskDone("app1", "say", "debug", "ok", "hello\nworld"))
    reporter.task_done(TaskDone("app1", "quiet", "command", "ok", "not shown"))
    assert printed(console) == ("PLAY p  app1\n"
                                "ok       app1  say (debug)\n"
                                "         hello\n"
                                "         world\n"
                                "ok       app1  quiet (command)\n")


def test_var_as_yaml_and_task_names_templated(tmp_path: Path) -> None:
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          vars: {app: erpnext, conf: {port: 8000, sites: [a, b]}}
          tasks:
            - name: "install {{ app }}"
              debug: {var: conf}
            - name: "item {{ item }} stays"
              debug: {msg: "{{ item }}"}
              loop: [{k: 1}]
        """)
    assert code == 0
    first, second = (e for e in rec.done if e.module == "debug")
    assert first.task == "install erpnext"
    assert first.msg == "conf:\n  port: 8000\n  sites:\n  - a\n  - b"
    assert second.task == "item {{ item }} stays"
    assert second.item == '{"k": 1}' and second.item_value == {"k": 1}


def test_json_item_is_the_value() -> None:
    stream = io.StringIO()
    JsonReporter(stream).task_done(TaskDone("h", "t", "debug", "ok", item="a", item_value={"name": "a", "n": 1}))
    assert json.loads(stream.getvalue())["item"] == {"name": "a", "n": 1}


def test_no_hard_wrap_off_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    path = "/home/frappe/benches/" + "x" * 120 + "/sites/common_site_config.json"
    render_error(make_console(stderr=True), PlaybookError(f"cannot read {path}", hint="check " + path))
    err = capsys.readouterr().err
    assert err == f"error: cannot read {path}\n  fix: check {path}\n"


def test_terminal_width_still_wraps_at_fixed_width() -> None:
    console = plain_console(width=40)
    render_error(console, PlaybookError("a message that is longer than forty columns wide"))
    assert printed(console) == "error: a message that is longer than \nforty columns wide\n"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        # libyaml's C parser does not name the character as PyYAML's pure-Python one does.
        ("all:\n\thosts:\n", "found character", "indent with spaces"),
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (also on line 1)", "keep one of the two 'a' lines (1 and 3)"),
        ("x: {{ y }}\n", "", "a value that starts with '{{' must be quoted"),
        ("x: [1, 2\n", "", "check indentation and quoting on that line"),
    ],
)
def test_yaml_hints_fit_the_error(text: str, message: str, hint: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_yaml(text, "f.yml", error=PlaybookError)
    assert message in caught.value.message and caught.value.hint is not None
    assert caught.value.hint.startswith(hint)
    if "{{" not in text:
        assert "{{" not in caught.value.hint


@pytest.mark.parametrize("command", ["ping", "facts"])
def test_ping_and_facts_have_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "round trip" in out or "no-op" in out
    assert "(default: all)" in out


def test_unknown_option_prints_the_sub_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["ping", "--bogus"])
    assert caught.value.code == 4
    err = capsys.readouterr().err
    assert err.startswith("usage: provision ping ") and "unrecognized arguments: --bogus" in err


def test_group_and_host_of_one_name_warn() -> None:
    inventory = Inventory.from_data(parse_yaml("all:\n  hosts: {web: }\n  children:\n    web:\n      hosts: {a: }\n",
                                               "inv.yml"))
    assert inventory.warnings == ["'web' is both a group and a host: a pattern 'web' selects the group"]


@pytest.mark.parametrize(
    ("text", "what"),
    [("all:\n  hosts:\n    1.5:\n", "a number"), ("all:\n  hosts:\n    yes:\n", "a boolean"),
     ("all:\n  hosts:\n    ~:\n", "null (empty)"), ("all:\n  children:\n    on:\n      hosts: {a: }\n", "a boolean")],
)
def test_host_names_yaml_typed_are_refused(text: str, what: str) -> None:
    with pytest.raises(InventoryError) as caught:
        Inventory.from_data(parse_yaml(text, "inv.yml"), file="inv.yml")
    assert f"YAML read it as {what}" in caught.value.message
    assert str(caught.value.source).startswith("inv.yml:")
    assert caught.value.hint is not None and caught.value.hint.startswith("quote it")
