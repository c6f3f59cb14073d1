"""Runner semantics on local hosts (``connection: local``): real shells, no SSH, fast.

when/loop/register/notify/handlers, blocks, tags, changed_when/failed_when, until, serial batches,
max_fail_percentage, any_errors_fatal, and the probe cache seeing what earlier tasks changed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from provision.errors import TemplateError
from provision.events import HostUnreachable, PlayStarted, Recap, TaskDone, TaskStarted
from provision.inventory import Inventory
from provision.playbook import load_playbook
from provision.runner import Runner, RunOptions, serial_batches

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.done: list[TaskDone] = []
        self.plays: list[PlayStarted] = []
        self.warnings: list[str] = []
        self.recaps: list[Recap] = []

    def play_started(self, event: PlayStarted) -> None:
        self.plays.append(event)

    def task_started(self, event: TaskStarted) -> None: ...

    def task_done(self, event: TaskDone) -> None:
        self.done.append(event)

    def host_unreachable(self, event: HostUnreachable) -> None: ...

    def warning(self, message: str, *, host: str | None = None) -> None:
        self.warnings.append(message)

    def recap(self, event: Recap) -> None:
        self.recaps.append(event)

    def close(self) -> None: ...

    def statuses(self, host: str = "h1") -> list[tuple[str, str]]:
        return [(e.task, e.status) for e in self.done if e.host == host and e.task != "gather facts"]


def run(tmp_path: Path, playbook: str, *, hosts: int = 1, host_vars: str = "", **options: Any
        ) -> tuple[int, Recorder, Runner]:
    names = "".join(f"    h{i}:\n{host_vars}" for i in range(1, hosts + 1))
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(f"all:\n  vars:\n    connection: local\n    work: {tmp_path}\n  hosts:\n{names}")
    book_file = tmp_path / "site.yml"
    book_file.write_text(textwrap.dedent(playbook))
    recorder = Recorder()
    runner = Runner(Inventory.load(inventory_file), RunOptions(project_dir=tmp_path, **options), recorder)
    outcome = runner.run(load_playbook(book_file))
    return outcome.exit_code, recorder, runner


def test_when_loop_register_and_set_fact(tmp_path: Path) -> None:
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: numbers
              command: "echo {{ item }}"
              loop: "{{ range(1, 4) | list }}"
              register: out
            - set_fact:
                total: "{{ out.results | map(attribute='stdout') | map('int') | sum }}"
            - name: only when six
              command: echo six
              when: total | int == 6
            - name: never
              command: echo never
              when: total | int == 7
        """)
    assert code == 0
    assert [s for t, s in rec.statuses() if t == "numbers"] == ["changed"] * 3
    assert ("only when six", "changed") in rec.statuses() and ("never", "skipped") in rec.statuses()


def test_handlers_run_once_only_when_notified_by_a_change(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    code, rec, _ = run(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: change
              command:
                cmd: touch {marker}
                creates: {marker}
              notify: h
            - name: change again
              command: echo x
              notify: h
            - name: no change
              command: echo x
              changed_when: false
              notify: other
          handlers:
            - name: h
              command: echo handler
            - name: other
              command: echo other
        """)
    handlers = [e for e in rec.done if e.handler]
    assert code == 0 and [e.task for e in handlers] == ["h"]
    # Second run: the guarded command is ok, but "change again" still changes: the handler runs once.
    code, rec, _ = run(tmp_path, (tmp_path / "site.yml").read_text())
    assert [e.task for e in rec.done if e.handler] == ["h"]


def test_block_rescue_always(tmp_path: Path) -> None:
    code, rec, runner = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - block:
                - name: boom
                  command: "false"
                - name: not reached
                  command: echo
              rescue:
                - name: rescued
                  command: echo rescue
              always:
                - name: cleanup
                  command: echo always
            - name: after
              command: echo after
        """)
    assert code == 0
    names = [t for t, _ in rec.statuses()]
    assert names == ["boom", "rescued", "cleanup", "after"]
    assert runner.hosts["h1"].stats.rescued == 1 and runner.hosts["h1"].stats.failed == 0


def test_failure_stops_host_and_exit_code_2_ignore_errors_continues(tmp_path: Path) -> None:
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: tolerated
              command: "false"
              ignore_errors: true
            - name: fatal
              command: "false"
            - name: never
              command: echo
        """)
    assert code == 2
    assert [t for t, _ in rec.statuses()] == ["tolerated", "fatal"]
    assert rec.recaps[0].hosts["h1"].ignored == 1 and rec.recaps[0].hosts["h1"].failed == 1


def test_changed_when_failed_when_and_until(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    code, rec, _ = run(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: quiet
              command: echo ok
              changed_when: false
            - name: judged by output
              command: echo FAIL
              register: r
              failed_when: "'FAIL' in r.stdout"
              ignore_errors: true
            - name: third time lucky
              shell: "echo x >> {counter}; wc -l < {counter}"
              register: tries
              until: tries.stdout | int >= 3
              retries: 5
              delay: 0
        """)
    statuses = dict(rec.statuses())
    assert code == 0 and statuses["quiet"] == "ok" and statuses["judged by output"] == "failed"
    assert statuses["third time lucky"] == "changed" and counter.read_text().count("x") == 3


