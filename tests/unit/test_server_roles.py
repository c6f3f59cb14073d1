"""Server roles from inventory groups, the checks on them, and the deploy defaults derived from them."""

from __future__ import annotations

from typing import Any

import pytest

from provision.server_roles import (
    is_multiserver,
    private_address,
    private_addresses,
    role_problems,
    roles_of,
    server_roles,
)

from .test_templates import Derived, make_env, variables

pytestmark = pytest.mark.unit

ROLE_GROUPS = {"db": "db", "db_replica": "db_replica", "redis": "redis", "files": "files", "app": "app", "lb": "lb"}
FIVE = {"all": ["lb", "app1", "app2", "db", "store"], "prod": ["lb", "app1", "app2", "db", "store"],
        "lb": ["lb"], "app": ["app1", "app2"], "db": ["db"], "redis": ["store"], "files": ["store"]}
HOSTVARS: dict[str, dict[str, Any]] = {"lb": {"ssh_host": "10.0.0.1"}, "app1": {"ssh_host": "10.0.0.2"},
                                       "app2": {"ansible_host": "10.0.0.3", "private_address": "192.168.1.3"},
                                       "db": {"ssh_host": "10.0.0.4"}, "store": {}}


def test_roles_come_from_the_named_groups_in_inventory_order() -> None:
    roles = server_roles(FIVE, ROLE_GROUPS)
    assert roles == {"db": ["db"], "db_replica": [], "redis": ["store"], "files": ["store"], "app": ["app1", "app2"],
                     "lb": ["lb"]}
    assert roles_of(roles, "store") == ["redis", "files"]
    assert roles_of(roles, "lb") == ["lb"] and roles_of(roles, "elsewhere") == []
    assert is_multiserver(roles)


def test_group_names_are_configurable_and_each_role_optional() -> None:
    groups = {"all": ["a", "b"], "web": ["a", "b"], "database": ["b"]}
    roles = server_roles(groups, {"app": "web", "db": "database", "lb": None, "redis": ""})
    assert roles["app"] == ["a", "b"] and roles["db"] == ["b"] and roles["lb"] == [] and roles["redis"] == []


def test_an_inventory_without_role_groups_has_no_roles() -> None:
    roles = server_roles({"all": ["h1", "h2"], "prod": ["h1", "h2"]}, ROLE_GROUPS)
    assert not is_multiserver(roles) and role_problems(roles) == []
    assert all(hosts == [] for hosts in roles.values())


def test_private_address_defaults_to_the_connection_address() -> None:
    assert private_address(HOSTVARS, "app1") == "10.0.0.2"
    assert private_address(HOSTVARS, "app2") == "192.168.1.3"  # private_address wins over ansible_host
    assert private_address(HOSTVARS, "store") == "store"  # no address: the inventory name
    assert private_addresses(["app1", "app2", "app1"], HOSTVARS) == ["10.0.0.2", "192.168.1.3"]


@pytest.mark.parametrize(("groups", "problem"), [
    ({"db": ["d"], "redis": ["r"]}, "the role groups need an app group"),
    ({"app": ["a"], "db": ["d1", "d2"]}, "the db group has 2 hosts; it takes exactly one (d1, d2)"),
    ({"app": ["a"], "db_replica": ["r"]}, "db_replica hosts need a db host"),
    ({"app": ["a", "b"], "lb": ["b"]}, "b: an lb host cannot also be an app host"),
])
def test_layouts_that_cannot_work_are_named(groups: dict[str, list[str]], problem: str) -> None:
    problems = role_problems(server_roles(groups, ROLE_GROUPS))
    assert any(problem in p for p in problems), problems


def derived(host: str, **overrides: Any) -> Derived:
    values = variables(inventory_hostname=host, groups=FIVE, hostvars=HOSTVARS, sites=[], **overrides)
    return Derived(make_env(), values)


def test_deploy_defaults_derive_each_hosts_part() -> None:
    app1, app2, store, db = derived("app1"), derived("app2"), derived("store"), derived("db")
    assert app1["multiserver"] is True and app1["bench_host"] is True and app1["site_creator"] is True
    assert app2["site_creator"] is False and app2["runs_scheduler"] is False and app1["runs_scheduler"] is True
    assert store["bench_host"] is False and store["host_roles"] == ["redis", "files"]
    assert db["bench_host"] is False and db["host_private_address"] == "10.0.0.4"
    assert app1["remote_db_host"] == "10.0.0.4" and app1["remote_redis_host"] == "store"
    assert app1["app_addresses"] == ["10.0.0.2", "192.168.1.3"]
    assert app1["lb_addresses"] == ["10.0.0.1"] and db["lb_addresses"] == []
    assert derived("app1", scheduler_host="app2")["runs_scheduler"] is False
    assert derived("app2", scheduler_host="app2")["runs_scheduler"] is True


def test_a_single_host_inventory_derives_todays_bench() -> None:
    one = Derived(make_env(), variables())
    assert one["multiserver"] is False and one["bench_host"] is True and one["site_creator"] is True
    assert one["runs_scheduler"] is True and one["remote_db_host"] == "" and one["remote_redis_host"] == ""
