"""Adding a host to a person's inventory: comments, order and formatting survive; the diff; the atomic write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provision.errors import InventoryError
from provision.inventory import Inventory
from provision.onboard.inventory_edit import detect_indent, host_entry, plan_host

pytestmark = pytest.mark.unit

HAND_WRITTEN = """\
# Production inventory: edited by hand, keep the comments.
all:
  children:
    prod:   # the live benches
      hosts:
        app1:
          ssh_host: 10.0.0.1  # primary
        app2: {ssh_host: 10.0.0.2}
        # app9 was retired in 2025
      vars:
        db_root_password: !secret "s3cr3t"
        apps:
          - {name: frappe, repo: 'git://x/frappe', ref: version-15}
          - name: ledger
            ref: v1
    staging:
      hosts:
"""
APP3 = {"ssh_host": "10.0.0.3", "ssh_port": None, "ssh_user": "frappe-ops", "ssh_private_key_file": "~/.ssh/k"}


def added_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def removed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]


def test_adding_a_host_changes_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    edit = plan_host(path, group="prod", name="app3", host_vars=APP3)
    assert edit.changed
    assert removed_lines(edit.diff()) == []
    assert added_lines(edit.diff()) == ["        app3:", "          ssh_host: 10.0.0.3",
                                        "          ssh_user: frappe-ops", "          ssh_private_key_file: ~/.ssh/k"]
    # Every original line is still there, in the same order, with its comments and quoting.
    block = "".join(line + "\n" for line in added_lines(edit.diff()))
    assert edit.after.replace(block, "", 1) == HAND_WRITTEN
    assert path.read_text() == HAND_WRITTEN  # planning writes nothing


def test_the_edited_file_loads_as_an_inventory_with_its_secret(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    plan_host(path, group="prod", name="app3", host_vars=APP3).write()
    inventory = Inventory.load(path)
    assert [h.name for h in inventory.select("prod")] == ["app1", "app2", "app3"]
    spec = inventory.select("app3")[0].connection()
    assert (spec.host, spec.user, spec.port) == ("10.0.0.3", "frappe-ops", None)
    assert host_entry(path, "prod", "app3") == {k: v for k, v in APP3.items() if v is not None}


def test_a_second_plan_for_the_same_host_is_no_change(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    plan_host(path, group="prod", name="app3", host_vars=APP3).write()
    again = plan_host(path, group="prod", name="app3", host_vars=APP3)
    assert not again.changed and again.diff() == ""


def test_changed_address_and_port_update_only_those_lines(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    edit = plan_host(path, group="prod", name="app1", host_vars={"ssh_host": "10.0.0.9", "ssh_port": 2222})
    assert removed_lines(edit.diff()) == ["-          ssh_host: 10.0.0.1  # primary"]
    assert added_lines(edit.diff()) == ["          ssh_host: 10.0.0.9  # primary", "          ssh_port: 2222"]


def test_empty_and_missing_groups_and_files(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    staging = plan_host(path, group="staging", name="s1", host_vars={"ssh_host": "10.1.0.1"})
    assert added_lines(staging.diff()) == ["        s1:", "          ssh_host: 10.1.0.1"]
    new_group = plan_host(path, group="edge", name="e1", host_vars={"ssh_host": "10.2.0.1"})
    assert added_lines(new_group.diff()) == ["    edge:", "      hosts:", "        e1:", "          ssh_host: 10.2.0.1"]
    fresh = plan_host(tmp_path / "new.yml", group="prod", name="app3", host_vars={"ssh_host": "10.0.0.3"})
    assert fresh.after == "all:\n  children:\n    prod:\n      hosts:\n        app3:\n          ssh_host: 10.0.0.3\n"


def test_four_space_indentation_is_kept() -> None:
    text = "all:\n    children:\n        prod:\n            hosts:\n                app1:\n                    x: 1\n"
    assert detect_indent(text)[0] == 4
    assert detect_indent(HAND_WRITTEN) == (2, 4, 2)


def test_four_space_file_gets_a_four_space_host(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n    children:\n        prod:\n            hosts:\n                app1:\n"
                    "                    ssh_host: 10.0.0.1\n")
    edit = plan_host(path, group="prod", name="app3", host_vars={"ssh_host": "10.0.0.3"})
    assert added_lines(edit.diff()) == ["                app3:", "                    ssh_host: 10.0.0.3"]


def test_write_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(HAND_WRITTEN)
    os.chmod(path, 0o600)
    inode = path.stat().st_ino
    plan_host(path, group="prod", name="app3", host_vars=APP3).write()
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.yml"]  # no temp file left


def test_bad_yaml_is_an_inventory_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  children:\n    prod: [unclosed\n")
    with pytest.raises(InventoryError) as caught:
        plan_host(path, group="prod", name="app3", host_vars=APP3)
    assert f"{path}:" in str(caught.value)
    assert path.read_text() == "all:\n  children:\n    prod: [unclosed\n"
