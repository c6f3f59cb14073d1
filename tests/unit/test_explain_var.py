"""`provision playbook FILE --explain-var NAME --limit H`: value, level and file:line, every level."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    files = {
        "inventory.yml": """\
            all:
              vars:
                connection: local
                at_all: inventory-all
              hosts:
                h1:
                  at_host: inventory-host
              children:
                web:
                  vars:
                    at_group: inventory-group
                  hosts:
                    h1:
            """,
        "group_vars/all.yml": "at_gv_all: group_vars-all\n",
        "group_vars/web.yml": "at_gv: group_vars-web\n",
        "host_vars/h1.yml": "at_hv: host_vars-h1\n",
        "defaults.yml": "at_defaults_file: defaults-file\n",
        "extra.yml": "at_vars_file: vars-file\n",
        "site.yml": """\
            - hosts: web
              gather_facts: false
              defaults_files: [defaults.yml]
              defaults:
                at_defaults: play-defaults
                at_all: play-defaults
              vars:
                at_play: play-vars
              vars_files: [extra.yml]
              tasks:
                - name: a block
                  vars:
                    at_task: task-vars
                  block:
                    - name: remember
                      command: "true"
                      register: at_register
                    - name: set
                      set_fact:
                        at_fact: set-fact
            """,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def explain(capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> str:
    assert main(["playbook", "site.yml", "-i", "inventory.yml", "--limit", "h1", "--explain-var", name, *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "value", "level", "where"),
    [
        ("at_defaults_file", "defaults-file", "play defaults", "defaults.yml:1"),
        ("at_defaults", "play-defaults", "play defaults", "site.yml:5"),
        ("at_all", "inventory-all", "inventory: all", "inventory.yml:4 (group all)"),
        ("at_group", "inventory-group", "inventory: groups", "inventory.yml:11 (group web)"),
        ("at_gv_all", "group_vars-all", "group_vars/all", "group_vars/all.yml:1"),
        ("at_gv", "group_vars-web", "group_vars/*", "group_vars/web.yml:1"),
        ("at_host", "inventory-host", "inventory: host", "inventory.yml:7 (host h1)"),
        ("at_hv", "host_vars-h1", "host_vars/*", "host_vars/h1.yml:1"),
        ("at_play", "play-vars", "play vars", "site.yml:8"),
        ("at_vars_file", "vars-file", "vars_files", "extra.yml:1"),
    ],
)
def test_each_static_level_with_file_and_line(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, value: str, level: str, where: str
) -> None:
    out = explain(capsys, name)
    first, winner = out.splitlines()[:2]
    assert first.startswith(f"{name} on h1, play 'web' (")
    assert winner.startswith(f'  = "{value}"    {level}    ')
    assert winner.endswith(where)


def test_lower_levels_are_shown_as_overridden(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "at_all")
    assert '  overrides "play-defaults"    play defaults    site.yml:6' in out


def test_extra_vars_win_and_say_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "at_play", "-e", "at_play=cli")
    assert '  = "cli"    extra vars    -e' in out
    assert '  overrides "play-vars"    play vars    site.yml:8' in out


def test_magic_variables_are_explained(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "group_names")
    assert '  = ["web"]    magic    run' in out
    assert '  = true    magic' in explain(capsys, "ansible_check_mode", "--check")


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("at_task", "  then set at run time (block/task vars) by task 'a block' (site.yml:11)"),
        ("at_register", "  then set at run time (runtime) by register of task 'remember' (site.yml:15)"),
        ("at_fact", "  then set at run time (runtime) by set_fact task 'set' (site.yml:18)"),
    ],
)
def test_run_time_levels_name_the_task(project: Path, capsys: pytest.CaptureFixture[str], name: str,
                                       line: str) -> None:
    out = explain(capsys, name)
    assert "  not defined when the play starts" in out
    assert line.format(project=project) in out


def test_secrets_are_redacted(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "db_password", "-e", "db_password=hunter2")
    assert "hunter2" not in out and "extra vars" in out
