"""``provision inventory`` as ``ansible-inventory``: --graph shape, --limit, --yaml, option errors, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.cli import main

pytestmark = pytest.mark.unit

INVENTORY = """\
all:
  hosts:
    lonely:
  children:
    prod:
      children:
        web:
          hosts: {app1: {port: 1}, app2: }
        db:
          hosts: {db1: }
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["inventory", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_graph_lists_each_host_once_in_ansibles_shape(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-i", str(inventory), "--graph")
    assert code == 0
    assert out == ("@all:\n  |--@ungrouped:\n  |  |--lonely\n  |--@prod:\n  |  |--@web:\n  |  |  |--app1\n"
                   "  |  |  |--app2\n  |  |--@db:\n  |  |  |--db1\n")


def test_graph_of_a_group_with_limit(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-i", str(inventory), "--graph", "prod", "--limit", "app1:db1")
    assert (code, out) == (0, "@prod:\n  |--@web:\n  |  |--app1\n  |--@db:\n  |  |--db1\n")
    assert run(capsys, "-i", str(inventory), "--graph", "nosuch")[0] == 4


def test_list_limit_and_yaml(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-i", str(inventory), "--list", "--yaml", "-l", "app1")
    assert (code, out) == (0, "all:\n  children:\n    prod:\n      children:\n        web:\n          hosts:\n"
                              "            app1:\n              port: 1\n")
    code, out, _ = run(capsys, "-i", str(inventory), "--host", "app1", "--yaml")
    assert (code, out) == (0, "port: 1\n")


def test_explain_without_host_is_an_error(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-i", str(inventory), "--explain")
    assert code == 4 and "--explain needs --host HOST" in err


def test_help_offers_no_run_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["inventory", "--help"])
    out = capsys.readouterr().out
    for option in ("--graph [GROUP]", "--limit", "--yaml", "--json", "--explain", "--host"):
        assert option in out
    for option in ("--check", "--forks", "--tags", "--diff", "--become"):
        assert option not in out