def test_tags_and_skip_tags(tmp_path: Path) -> None:
    book = """\
        - hosts: all
          gather_facts: false
          tasks:
            - {name: a, command: echo a, tags: [one]}
            - {name: b, command: echo b, tags: [two]}
            - {name: c, command: echo c, tags: [always]}
            - {name: d, command: echo d, tags: [never, debug]}
        """
    _, rec, _ = run(tmp_path, book, tags=frozenset({"one"}))
    assert [t for t, _ in rec.statuses()] == ["a", "c"]
    _, rec, _ = run(tmp_path, book, skip_tags=frozenset({"one"}))
    assert [t for t, _ in rec.statuses()] == ["b", "c"]
    _, rec, _ = run(tmp_path, book, tags=frozenset({"debug"}))
    assert [t for t, _ in rec.statuses()] == ["c", "d"]


def test_serial_batches_follow_ansible() -> None:
    assert serial_batches(10, []) == [10]
    assert serial_batches(10, [3]) == [3, 3, 3, 1]
    assert serial_batches(10, ["30%"]) == [3, 3, 3, 1]
    assert serial_batches(10, [1, "50%"]) == [1, 5, 4]
    assert serial_batches(3, ["10%"]) == [1, 1, 1]


def test_max_fail_percentage_stops_the_rollout(tmp_path: Path) -> None:
    # h2 fails in the first batch of 2: 50% > 40% so later batches never start.
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          serial: 2
          max_fail_percentage: 40
          tasks:
            - name: maybe fail
              command: "{{ 'false' if inventory_hostname == 'h2' else 'true' }}"
        """, hosts=4)
    assert code == 2
    assert [p.hosts for p in rec.plays] == [("h1", "h2")]
    assert {e.host for e in rec.done} == {"h1", "h2"}


def test_any_errors_fatal_stops_other_hosts(tmp_path: Path) -> None:
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          any_errors_fatal: true
          serial: 1
          tasks:
            - name: fail on h1
              command: "{{ 'false' if inventory_hostname == 'h1' else 'true' }}"
        """, hosts=3)
    assert code == 2 and {e.host for e in rec.done} == {"h1"}


def test_probe_sees_what_an_earlier_task_changed(tmp_path: Path) -> None:
    # Both copy tasks are probed in one batch before the first runs; the first changes the file, so
    # the second must re-check instead of trusting the batch, and report ok (content already right).
    target = tmp_path / "f.txt"
    code, rec, _runner = run(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: first write
              copy: {{dest: {target}, content: "hello\\n"}}
            - name: same content again
              copy: {{dest: {target}, content: "hello\\n"}}
            - name: other content
              copy: {{dest: {target}, content: "bye\\n"}}
        """)
    assert code == 0
    assert rec.statuses() == [("first write", "changed"), ("same content again", "ok"), ("other content", "changed")]
    assert target.read_text() == "bye\n"


def test_converged_run_probes_in_one_batch(tmp_path: Path) -> None:
    book = "".join(f"""
            - name: dir {i}
              file: {{path: "{{{{ work }}}}/d{i}", state: directory}}""" for i in range(10))
    playbook = f"""\
        - hosts: all
          gather_facts: false
          tasks:{textwrap.indent(book, "  ")}
        """
    unbatched = tmp_path / "unbatched"
    unbatched.mkdir()
    code, _, runner = run(unbatched, playbook, batch_changes=False)
    # Cold, unbatched: one probe batch, then one round trip per change, which also re-probes the next tasks.
    assert code == 0 and runner.hosts["h1"].sessions == 11
    code, _, runner = run(tmp_path, playbook)
    # Batched (provision.batching): one probe batch, then all ten changes in one script.
    assert code == 0 and runner.hosts["h1"].sessions == 2
    code, rec, runner = run(tmp_path, playbook)
    assert code == 0 and all(s == "ok" for _, s in rec.statuses())
    assert runner.hosts["h1"].probes.batches == 1 and runner.hosts["h1"].sessions == 1


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    code, rec, _ = run(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - file: {{path: {target.parent}, state: directory}}
            - copy: {{dest: {target}, content: "x\\n"}}
            - command: touch {tmp_path / 'touched'}
        """, check=True)
    assert code == 0 and not target.parent.exists() and not (tmp_path / "touched").exists()
    assert [s for _, s in rec.statuses()] == ["changed", "changed", "skipped"]


