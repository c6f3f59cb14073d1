"""Inventory errors name the file and line, and say how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import EXIT_BAD_INPUT, InventoryError
from provision.inventory import Inventory

pytestmark = pytest.mark.unit


def load_text(tmp_path: Path, text: str) -> Inventory:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return Inventory.load(path)


def error_of(tmp_path: Path, text: str) -> InventoryError:
    with pytest.raises(InventoryError) as caught:
        load_text(tmp_path, text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "message", "fix"),
    [
        ("all:\n  hosts:\n    - web1\n    - web2\n", 2, "'hosts' of group 'all' must be a mapping, not a list",
         "not a '- ' list item"),
        ("all:\n  children:\n    web:\n      host:\n        w1:\n", 4, "unknown key 'host' in group 'web'",
         "did you mean 'hosts'?"),
        ("all:\n  children:\n    web:\n      w1.example.com:\n", 4, "unknown key 'w1.example.com'",
         "if 'w1.example.com' is a host, put it under 'hosts:'"),
        ("all:\n  children:\n    web: w1\n", 3, "group 'web' must be a mapping", "an indented 'hosts:'"),
        ("all:\n  hosts:\n    w1: w1.example.com\n", 3, "host 'w1' in group 'all' must map to its variables",
         "'w1:' alone"),
        ("all:\n  vars:\n    - a\n", 2, "'vars' of group 'all' must be a mapping", "'name: value'"),
        ("web:\n  hosts:\n    app[1:x]:\n", 3, "bad host range in 'app[1:x]'", "app[01:10].example.com"),
        ("web:\n  hosts:\n    app[01:5]:\n", 3, "pads its begin and end to different widths", None),
        ("web:\n  hosts:\n    app[5:1]:\n", 3, "is empty", None),
        ("web:\n  hosts:\n    app[1:3:0]:\n", 3, "step must be a positive integer", None),
        ("web:\n  hosts:\n    app[1:3:\n", 3, "without a closing ']'", None),
        ("web:\n  hosts:\n    app[1-3]:\n", 3, "must be [begin:end]", None),
        ("all:\n  children:\n    'web servers':\n", 3, "group name 'web servers' is not usable", "without spaces"),
        ("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", 7,
         "group 'a' cannot be a child of 'b': it would be its own ancestor", "remove 'a' from the children of 'b'"),
        ("a:\n  children:\n    a:\n", 3, "group 'a' cannot be a child of 'a'", None),
        ("web:\n  children:\n    all:\n", 3, "group 'all' cannot be a child of 'web'", None),
        ("web:\n  vars:\n    ansible_group_priority: high\n", 3, "ansible_group_priority of group 'web'", None),
        ("all:\n  hosts:\n    h1:\n  bad: [\n", 5, "YAML syntax error", "check indentation"),
    ],
)
def test_structure_errors(tmp_path: Path, text: str, line: int, message: str, fix: str | None) -> None:
    error = error_of(tmp_path, text)
    assert error.exit_code == EXIT_BAD_INPUT
    assert str(error.source) == f"{tmp_path / 'inventory.yml'}:{line}"
    assert message in error.message
    if fix is not None:
        assert error.hint is not None and fix in error.hint


def test_cycle_across_two_definitions(tmp_path: Path) -> None:
    error = error_of(tmp_path, "a:\n  children:\n    b:\nb:\n  children:\n    a:\n")
    assert error.source is not None and error.source.line == 6
    assert "'a' cannot be a child of 'b'" in error.message


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert "the inventory is empty" in error_of(tmp_path, "# nothing\n").message
    error = error_of(tmp_path, "- web1\n- web2\n")
    assert "must be a mapping of group names, not a list" in error.message
    assert error.hint is not None and "read as INI when its name ends in .ini" in error.hint
    ini = error_of(tmp_path, "web1\nweb2\n")
    assert "not a string" in ini.message


def test_host_name_not_a_string() -> None:
    with pytest.raises(InventoryError, match="host name 10 in group 'all' is not a string") as caught:
        Inventory.from_data({"all": {"hosts": {10: None}}})
    assert caught.value.hint == 'quote it: "10":'


def test_vars_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("- a\n- b\n")
    error = error_of(tmp_path, "all:\n  hosts:\n    h1:\n")
    assert str(error.source) == f"{tmp_path / 'group_vars' / 'all.yml'}:1"
    assert "a vars file must hold a mapping" in error.message
    (tmp_path / "group_vars" / "all.yml").write_text("a: 1\nb: [\n")
    error = error_of(tmp_path, "all:\n  hosts:\n    h1:\n")
    assert str(error.source).startswith(f"{tmp_path / 'group_vars' / 'all.yml'}:")
    assert "YAML syntax error" in error.message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="file not found"):
        Inventory.load(tmp_path / "nope.yml")
    with pytest.raises(InventoryError, match="is a directory") as caught:
        Inventory.load(tmp_path)
    assert caught.value.hint == "point -i at the inventory YAML file inside it"


def test_unknown_host_suggests_close_names() -> None:
    inventory = Inventory.from_data({"all": {"hosts": {"app1.example.com": None, "db1.example.com": None}}})
    with pytest.raises(InventoryError, match=r"no host named 'app2\.example\.com'") as caught:
        inventory.host("app2.example.com")
    assert caught.value.hint is not None and caught.value.hint.startswith("did you mean app1.example.com")


def test_empty_host_list_part_is_skipped() -> None:
    assert list(Inventory.from_host_list(" a , ,b,").hosts) == ["a", "b"]
