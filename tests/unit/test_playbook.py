"""Playbook parsing and validation: every static mistake is an error naming file:line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import ArgumentError, PlaybookError
from provision.playbook import load_playbook, walk_tasks

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str, name: str = "site.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        load_playbook(write(tmp_path, text))
    return info.value


def test_parses_plays_tasks_handlers_and_keywords(tmp_path: Path) -> None:
    book = load_playbook(write(tmp_path, """\
- name: web
  hosts: web:&eu
  become: true
  serial: [1, "50%"]
  max_fail_percentage: 20
  vars: {a: 1}
  tasks:
    - name: dirs
      file: {path: "/srv/{{ item }}", state: directory}
      loop: [a, b]
      tags: [setup]
      notify: reload
      register: made
    - command: echo hi
      when: made is changed
  handlers:
    - name: reload
      command: echo reload
"""))
    play = book.plays[0]
    assert play.hosts == "web:&eu" and play.serial == [1, "50%"] and play.max_fail_percentage == 20
    first, second = play.tasks
    assert first.module == "file" and first.args == {"path": "/srv/{{ item }}", "state": "directory"}
    assert first.loop == ["a", "b"] and first.tags == {"setup"} and first.notify == ["reload"]
    assert second.module == "command" and second.args == {"cmd": "echo hi"} and second.name == "command"
    assert second.when == ["made is changed"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "- hosts: all\n  tasks:\n    - command: [unclosed\n")
    assert error.source is not None and error.source.line is not None and error.source.line >= 3
    assert "YAML syntax error" in error.message


def test_unknown_module_suggests_the_close_name(tmp_path: Path) -> None:
    error = error_of(tmp_path, "- hosts: all\n  tasks:\n    - name: x\n      templat: {src: a, dest: b}\n")
    assert str(error.source).endswith("site.yml:4")
    assert "templat" in error.message and error.hint and "template" in error.hint


def test_unknown_argument_names_the_module_line(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError) as info:
        load_playbook(write(tmp_path, "- hosts: all\n  tasks:\n    - file:\n        path: /x\n        mod: '0644'\n"))
    assert str(info.value.source).endswith("site.yml:3")
    assert "'mod'" in info.value.message


def test_notify_without_handler_is_refused(tmp_path: Path) -> None:
    error = error_of(tmp_path, """\
- hosts: all
  tasks:
    - command: echo
      notify: restart nginxx
  handlers:
    - name: restart nginx
      command: echo
""")
    assert "restart nginxx" in error.message and error.hint and "restart nginx" in error.hint


def test_task_with_two_modules_and_play_without_hosts(tmp_path: Path) -> None:
    assert "several modules" in error_of(tmp_path, "- hosts: all\n  tasks:\n    - command: a\n      shell: b\n").message
    assert "no 'hosts'" in error_of(tmp_path, "- tasks: []\n").message


def test_bad_serial_and_percentage(tmp_path: Path) -> None:
    assert "serial" in error_of(tmp_path, "- hosts: all\n  serial: abc\n").message
    assert "max_fail_percentage" in error_of(tmp_path, "- hosts: all\n  max_fail_percentage: 150\n").message


def test_include_is_static_and_inherits_when_tags_vars(tmp_path: Path) -> None:
    (tmp_path / "includes").mkdir()
    write(tmp_path, "- name: inner\n  command: echo {{ x }}\n", "includes/part.yml")
    book = load_playbook(write(tmp_path, """\
- hosts: all
  tasks:
    - include: part.yml
      when: enabled
      tags: [deploy]
      vars: {x: 1}
"""))
    (task,) = book.plays[0].tasks
    assert task.name == "inner" and task.when == ["enabled"] and "deploy" in task.tags and task.vars == {"x": 1}


def test_missing_include_and_self_include(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path, "- hosts: all\n  tasks:\n    - include: nope.yml\n").message
    write(tmp_path, "- include: loop.yml\n", "loop.yml")
    assert "includes itself" in error_of(tmp_path, "- hosts: all\n  tasks:\n    - include: loop.yml\n").message


def test_blocks_nest_and_walk(tmp_path: Path) -> None:
    book = load_playbook(write(tmp_path, """\
- hosts: all
  tasks:
    - block:
        - command: a
      rescue:
        - command: b
      always:
        - command: c
      tags: t
"""))
    names = [t.args.get("cmd") for t in walk_tasks(book.plays[0].tasks) if not t.is_block]
    assert names == ["a", "b", "c"]
    assert all("t" in t.tags for t in walk_tasks(book.plays[0].tasks))


def test_delegate_to_only_localhost(tmp_path: Path) -> None:
    text = "- hosts: all\n  tasks:\n    - command: a\n      delegate_to: db1\n"
    assert "delegate_to" in error_of(tmp_path, text).message
