"""Ansible keywords: import_playbook/include, include_tasks/import_tasks, loop_control, debug forms,
group_vars/ and host_vars/ beside the playbook."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provision.errors import PlaybookError
from provision.inventory import Inventory
from provision.playbook import load_playbook
from provision.runner import Runner, RunOptions
from provision.tasks.base import key_value_args
from provision.tasks.control import Debug
from tests.unit.test_runner_local import Recorder, run

pytestmark = pytest.mark.unit


def messages(recorder: object) -> list[str]:
    return [e.msg for e in recorder.done if e.module == "debug"]  # type: ignore[attr-defined]


def test_import_playbook_and_include_alias(tmp_path: Path) -> None:
    (tmp_path / "other.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                                        "    - debug: {msg: \"other {{ who }}\"}\n      tags: [own]\n")
    (tmp_path / "old.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: old}\n")
    code, rec, _ = run(tmp_path, """\
        - import_playbook: other.yml
          vars: {who: imported}
          tags: [imp]
        - include: old.yml
        """)
    assert code == 0 and messages(rec) == ["other imported", "old"]
    book = load_playbook(tmp_path / "site.yml")
    assert book.plays[0].tasks[0].tags == {"own", "imp"}


def test_import_playbook_errors(tmp_path: Path) -> None:
    (tmp_path / "self.yml").write_text("- import_playbook: self.yml\n")
    with pytest.raises(PlaybookError, match="imports itself"):
        load_playbook(tmp_path / "self.yml")
    (tmp_path / "missing.yml").write_text("- import_playbook: nope.yml\n")
    with pytest.raises(PlaybookError, match="imported playbook not found"):
        load_playbook(tmp_path / "missing.yml")


def test_include_tasks_and_import_tasks(tmp_path: Path) -> None:
    (tmp_path / "inc.yml").write_text("- debug: {msg: \"inc {{ n }}\"}\n")
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - include_tasks: inc.yml
              vars: {n: 1}
            - import_tasks: {file: inc.yml}
              vars: {n: 2}
            - include: inc.yml
              vars: {n: 3}
        """)
    assert code == 0 and messages(rec) == ["inc 1", "inc 2", "inc 3"]


def test_loop_control_fields(tmp_path: Path) -> None:
    started = time.monotonic()
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - debug:
                msg: "{{ i }}:{{ pkg.name }}:{{ ansible_loop.index }}/{{ ansible_loop.length }}:{{ ansible_loop.last }}"
              loop: [{name: a}, {name: b}]
              loop_control: {loop_var: pkg, index_var: i, label: "{{ pkg.name }}!", pause: 0.2, extended: true}
        """)
    assert code == 0 and messages(rec) == ["0:a:1/2:False", "1:b:2/2:True"]
    assert [e.item for e in rec.done if e.module == "debug"] == ["a!", "b!"]
    assert time.monotonic() - started >= 0.2


def test_unknown_loop_control_field(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks:\n    - debug: {msg: x}\n      loop: [1]\n"
                                       "      loop_control: {lable: x}\n")
    with pytest.raises(PlaybookError, match="unknown loop_control field 'lable'"):
        load_playbook(tmp_path / "site.yml")


def test_debug_key_value_and_list_messages(tmp_path: Path) -> None:
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - debug: msg="k=v and {{ 1 + 1 }}"
            - debug:
                msg: ["one", "{{ 'two' }}"]
        """)
    assert code == 0 and messages(rec) == ["k=v and 2", "- one\n- two"]
    assert key_value_args('msg="a b" var=x', Debug.canonical_names()) == {"msg": "a b", "var": "x"}
    assert key_value_args("hello world", Debug.canonical_names()) is None


def test_group_vars_and_host_vars_beside_the_playbook(tmp_path: Path) -> None:
    book_dir = tmp_path / "plays"
    (book_dir / "group_vars").mkdir(parents=True)
    (book_dir / "host_vars").mkdir()
    (book_dir / "group_vars" / "all.yml").write_text("from_all: playbook\nboth: playbook-all\n")
    (book_dir / "host_vars" / "h1.yml").write_text("from_host: playbook\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("both: inventory-all\nonly_inventory: yes\n")
    (book_dir / "site.yml").write_text("""\
- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: "{{ from_all }} {{ both }} {{ from_host }} {{ only_inventory }}"}
""")
    (tmp_path / "inventory.yml").write_text("all:\n  vars: {connection: local}\n  hosts: {h1: }\n")
    recorder = Recorder()
    runner = Runner(Inventory.load(tmp_path / "inventory.yml"), RunOptions(project_dir=tmp_path), recorder)
    assert runner.run(load_playbook(book_dir / "site.yml")).exit_code == 0
    assert messages(recorder) == ["playbook playbook-all playbook True"]
