"""The hosts a backup command works on: their variables (deploy defaults under the inventory), connection, paths."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..connection import LocalConnection, SSHConnection
from ..errors import InventoryError, OptionsError
from ..inventory import Inventory
from ..runstate import RunOptions
from ..secrets import Redactor, secret_values
from ..templating import Templar


class HostConnection(Protocol):
    """What the backup needs of a connection (SSHConnection and LocalConnection both have it)."""

    name: str

    def open(self) -> None: ...

    def run_bytes(self, script: str, *, stdin: bytes | None = None, become_user: str | None = None,
                  timeout: float | None = None) -> tuple[int, bytes, bytes]: ...

    def close(self) -> None: ...


@dataclass
class HostTarget:
    """One host: where its bench is, who runs it, how to reach it."""

    name: str
    group: str
    variables: Mapping[str, Any]
    connection: HostConnection

    def var(self, name: str, default: Any = None) -> Any:
        return self.variables.get(name, default)

    @property
    def frappe_user(self) -> str:
        return str(self.var("frappe_user", "frappe"))

    @property
    def frappe_home(self) -> str:
        return str(self.var("frappe_home", "/home/frappe"))

    @property
    def bench_path(self) -> str:
        return str(self.var("bench_path") or f"{self.frappe_home}/{self.var('bench_name', 'frappe-bench')}")

    @property
    def shared_path(self) -> str:
        return str(self.var("shared_path") or f"{self.frappe_home}/shared")

    @property
    def sites_dir(self) -> str:
        return f"{self.shared_path}/sites"

    @property
    def bench_cli(self) -> str:
        return str(self.var("bench_cli", "bench"))

    @property
    def host_backup_root(self) -> str:
        """Where the host keeps a backup while it is being pulled (removed once verified)."""
        return str(self.var("backup_host_dir") or f"{self.frappe_home}/provision-backups")


def deploy_defaults() -> dict[str, Any]:
    """The deploy's variable defaults (the project's own playbooks/vars file wins over the built-in one)."""
    from ..runner import builtin_dir
    from ..variables import load_vars_file

    project = Path.cwd() / "playbooks" / "vars" / "deploy_defaults.yml"
    path = project if project.exists() else builtin_dir("playbooks") / "vars" / "deploy_defaults.yml"
    return dict(load_vars_file(path)) if path.exists() else {}


def select_targets(inventory: Inventory, options: RunOptions, pattern: str | None, redactor: Redactor,
                   cancel: threading.Event, *, one_per_bench: bool = False,
                   names: list[str] | None = None) -> list[HostTarget]:
    """The hosts ``pattern`` (and --limit) select (or ``names``), each with its variables and an unopened
    connection; ``one_per_bench``: a multi-server bench's sites once, from its first app host."""
    from ..connspec import connection_spec

    hosts = [inventory.hosts[n] for n in names] if names is not None else \
        inventory.select(options.limit or pattern or "all")
    if not hosts:
        raise InventoryError(f"{options.limit or pattern!r} matches no host in {inventory.file}")
    if one_per_bench:
        kept, _ = multiserver_hosts(inventory, [h.name for h in hosts])
        hosts = [inventory.hosts[n] for n in kept]
    templar = Templar()
    defaults = deploy_defaults()
    targets = []
    for host in hosts:
        merged = {**defaults, **host.vars, **options.extra_vars}
        redactor.add(secret_values(merged))
        lazy = templar.variables(merged)
        spec = connection_spec(host.name, lazy)
        if spec.become_password is None and options.become_password is not None:
            spec = replace(spec, become_password=options.become_password)
        connection: HostConnection
        if spec.local:
            connection = LocalConnection(host.name, cancel=cancel)
        else:
            connection = SSHConnection(spec, known_hosts=options.known_hosts, ssh_config=options.ssh_config,
                                       connect_timeout=options.connect_timeout, cancel=cancel)
        groups = [g for g in host.groups if g not in ("all", "ungrouped")]
        group = pattern if pattern in inventory.groups and pattern in host.groups else (
            sorted(groups)[0] if groups else "ungrouped")
        targets.append(HostTarget(host.name, group, lazy, connection))
    return targets


def backup_dir_of(targets: list[HostTarget], inventory: Inventory, override: Path | None) -> Path:
    """The control host's backup directory: --backup-dir, else ``backup_dir`` (relative to the inventory)."""
    if override is not None:
        return override.resolve()
    values = {str(t.var("backup_dir", "backups")) for t in targets}
    if len(values) > 1:
        raise OptionsError(f"the selected hosts name different backup_dir values ({', '.join(sorted(values))})",
                           hint="set backup_dir once for the group, or back up one group at a time")
    base = inventory.base_dir or Path.cwd()
    return (base / values.pop()).resolve()


def multiserver_hosts(inventory: Inventory, selected: list[str]) -> tuple[list[str], list[str]]:
    """(the hosts to back up, the app hosts) for a selection of a multi-server inventory.

    The sites of app hosts are one set, shared by every app host (one database on the ``db``
    host, the files on the ``files`` host): each is backed up once, from the first app host. The
    ``db``, ``redis``, ``files`` and ``lb`` hosts have no bench of their own. A host in no role
    group is a one-host bench and is backed up as always. Without role groups nothing changes.
    """
    from ..rolegroups import role_members

    members = role_members(inventory)
    app = members["app"]
    if not app:
        return selected, []
    roles = {h for hosts in members.values() for h in hosts}
    hosts = [h for h in selected if h not in roles]
    if any(h in roles for h in selected):
        hosts.insert(0, app[0])
    return hosts, app
