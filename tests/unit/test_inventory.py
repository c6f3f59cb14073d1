"""Inventory structure and variables: nesting, ranges, group_vars/host_vars, magic vars, listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.inventory import Inventory
from provision.secrets import REDACTED, Secret
from provision.variables import (
    GROUP_VARS,
    GROUP_VARS_ALL,
    HOST_VARS,
    INVENTORY_ALL,
    INVENTORY_GROUPS,
    INVENTORY_HOST,
    MAGIC,
    explain_rows,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


@pytest.fixture(scope="module")
def nested() -> Inventory:
    return Inventory.load(FIXTURES / "nested" / "inventory.yml")


@pytest.fixture(scope="module")
def precedence() -> Inventory:
    return Inventory.load(FIXTURES / "precedence" / "inventory.yml")


def test_hosts_in_file_order_with_ranges_expanded(nested: Inventory) -> None:
    assert list(nested.hosts) == [
        "bastion.example.com",
        "app01.example.com",
        "app02.example.com",
        "app03.example.com",
        "app08.example.com",
        "app10.example.com",
        "app12.example.com",
        "db-a",
        "db-b",
        "db-c",
        "stage1.example.com",
    ]


def test_groups_implicit_and_nested(nested: Inventory) -> None:
    assert list(nested.groups) == ["all", "ungrouped", "prod", "web", "db", "eu", "web_eu", "staging", "monitoring"]
    assert nested.groups["all"].children == ["ungrouped", "prod", "staging", "monitoring"]
    assert nested.groups["prod"].children == ["web", "db", "eu"]
    assert nested.groups["ungrouped"].hosts == ["bastion.example.com"]
    assert nested.groups["web_eu"].depth == 3
    assert nested.groups["monitoring"].hosts == []


def test_host_groups_include_ancestors_and_all(nested: Inventory) -> None:
    assert nested.host("app01.example.com").groups == ("all", "prod", "web", "eu", "web_eu")
    assert nested.host("app03.example.com").groups == ("all", "prod", "web", "staging")
    assert nested.host("bastion.example.com").groups == ("all", "ungrouped")


def test_members_include_children_hosts(nested: Inventory) -> None:
    assert nested.members["eu"] == ["app01.example.com", "app02.example.com"]
    assert len(nested.members["prod"]) == 9
    assert nested.members["all"] == list(nested.hosts)


def test_group_vars_dir_files_merge_in_sorted_order_and_shadow_the_plain_file(nested: Inventory) -> None:
    app02 = nested.host("app02.example.com").vars
    assert app02["gunicorn_workers"] == 8  # web/20-tuning.yaml after web/10-base.yml; web.yml ignored
    assert app02["bench_name"] == "frappe-bench"
    assert app02["sites"] == [{"name": "erp.example.com", "apps": ["erpnext"]}]  # web/extra/ recursed
    assert app02["region"] == "eu-west"
    assert app02["nginx"] == {"workers": 4, "gzip": True}


def test_host_vars_files_json_and_no_extension(nested: Inventory) -> None:
    assert nested.host("app01.example.com").vars["gunicorn_workers"] == 16
    db_a = nested.host("db-a").vars
    assert db_a["mariadb_primary"] is True
    assert db_a["mariadb_port"] == 3307  # group_vars/db.json beats the inventory's db vars
    assert db_a["ansible_user"] == "admin"
    assert "mariadb_primary" not in nested.host("db-b").vars


def test_all_vars_lose_to_group_vars_all(nested: Inventory) -> None:
    assert nested.host("bastion.example.com").vars["deploy_user"] == "deploy"
    assert nested.host("bastion.example.com").vars["timezone"] == "UTC"


def test_precedence_matches_ansible(precedence: Inventory) -> None:
    app1 = precedence.host_vars("app1")
    assert app1 == {
        "level": "inventory_host",
        "v_all_vs_group": "inventory_parent",
        "v_depth": "child",
        "v_gv_parent_vs_inv_child": "group_vars_parent",
        "v_host_vs_gv": "inventory_host",
        "v_invgroup_vs_gvall": "group_vars_all",
        "v_name": "yyy",
        "v_priority": "aaa",
    }
    app2 = precedence.host_vars("app2")
    assert app2["level"] == "host_vars_second"
    assert app2["from_host_vars"] == "first"
    assert app2["v_host_vs_gv"] == "group_vars_child"


def test_group_priority_is_not_a_variable(precedence: Inventory) -> None:
    assert precedence.groups["aaa"].priority == 10
    assert "ansible_group_priority" not in precedence.host("app1").vars


def test_explain_shows_winner_source_and_overridden(precedence: Inventory) -> None:
    explained = {e.name: e for e in precedence.explain("app2")}
    level = explained["level"]
    assert level.value == "host_vars_second"
    assert level.level == HOST_VARS
    assert level.source.endswith("host_vars/app2/10-second.yml:1")
    assert [lost[0] for lost in level.overridden] == [
        HOST_VARS,
        INVENTORY_HOST,
        GROUP_VARS,
        GROUP_VARS,
        GROUP_VARS_ALL,
        INVENTORY_GROUPS,
        INVENTORY_GROUPS,
        INVENTORY_ALL,
    ]
    inventory_file = str(FIXTURES / "precedence" / "inventory.yml")
    assert level.overridden[1][1] == f"{inventory_file}:26 (host app2)"
    assert level.overridden[-1] == ("inventory: all", f"{inventory_file}:4 (group all)", "inventory_all")
    assert "groups" not in explained
    assert explained["inventory_hostname"].level == MAGIC


def test_explain_rows_are_short_json(precedence: Inventory) -> None:
    rows = {row[0]: row for row in explain_rows(precedence.explain("app1"))}
    assert rows["v_name"][1:3] == ('"yyy"', INVENTORY_GROUPS)
    assert rows["group_names"][1] == '["aaa", "bbb", "child", "parent", "yyy", "zzz"]'


def test_magic_vars(nested: Inventory) -> None:
    values = nested.host("app01.example.com").vars
    assert values["inventory_hostname"] == "app01.example.com"
    assert values["inventory_hostname_short"] == "app01"
    assert values["group_names"] == ["eu", "prod", "web", "web_eu"]
    assert values["groups"]["db"] == ["db-a", "db-b", "db-c"]
    assert values["groups"]["monitoring"] == []
    assert values["inventory_file"] == str(FIXTURES / "nested" / "inventory.yml")
    assert values["inventory_dir"] == str(FIXTURES / "nested")


def test_magic_vars_win_over_extra_vars(nested: Inventory) -> None:
    layers = nested.host("db-b").layers.copy()
    layers.push("extra vars", "-e", {"inventory_hostname": "evil", "mariadb_port": 1})
    assert layers.merged()["inventory_hostname"] == "db-b"
    assert layers.merged()["mariadb_port"] == 1
    assert nested.host("db-b").vars["mariadb_port"] == 3307  # the copy left the host alone


def test_unused_vars_files_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    h1:\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "wbe.yml").write_text("a: 1\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "h1.yml").write_text("b: 2\n")
    inventory = Inventory.load(tmp_path / "inventory.yml")
    assert inventory.host("h1").vars["b"] == 2
    assert inventory.warnings == [f"{tmp_path}/group_vars/wbe.yml: no group of that name in the inventory"]


def test_to_ansible_list_shape(nested: Inventory) -> None:
    listed = nested.to_ansible_list()
    assert listed["all"] == {"children": ["ungrouped", "prod", "staging", "monitoring"]}
    assert "monitoring" not in listed  # empty groups are left out, as ansible-inventory does
    assert listed["eu"] == {"children": ["web_eu"]}
    assert listed["staging"] == {"hosts": ["stage1.example.com", "app03.example.com"]}
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == set(nested.hosts)
    assert "inventory_hostname" not in hostvars["db-a"]
    assert hostvars["stage1.example.com"]["ansible_port"] == 2222


def test_secrets_redacted_unless_asked() -> None:
    inventory = Inventory.from_data(
        {"all": {"hosts": {"h1": {"db_root_password": "hunter22", "token_file": "/etc/t", "api": Secret("abcd")}}}}
    )
    assert inventory.host_vars("h1") == {"db_root_password": REDACTED, "token_file": "/etc/t", "api": REDACTED}
    listed = inventory.to_ansible_list(show_secrets=True)
    assert listed["_meta"]["hostvars"]["h1"]["db_root_password"] == "hunter22"
    rows = explain_rows(inventory.explain("h1"))
    assert ("api", f'"{REDACTED}"') in [row[:2] for row in rows]
    assert "hunter22" not in repr(rows)


def test_secret_tag_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  vars:\n    admin_pw: !secret s3cr3t!\n  hosts:\n    h1:\n")
    inventory = Inventory.load(path)
    assert isinstance(inventory.host("h1").vars["admin_pw"], Secret)
    assert inventory.host_vars("h1")["admin_pw"] == REDACTED


def test_host_list_inventory() -> None:
    inventory = Inventory.load("web1,web2:2200,")
    assert list(inventory.hosts) == ["web1", "web2"]
    assert inventory.groups["ungrouped"].hosts == ["web1", "web2"]
    assert inventory.host_vars("web2") == {"ansible_port": 2200}
    assert "inventory_file" not in inventory.host("web1").vars
    assert Inventory.load("10.0.0.5,").host("10.0.0.5").vars["inventory_hostname_short"] == "10.0.0.5"


def test_from_data_without_base_dir_and_yaml_shapes() -> None:
    inventory = Inventory.from_data({"web": {"hosts": "w1", "children": "api"}, "api": {"hosts": {"a1": None}}})
    assert inventory.groups["web"].children == ["api"]
    assert inventory.members["web"] == ["w1", "a1"]
    assert inventory.groups["all"].children == ["ungrouped", "web"]


def test_group_defined_twice_merges() -> None:
    inventory = Inventory.from_data(
        {
            "all": {
                "children": {
                    "a": {"children": {"web": {"vars": {"x": 1}, "hosts": {"h1": None}}}},
                    "b": {"children": {"web": {"vars": {"y": 2}, "hosts": {"h2": {"z": 3}}}}},
                }
            }
        }
    )
    assert inventory.groups["web"].parents == ["a", "b"]
    assert inventory.groups["web"].vars == {"x": 1, "y": 2}
    assert inventory.host("h2").vars["z"] == 3
    assert inventory.host("h1").groups == ("all", "a", "web", "b")


def test_explicit_ungrouped_host_that_has_a_group_leaves_ungrouped() -> None:
    inventory = Inventory.from_data({"ungrouped": {"hosts": {"h1": None, "h2": None}}, "g": {"hosts": "h2"}})
    assert inventory.groups["ungrouped"].hosts == ["h1"]
    assert inventory.host("h2").groups == ("all", "g")


def test_host_port_in_inventory_key() -> None:
    inventory = Inventory.from_data({"all": {"hosts": {"db1:2222": None, "[2001:db8::1]:22": None, "::1": None}}})
    assert list(inventory.hosts) == ["db1", "2001:db8::1", "::1"]
    assert inventory.host("db1").vars["ansible_port"] == 2222
    assert "ansible_port" not in inventory.host("::1").vars
