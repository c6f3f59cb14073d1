"""Connection settings from host variables: our names, Ansible's aliases, types."""

from __future__ import annotations

from typing import Any

import pytest

from provision.errors import InventoryError
from provision.inventory import ConnectionSpec, Inventory, connection_spec
from provision.secrets import REDACTED, Secret

pytestmark = pytest.mark.unit


def test_defaults_use_the_name_and_leave_port_and_user_to_ssh_config() -> None:
    assert connection_spec("app1.example.com", {}) == ConnectionSpec(name="app1.example.com", host="app1.example.com")


def test_our_names() -> None:
    spec = connection_spec(
        "app1",
        {
            "ssh_host": "192.0.2.5",
            "ssh_port": 2222,
            "ssh_user": "deploy",
            "ssh_private_key_file": "~/.ssh/deploy",
            "ssh_known_hosts_file": "known_hosts",
            "ssh_password": Secret("pw-1234"),
            "become": True,
            "become_user": "frappe",
            "become_password": Secret("sudo-pw"),
        },
    )
    assert (spec.host, spec.port, spec.user, spec.private_key_file, spec.known_hosts_file) == (
        "192.0.2.5", 2222, "deploy", "~/.ssh/deploy", "known_hosts",
    )
    assert spec.password == "pw-1234" and isinstance(spec.password, Secret)
    assert (spec.become, spec.become_user, spec.become_password, spec.local) == (True, "frappe", "sudo-pw", False)
    assert "pw-1234" not in repr(spec) and "sudo-pw" not in repr(spec)


@pytest.mark.parametrize(
    ("variables", "field", "expected"),
    [
        ({"ansible_host": "10.0.0.1"}, "host", "10.0.0.1"),
        ({"ansible_port": "2200"}, "port", 2200),
        ({"ansible_user": "admin"}, "user", "admin"),
        ({"ansible_ssh_private_key_file": "k"}, "private_key_file", "k"),
        ({"ansible_ssh_pass": "p"}, "password", "p"),
        ({"ansible_password": "p"}, "password", "p"),
        ({"ansible_become": "yes"}, "become", True),
        ({"ansible_become": "False"}, "become", False),
        ({"ansible_become_user": "frappe"}, "become_user", "frappe"),
        ({"ansible_become_password": "b"}, "become_password", "b"),
        ({"ansible_become_pass": "b"}, "become_password", "b"),
        ({"ansible_connection": "local"}, "local", True),
        ({"ansible_connection": "ssh"}, "local", False),
        ({"connection": "local"}, "local", True),
        ({"ssh_user": 1000}, "user", "1000"),
    ],
)
def test_ansible_aliases(variables: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(connection_spec("h", variables), field) == expected


def test_our_name_wins_over_the_alias() -> None:
    spec = connection_spec("h", {"ansible_user": "admin", "ssh_user": "deploy", "ansible_port": 22, "ssh_port": 2222})
    assert (spec.user, spec.port) == ("deploy", 2222)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ssh_port": "{{ port }}"}, "ssh_port must be a port number (1-65535), not '{{ port }}'"),
        ({"ansible_port": 70000}, "ansible_port must be a port number"),
        ({"become": "maybe"}, "become must be true or false"),
        ({"ssh_user": ["a"]}, "ssh_user must be a string"),
        ({"ansible_connection": "docker"}, "connection 'docker' is not supported"),
        ({"become": Secret("hunter22")}, "become must be true or false, not a secret"),
    ],
)
def test_bad_settings(variables: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError, match="host 'h': ") as caught:
        connection_spec("h", variables)
    assert message in caught.value.message
    assert "hunter22" not in str(caught.value)


def test_host_connection_from_inventory() -> None:
    inventory = Inventory.from_data(
        {"all": {"vars": {"ansible_user": "admin"}, "hosts": {"db1:2222": {"become_password": Secret("abcdef")}}}}
    )
    spec = inventory.host("db1").connection()
    assert (spec.host, spec.port, spec.user, spec.become_password) == ("db1", 2222, "admin", "abcdef")
    assert inventory.host_vars("db1")["become_password"] == REDACTED
