"""Ansible's CLI habits on ``playbook``/``deploy``: listings, --syntax-check, --start-at-task, -u/-b."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.cli import build_parser, main, run_options
from provision.connspec import connection_spec
from provision.inventory import Inventory
from provision.playbook import load_playbook, tag_selected
from provision.playbook_listing import ListingRequest, listing, unmatched_tags
from provision.runner import Runner, RunOptions, command_line_defaults
from tests.unit.test_runner_local import Recorder

pytestmark = pytest.mark.unit

PLAYBOOK = """\
- name: Web
  hosts: web
  tags: [webtag]
  tasks:
    - name: first
      debug: {msg: hi}
      tags: [a]
    - block:
        - name: second
          debug: {msg: two}
      tags: [b]
- hosts: all
  tasks:
    - debug: {msg: x}
"""
INVENTORY = "all:\n  children:\n    web:\n      hosts:\n        w1:\n        w2:\n"

# What ansible-playbook 2.16 prints for the same files (tabs before TAGS, as it writes them).
ANSIBLE_LISTING = """
playbook: {path}

  play #1 (web): Web\tTAGS: [webtag]
    pattern: ['web']
    hosts (2):
      w1
      w2
    tasks:
      first\tTAGS: [a, webtag]
      second\tTAGS: [b, webtag]
      TASK TAGS: [a, b, webtag]

  play #2 (all): all\tTAGS: []
    pattern: ['all']
    hosts (2):
      w1
      w2
    tasks:
      debug\tTAGS: []
      TASK TAGS: []
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVISION_INVENTORY", raising=False)
    return tmp_path


def test_listing_is_ansible_playbooks_text(project: Path) -> None:
    book = load_playbook("site.yml")
    text = listing(book, ListingRequest(hosts=True, tasks=True, tags=True), inventory=Inventory.load("inventory.yml"))
    assert text == ANSIBLE_LISTING.format(path="site.yml")


def test_list_options_print_and_touch_no_host(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "site.yml", "--list-hosts", "-l", "w1"]) == 0
    out = capsys.readouterr().out
    assert "    hosts (1):\n      w1\n" in out and "w2" not in out
    assert main(["playbook", "site.yml", "--list-tasks", "--tags", "b"]) == 0
    out = capsys.readouterr().out
    assert "second\tTAGS: [b, webtag]" in out and "first" not in out


def test_syntax_check_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "site.yml", "--syntax-check"]) == 0
    assert capsys.readouterr().out == "\nplaybook: site.yml\n"
    (project / "bad.yml").write_text("- hosts: all\n  tasks:\n    - debgu: {msg: x}\n")
    assert main(["playbook", "bad.yml", "--syntax-check"]) == 4
    assert "bad.yml:3" in capsys.readouterr().err
    (project / "nohosts.yml").write_text("- hosts: nosuchgroup\n  tasks: []\n")
    assert main(["playbook", "nohosts.yml", "--syntax-check"]) == 4


def test_deploy_syntax_check_and_listing_touch_no_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # The hosts are unreachable documentation addresses: anything but an offline answer fails.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVISION_INVENTORY", raising=False)
    inventory = Path(__file__).resolve().parents[2] / "inventory.example.yml"
    assert main(["deploy", "prod", "-i", str(inventory), "--syntax-check"]) == 0
    assert capsys.readouterr().out.startswith("\nplaybook: ")
    assert main(["deploy", "prod", "-i", str(inventory), "--list-tasks"]) == 0
    assert "tasks:" in capsys.readouterr().out


def test_start_at_task_unknown_name_is_bad_input(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "site.yml", "--start-at-task", "nosuch"]) == 4
    assert "--start-at-task 'nosuch': no task of that name" in capsys.readouterr().err


def test_start_at_task_skips_earlier_tasks_across_plays(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("all:\n  vars: {connection: local}\n  hosts: {h1: }\n")
    (tmp_path / "site.yml").write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - {name: one, debug: {msg: "1"}}
        - hosts: all
          gather_facts: false
          tasks:
            - {name: two, debug: {msg: "2"}}
            - {name: three, debug: {msg: "3"}}
        """))
    recorder = Recorder()
    runner = Runner(Inventory.load(tmp_path / "inventory.yml"),
                    RunOptions(project_dir=tmp_path, start_at_task="tw*"), recorder)
    assert runner.run(load_playbook(tmp_path / "site.yml")).exit_code == 0
    assert [e.task for e in recorder.done] == ["two", "three"]


def test_unknown_tag_warns(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert unmatched_tags(load_playbook("site.yml"), ["a", "nosuch", "always"]) == ["nosuch"]
    (project / "inventory.yml").write_text(
        "all:\n  vars: {connection: local}\n  hosts: {w1: }\n  children: {web: {hosts: {w1: }}}\n")
    main(["playbook", "site.yml", "--tags", "nosuch"])
    err = capsys.readouterr().err
    assert "warning  --tags 'nosuch' matches no task in site.yml" in err


def test_tag_selection() -> None:
    assert tag_selected(frozenset({"a"}), frozenset({"tagged"}), frozenset())
    assert not tag_selected(frozenset(), frozenset({"tagged"}), frozenset())
    assert tag_selected(frozenset({"never", "x"}), frozenset({"x"}), frozenset())
    assert not tag_selected(frozenset({"never"}), frozenset(), frozenset())


def test_user_key_become_fill_in_what_the_inventory_leaves_unset(project: Path) -> None:
    args = build_parser().parse_args(["playbook", "site.yml", "-u", "deploy", "--private-key", "k", "-b",
                                      "--become-user", "frappe"])
    options = run_options(args, None)
    assert (options.remote_user, options.private_key_file, options.become, options.become_user) == (
        "deploy", "k", True, "frappe")
    bare = command_line_defaults(connection_spec("h", {}), options)
    assert (bare.user, bare.private_key_file, bare.become, bare.become_user) == ("deploy", "k", True, "frappe")
    own = command_line_defaults(connection_spec("h", {"ansible_user": "ops", "ansible_ssh_private_key_file": "o"}),
                                options)
    assert (own.user, own.private_key_file) == ("ops", "o")


def test_become_user_without_become_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "site.yml", "--become-user", "frappe", "--list-tasks"]) == 4
    assert "--become-user needs -b" in capsys.readouterr().err


def test_host_list_without_trailing_comma_gets_a_hint(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "site.yml", "-i", "app1", "--list-hosts"]) == 4
    assert "end the list with a comma: -i 'app1,'" in capsys.readouterr().err
    assert main(["playbook", "site.yml", "-i", "w1,w2,", "--list-hosts"]) == 4  # no group 'web' in a host list


@pytest.mark.parametrize("command", [["deploy", "prod"], ["playbook", "site.yml"]])
def test_help_lists_the_ansible_options(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    out = capsys.readouterr().out
    for option in ("--syntax-check", "--list-hosts", "--list-tasks", "--list-tags", "--start-at-task",
                   "-u USER, --user USER", "--private-key", "-b, --become", "-l LIMIT, --limit LIMIT"):
        assert option in out
