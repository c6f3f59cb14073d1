"""``include_tasks`` with a loop or a templated file name: read when reached, once per item, as Ansible does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.errors import PlaybookError
from provision.playbook import load_playbook
from tests.unit.test_runner_local import run

pytestmark = pytest.mark.unit

USER_TASKS = """\
- name: "file for {{ person }}"
  copy: {dest: "{{ work }}/{{ person }}.txt", content: "{{ person }} {{ greeting }} {{ idx }}\\n"}
- name: "second task for {{ person }}"
  command: "true"
  changed_when: false
"""
# The include both loop tests run (joined into a playbook's task list at 12 spaces).
LOOPED_INCLUDE = """- include_tasks: user.yml
              loop: [ada, bob]
              loop_control: {loop_var: person, index_var: idx}
              vars: {greeting: hi}"""


def test_a_looped_include_runs_its_file_once_per_item_with_the_loop_var(tmp_path: Path) -> None:
    (tmp_path / "user.yml").write_text(USER_TASKS)
    code, recorder, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            {looped_include}
            - debug: {msg: after}
        """.replace("{looped_include}", LOOPED_INCLUDE))
    assert code == 0
    assert (tmp_path / "ada.txt").read_text() == "ada hi 0\n"
    assert (tmp_path / "bob.txt").read_text() == "bob hi 1\n"
    assert recorder.statuses() == [
        ("include_tasks: user.yml", "ok"), ("file for ada", "changed"), ("second task for ada", "ok"),
        ("include_tasks: user.yml", "ok"), ("file for bob", "changed"), ("second task for bob", "ok"),
        ("debug", "ok")]


def test_a_templated_file_name_is_rendered_when_reached(tmp_path: Path) -> None:
    (tmp_path / "os-debian.yml").write_text("- debug: {msg: 'on debian'}\n")
    code, recorder, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - set_fact: {family: debian}  # known only once the run reaches it
            - include_tasks: "os-{{ family }}.yml"
        """)
    assert code == 0
    assert [t for t, _ in recorder.statuses()][-1] == "debug"


def test_when_skips_an_item_and_a_missing_file_fails_the_task(tmp_path: Path) -> None:
    (tmp_path / "user.yml").write_text(USER_TASKS)
    code, recorder, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            {looped_include}
              when: person != 'ada'
            - include_tasks: "{{ 'nosuch' }}.yml"
            - debug: {msg: never}
        """.replace("{looped_include}", LOOPED_INCLUDE))
    assert code == 2
    assert not (tmp_path / "ada.txt").exists() and (tmp_path / "bob.txt").exists()
    failed = [e for e in recorder.done if e.status == "failed"]
    assert len(failed) == 1 and "included file not found" in failed[0].msg and "nosuch.yml" in failed[0].msg
    assert "debug" not in [t for t, _ in recorder.statuses()]


def test_a_loop_on_import_tasks_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "user.yml").write_text(USER_TASKS)
    book = tmp_path / "site.yml"
    book.write_text(textwrap.dedent("""\
        - hosts: all
          tasks:
            - import_tasks: user.yml
              loop: [a]
        """))
    with pytest.raises(PlaybookError) as caught:
        load_playbook(book)
    assert "site.yml:3" in str(caught.value.source) and "include_tasks" in (caught.value.hint or "")