def test_unknown_limit_is_bad_input(tmp_path: Path) -> None:
    from provision.errors import InventoryError

    with pytest.raises(InventoryError):
        run(tmp_path, "- hosts: all\n  tasks: []\n", limit="nosuchhost")


def test_play_defaults_lose_to_inventory_and_vars_win_over_it(tmp_path: Path) -> None:
    (tmp_path / "defaults.yml").write_text("colour: grey\nsize: small\nshape: round\n")
    code, _, runner = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          defaults_files: [defaults.yml]
          vars:
            shape: square
          tasks:
            - set_fact:
                seen: "{{ colour }}-{{ size }}-{{ shape }}"
        """, host_vars="      colour: blue\n")
    assert code == 0 and runner.hosts["h1"].runtime["seen"] == "blue-small-square"


def test_loop_items_are_probed_in_one_batch_with_the_tasks_after_them(tmp_path: Path) -> None:
    playbook = """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: dirs
              file: {path: "{{ work }}/d{{ item }}", state: directory}
              loop: "{{ range(10) | list }}"
            - name: lines
              lineinfile: {path: "{{ work }}/app.ini", line: "k{{ item }}=v", create: true}
              loop: [1, 2, 3]
        """
    unbatched = tmp_path / "unbatched"
    unbatched.mkdir()
    code, _, runner = run(unbatched, playbook, batch_changes=False)
    assert code == 0 and runner.hosts["h1"].sessions == 14  # 1 batch + 13 changes, each re-probing
    code, _, runner = run(tmp_path, playbook)
    # Batched: the probes, then the dirs with the first line; the second line finds the file the
    # first created (no facts here, so no prediction of its owner) and starts the last batch.
    assert code == 0 and runner.hosts["h1"].sessions == 3
    code, rec, runner = run(tmp_path, playbook)
    assert code == 0 and {s for _, s in rec.statuses()} == {"ok"}
    assert runner.hosts["h1"].sessions == 1


def test_template_with_a_syntax_error_names_file_line_and_error(tmp_path: Path) -> None:
    """A template that exists but does not parse is a syntax error at its line, not "not found"."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "broken.j2").write_text("line one\n{% if x %}\nno endif\n")
    with pytest.raises(TemplateError) as raised:
        run(tmp_path, """\
            - hosts: all
              gather_facts: false
              tasks:
                - template: {src: broken.j2, dest: "{{ work }}/out"}
            """)
    text = str(raised.value)
    assert "not found" not in text
    assert str(tmp_path / "templates" / "broken.j2") + ":3:" in text
    assert "template syntax error: Unexpected end of template" in text
    assert raised.value.exit_code == 4


def test_magic_variables_of_an_ip_named_host_are_ansible_cores(tmp_path: Path) -> None:
    """One builder for inventory and tasks: an IP stays whole, ``ungrouped`` is a group name."""
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text("all:\n  vars: {connection: local}\n  hosts:\n    192.0.2.11:\n    app.example.com:\n")
    (tmp_path / "site.yml").write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - set_fact: {short: "{{ inventory_hostname_short }}", names: "{{ group_names }}"}
        """))
    inventory = Inventory.load(inventory_file)
    runner = Runner(inventory, RunOptions(project_dir=tmp_path), Recorder())
    assert runner.run(load_playbook(tmp_path / "site.yml")).exit_code == 0
    assert runner.hosts["192.0.2.11"].runtime == {"short": "192.0.2.11", "names": ["ungrouped"]}
    assert runner.hosts["app.example.com"].runtime == {"short": "app", "names": ["ungrouped"]}
    assert inventory.host("192.0.2.11").vars["inventory_hostname_short"] == "192.0.2.11"
    assert inventory.host("192.0.2.11").vars["group_names"] == ["ungrouped"]


def test_changed_when_is_not_judged_on_a_task_check_mode_skipped(tmp_path: Path) -> None:
    """A command skipped in check mode has no stdout: its changed_when must not be evaluated."""
    code, rec, _ = run(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: yarn-like
              shell: echo installed
              changed_when: "'installed' in stdout"
        """, check=True)
    assert code == 0 and rec.statuses() == [("yarn-like", "skipped")]
