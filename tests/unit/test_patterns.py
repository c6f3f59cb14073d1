"""Host patterns (--limit, a play's hosts:) and host-name syntax (ranges, host:port)."""

from __future__ import annotations

import pytest

from provision.errors import InventoryError, Source
from provision.hostpatterns import expand_host_range, parse_host_address, split_patterns
from provision.inventory import Inventory

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory.from_data(
        {
            "all": {
                "hosts": {"bastion.example.com": None},
                "children": {
                    "prod": {
                        "children": {
                            "web": {"hosts": {"app[1:3].example.com": None}},
                            "db": {"hosts": {"db1.example.com": None, "db2.example.com": None}},
                        }
                    },
                    "staging": {"hosts": {"stage1.example.com": None, "app3.example.com": None}},
                    "eu": {"hosts": {"db2.example.com": None, "app1.example.com": None}},
                    "empty": None,
                },
            }
        }
    )


def names(inventory: Inventory, pattern: str | list[str] | None) -> list[str]:
    return [host.name for host in inventory.select(pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["bastion", "app1", "app2", "app3", "db1", "db2", "stage1"]),
        ("all", ["bastion", "app1", "app2", "app3", "db1", "db2", "stage1"]),
        ("*", ["bastion", "app1", "app2", "app3", "db1", "db2", "stage1"]),
        ("web", ["app1", "app2", "app3"]),
        ("prod", ["app1", "app2", "app3", "db1", "db2"]),
        ("db2.example.com", ["db2"]),
        ("ungrouped", ["bastion"]),
        ("app*", ["app1", "app2", "app3"]),
        ("*.example.com", ["bastion", "app1", "app2", "app3", "db1", "db2", "stage1"]),
        ("st*", ["app3", "stage1"]),  # the glob names group staging
        ("db:web", ["app1", "app2", "app3", "db1", "db2"]),  # inventory order, not pattern order
        ("db,stage1.example.com", ["db1", "db2", "stage1"]),
        ("prod:&eu", ["app1", "db2"]),
        ("prod:!eu", ["app2", "app3", "db1"]),
        ("!eu:prod", ["app2", "app3", "db1"]),  # exclusions apply last whatever the order
        ("&staging:prod", ["app3"]),
        ("!prod", ["bastion", "stage1"]),  # only exclusions: from all
        ("prod:&eu:!db", ["app1"]),
        ("web, staging ,", ["app1", "app2", "app3", "stage1"]),
        ("~app[12]", ["app1", "app2"]),
        ("~(db|stage)", ["db1", "db2", "stage1"]),
        ("empty", []),
        ("web:&empty", []),
    ],
)
def test_select(inventory: Inventory, pattern: str | None, expected: list[str]) -> None:
    assert [name.split(".")[0] for name in names(inventory, pattern)] == expected


@pytest.mark.parametrize(
    ("pattern", "unknown", "hint"),
    [
        ("wbe", "'wbe'", "did you mean web?"),
        ("prod:!stagign", "'stagign' in 'prod:!stagign'", "did you mean staging?"),
        ("app1.example.org", "'app1.example.org'", "did you mean app1.example.com"),
        ("zz*", "'zz*'", "known groups and hosts: prod, web, db, staging, eu, empty, bastion.example.com"),
        ("~^x", "'~^x'", "known groups and hosts"),
        ("localhost", "'localhost'", "add localhost to the inventory"),
    ],
)
def test_unknown_pattern_is_an_error(inventory: Inventory, pattern: str, unknown: str, hint: str) -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.select(pattern, source=Source("site.yml", 3))
    assert caught.value.message == f"host pattern {unknown} matches no host or group"
    assert str(caught.value.source) == "site.yml:3"
    assert caught.value.hint is not None and caught.value.hint.startswith(hint)


def test_list_of_patterns(inventory: Inventory) -> None:
    assert names(inventory, ["db", "web:!app2.example.com"]) == [
        "app1.example.com", "app3.example.com", "db1.example.com", "db2.example.com",
    ]
    assert len(inventory.select([])) == 7
    with pytest.raises(InventoryError, match="host pattern 'dbb' in 'web,dbb' matches no host or group"):
        inventory.select(["web", "dbb"])


def test_bad_regex_and_empty_part(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="not a valid regular expression"):
        inventory.select("~app[")
    with pytest.raises(InventoryError, match="has an empty part"):
        inventory.select("web:!")


def test_split_patterns_keeps_ranges_whole() -> None:
    assert split_patterns("web:&prod:!app[1:3]") == ["web", "&prod", "!app[1:3]"]
    assert split_patterns(" a , b:c ") == ["a", "b:c"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app[01:03].example.com", ["app01.example.com", "app02.example.com", "app03.example.com"]),
        ("app[1:3]", ["app1", "app2", "app3"]),
        ("app[8:11]", ["app8", "app9", "app10", "app11"]),
        ("app[:2]", ["app0", "app1", "app2"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("x[a:e:2]", ["xa", "xc", "xe"]),
        ("n[1:10:4]", ["n1", "n5", "n9"]),
        ("n[001:010:3]", ["n001", "n004", "n007", "n010"]),
        ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]),
        ("plain.example.com", ["plain.example.com"]),
    ],
)
def test_expand_host_range(name: str, expected: list[str]) -> None:
    assert expand_host_range(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db1", ("db1", None)),
        ("db1:2222", ("db1", 2222)),
        ("app[1:3]:22", ("app[1:3]", 22)),
        ("app[1:3]", ("app[1:3]", None)),
        ("[2001:db8::1]:2222", ("2001:db8::1", 2222)),
        ("[::1]", ("::1", None)),
        ("fe80::1", ("fe80::1", None)),
        ("192.0.2.1:22", ("192.0.2.1", 22)),
    ],
)
def test_parse_host_address(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_host_address(text) == expected
