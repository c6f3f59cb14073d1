"""Server roles from inventory groups: which hosts are the database, Redis, shared files, app servers and lb.

``role_groups`` (playbooks/vars/deploy_defaults.yml) names the inventory group of each role; every role
is optional. An inventory with none of those groups has no roles: every host stays a complete one-host
bench, exactly as before. The templates and playbooks read the roles through the Jinja filters below
(``server_roles``, ``private_addresses``), so the one derivation is unit-tested here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ROLES = ("db", "db_replica", "redis", "files", "app", "lb")
# The connection address variables, ours first, then Ansible's (provision/connspec.py reads the same).
_ADDRESS_VARS = ("private_address", "ssh_host", "ansible_host", "ansible_ssh_host")


def server_roles(groups: Mapping[str, Sequence[str]], role_groups: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Each role's hosts, in inventory order: ``{"db": [...], ..., "app": [...], "lb": [...]}``.

    A role whose group is unset (null or "") or absent from the inventory has no hosts.
    """
    names = role_groups or {}
    roles: dict[str, list[str]] = {}
    for role in ROLES:
        group = names.get(role)
        roles[role] = list(dict.fromkeys(groups.get(str(group), []))) if group else []
    return roles


def roles_of(roles: Mapping[str, Sequence[str]], host: str) -> list[str]:
    """The roles ``host`` has (ROLES order)."""
    return [role for role in ROLES if host in roles.get(role, ())]


def is_multiserver(roles: Mapping[str, Sequence[str]]) -> bool:
    """True when any role has a host: the inventory describes a multi-server deployment."""
    return any(roles.get(role) for role in ROLES)


def private_address(hostvars: Mapping[str, Mapping[str, Any]], host: str) -> str:
    """The address other hosts reach ``host`` on: ``private_address``, else its connection address."""
    values = hostvars.get(host) or {}
    for name in _ADDRESS_VARS:
        value = values.get(name)
        if value not in (None, ""):
            return str(value)
    return host


def private_addresses(hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``private_address`` of each host, in order, without repeats."""
    return list(dict.fromkeys(private_address(hostvars, host) for host in hosts))


def role_problems(roles: Mapping[str, Sequence[str]]) -> list[str]:
    """What is wrong with a multi-server layout (empty when fine or when there are no roles)."""
    if not is_multiserver(roles):
        return []
    problems: list[str] = []
    if not roles.get("app"):
        problems.append("the role groups need an app group: the hosts that run the benches")
    for role in ("db", "redis", "files"):
        if len(roles.get(role) or []) > 1:
            problems.append(f"the {role} group has {len(roles[role])} hosts; it takes exactly one "
                            f"({', '.join(roles[role])})")
    if roles.get("db_replica") and not roles.get("db"):
        problems.append("db_replica hosts need a db host to replicate from")
    both = [host for host in roles.get("lb") or [] if host in (roles.get("app") or [])]
    if both:
        problems.append(f"{', '.join(both)}: an lb host cannot also be an app host (both serve ports 80/443)")
    return problems


FILTERS = {
    "server_roles": server_roles,
    "roles_of": roles_of,
    "private_addresses": private_addresses,
    "role_problems": role_problems,
}

__all__ = ["FILTERS", "ROLES", "is_multiserver", "private_address", "private_addresses", "role_problems",
           "roles_of", "server_roles"]
