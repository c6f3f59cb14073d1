"""INI inventory reading: format detection, Ansible's value typing, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import InventoryError
from provision.inventory import Inventory
from provision.inventory_ini import looks_like_ini, parse_ini, parse_value

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "text", "ini"),
    [
        ("hosts.ini", "all:\n", True),
        ("inventory.yml", "[web]\n", False),
        ("hosts", "# comment\n[web]\nw1\n", True),
        ("hosts", "web1 ansible_host=10.0.0.1\n", True),
        ("hosts", "web1:2222\n", True),
        ("inventory", "---\nall:\n", False),
        ("inventory", "all:\n  hosts:\n", False),
    ],
)
def test_format_detection(name: str, text: str, ini: bool) -> None:
    assert looks_like_ini(Path(name), text) is ini


@pytest.mark.parametrize(
    ("text", "value"),
    [("8080", 8080), ("True", True), ("true", "true"), ("'a b'", "a b"), ("[1, (2, 3)]", [1, [2, 3]]),
     ("None", None), ("a=b", "a=b"), ("1.5", 1.5), ("", ""), ("/usr/bin/python3", "/usr/bin/python3")],
)
def test_values_are_typed_as_ansible_types_them(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_ini_inventory_loads_with_groups_vars_and_ports(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("solo\n[web]\nw[1:2] ansible_user=deploy\nw3:2200 label='a b' # comment\n"
                    "[web:vars]\nport=81\n[prod:children]\nweb\n")
    inventory = Inventory.load(path)
    assert [h.name for h in inventory.select("prod")] == ["w1", "w2", "w3"]
    assert inventory.host_vars("w3") == {"ansible_port": 2200, "label": "a b", "port": 81}
    assert inventory.host_vars("w1") == {"ansible_user": "deploy", "port": 81}
    assert [h.name for h in inventory.select("ungrouped")] == ["solo"]


def test_errors_name_the_line() -> None:
    with pytest.raises(InventoryError) as caught:
        parse_ini("[web]\nw1\n\n[db:vars]\nx=1\n", "hosts.ini")
    assert str(caught.value.source) == "hosts.ini:4"
    with pytest.raises(InventoryError, match="ends in ':'"):
        parse_ini("all:\n", "hosts")
