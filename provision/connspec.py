"""How to reach a host: ``ConnectionSpec`` from its variables, our names or Ansible's.

Our names: ``ssh_host``, ``ssh_port``, ``ssh_user``, ``ssh_private_key_file``,
``ssh_known_hosts_file``, ``ssh_password``, ``become``, ``become_user``, ``become_password``,
``connection`` (``ssh`` or ``local``). Ansible's aliases are read too (``ansible_host``,
``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_ssh_pass`` /
``ansible_password``, ``ansible_become``, ``ansible_become_user``, ``ansible_become_password`` /
``ansible_become_pass``, ``ansible_connection``); when both are set, ours wins. Values must be
rendered first: this module converts types, it does not evaluate templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InventoryError
from .secrets import Secret

# Our variable names first: when both ours and Ansible's alias are set, ours wins.
_ALIASES: dict[str, tuple[str, ...]] = {
    "host": ("ssh_host", "ansible_host", "ansible_ssh_host"),
    "port": ("ssh_port", "ansible_port", "ansible_ssh_port"),
    "user": ("ssh_user", "ansible_user", "ansible_ssh_user"),
    "private_key_file": ("ssh_private_key_file", "ansible_ssh_private_key_file", "ansible_private_key_file"),
    "known_hosts_file": ("ssh_known_hosts_file",),
    "password": ("ssh_password", "ansible_ssh_pass", "ansible_password", "ansible_ssh_password"),
    "become": ("become", "ansible_become"),
    "become_user": ("become_user", "ansible_become_user"),
    "become_password": ("become_password", "ansible_become_password", "ansible_become_pass"),
    "connection": ("connection", "ansible_connection"),
}
ALIASES = _ALIASES  # read by the CLI to name the variable in an error
_TRUE = frozenset({"yes", "true", "on", "1", "y"})
_FALSE = frozenset({"no", "false", "off", "0", "n", ""})
_SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh"})


@dataclass(frozen=True)
class ConnectionSpec:
    """How to reach one host; ``port``/``user`` None mean "from ~/.ssh/config, else the defaults"."""

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    private_key_file: str | None = None
    known_hosts_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become: bool = False
    become_user: str | None = None
    become_password: str | None = field(default=None, repr=False)
    local: bool = False


def connection_spec(name: str, variables: Mapping[str, Any]) -> ConnectionSpec:
    """The connection settings of host ``name`` from its rendered variables (ours win over aliases)."""

    def pick(setting: str) -> tuple[str, Any]:
        for variable in _ALIASES[setting]:
            if variables.get(variable) is not None:
                return variable, variables[variable]
        return _ALIASES[setting][0], None

    def text(setting: str) -> str | None:
        variable, value = pick(setting)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _bad_setting(name, variable, value, "a string")

    port_variable, port = pick("port")
    if port is not None:
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise _bad_setting(name, port_variable, port, "a port number (1-65535)")
    become_variable, become = pick("become")
    connection = (text("connection") or "ssh").strip().lower()
    if connection not in _SSH_CONNECTIONS and connection != "local":
        raise InventoryError(
            f"host {name!r}: connection {connection!r} is not supported",
            hint="set connection (or ansible_connection) to 'ssh' or 'local'",
        )
    return ConnectionSpec(
        name=name,
        host=text("host") or name,
        port=port,
        user=text("user"),
        private_key_file=text("private_key_file"),
        known_hosts_file=text("known_hosts_file"),
        password=text("password"),
        become=_boolean(name, become_variable, become),
        become_user=text("become_user"),
        become_password=text("become_password"),
        local=connection == "local",
    )


def _boolean(host: str, variable: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad_setting(host, variable, value, "true or false")


def _bad_setting(host: str, variable: str, value: Any, expected: str) -> InventoryError:
    shown = "a secret" if isinstance(value, Secret) else repr(value)
    return InventoryError(
        f"host {host!r}: {variable} must be {expected}, not {shown}",
        hint=f"fix {variable} in the inventory, group_vars/host_vars or -e (templates are rendered first)",
    )
