"""Server roles in the views: ``provision inventory --roles``, ``--graph --roles`` (plain ``--graph``
unchanged), role_groups from the inventory or the deploy defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision.cli import main
from provision.inventory import Inventory
from provision.inventory_graph import graph_lines
from provision.inventory_roles import default_role_groups, inventory_roles, roles_lines

pytestmark = pytest.mark.unit

MULTI = """\
all:
  children:
    prod:
      children:
        lb: {hosts: {lb1: }}
        app: {hosts: {app1: , app2: }}
        db: {hosts: {db1: }}
        db_replica: {hosts: {store: }}
        redis: {hosts: {store: }}
        files: {hosts: {store: }}
  hosts:
    lonely:
"""

RENAMED = """\
all:
  vars:
    role_groups: {db: databases, app: benches}
  children:
    databases: {hosts: {pg1: }}
    benches: {hosts: {web1: }}
    db: {hosts: {other: }}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no project playbooks/: the built-in deploy defaults
    (tmp_path / "multi.yml").write_text(MULTI)
    (tmp_path / "renamed.yml").write_text(RENAMED)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["inventory", *argv])
    return code, capsys.readouterr().out


def test_default_role_groups_come_from_the_deploy_defaults(project: Path) -> None:
    assert default_role_groups() == {"db": "db", "db_replica": "db_replica", "redis": "redis", "files": "files",
                                     "app": "app", "lb": "lb"}


def test_roles_of_every_host(project: Path) -> None:
    roles = inventory_roles(Inventory.load(project / "multi.yml"))
    assert list(roles.items()) == [("lb1", ["lb"]), ("app1", ["app"]), ("app2", ["app"]), ("db1", ["db"]),
                                   ("store", ["db_replica", "redis", "files"]), ("lonely", [])]
    assert roles_lines(roles, {"store", "lonely"}) == ["store   db_replica, redis, files", "lonely  -"]


def test_role_groups_from_the_inventory_win(project: Path) -> None:
    roles = inventory_roles(Inventory.load(project / "renamed.yml"))
    assert roles == {"pg1": ["db"], "web1": ["app"], "other": []}


def test_inventory_roles_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "-i", "multi.yml", "--roles")
    assert code == 0
    assert out == ("lb1     lb\napp1    app\napp2    app\ndb1     db\n"
                   "store   db_replica, redis, files\nlonely  -\n")
    code, out = run(capsys, "-i", "multi.yml", "--roles", "--json", "--limit", "store")
    assert code == 0 and json.loads(out) == {"store": ["db_replica", "redis", "files"]}


def test_graph_with_roles_annotates_hosts_and_plain_graph_is_unchanged(project: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    inventory = Inventory.load(project / "multi.yml")
    plain = graph_lines(inventory)
    code, out = run(capsys, "-i", "multi.yml", "--graph")
    assert code == 0 and out.splitlines() == plain
    assert not any("[" in line for line in plain)
    code, out = run(capsys, "-i", "multi.yml", "--graph", "--roles")
    assert code == 0
    assert out.splitlines() == [
        "@all:",
        "  |--@ungrouped:",
        "  |  |--lonely",
        "  |--@prod:",
        "  |  |--@lb:",
        "  |  |  |--lb1  [lb]",
        "  |  |--@app:",
        "  |  |  |--app1  [app]",
        "  |  |  |--app2  [app]",
        "  |  |--@db:",
        "  |  |  |--db1  [db]",
        "  |  |--@db_replica:",
        "  |  |  |--store  [db_replica, redis, files]",
        "  |  |--@redis:",
        "  |  |  |--store  [db_replica, redis, files]",
        "  |  |--@files:",
        "  |  |  |--store  [db_replica, redis, files]",
    ]


def test_roles_with_host_is_an_input_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "-i", "multi.yml", "--roles", "--host", "db1"]) == 4
    assert "--roles goes alone or with --graph" in capsys.readouterr().err

