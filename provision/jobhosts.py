"""Hosts and their connections for jobs that run outside a playbook (unlock, locks, ...).

The same connection settings and host key checks as a playbook run: the host's variables with
``-e`` on top, templated, then ``connection_spec``; the known_hosts files of ``run_options``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from .connection import Connection, LocalConnection, SSHConnection
from .errors import InventoryError, ProvisionError
from .inventory import Host, connection_spec
from .runstate import RunOptions
from .secrets import secret_values
from .templating import Templar


@dataclass
class JobHost:
    """A selected host: its inventory entry, its templated variables and its (unopened) connection."""

    host: Host
    variables: Any
    connection: Connection

    @property
    def name(self) -> str:
        return self.host.name


def job_hosts(args: argparse.Namespace, pattern: str) -> tuple[RunOptions, list[JobHost]]:
    """The hosts matching ``pattern`` (and ``--limit``), each with a connection to open."""
    from .cli import load_inventory, run_options

    options = run_options(args, pattern)
    inventory = load_inventory(args)
    hosts = inventory.select(options.limit)
    templar = Templar()
    selected: list[JobHost] = []
    for host in hosts:
        merged = {**host.vars, **options.extra_vars}
        args.redactor.add(secret_values(merged))
        variables = templar.variables(merged)
        try:
            spec = connection_spec(host.name, variables)
        except ProvisionError as exc:
            raise InventoryError(str(exc.message), source=exc.source or host.source, hint=exc.hint) from None
        connection: Connection
        if spec.local:
            connection = LocalConnection(host.name, become_password=options.become_password)
        else:
            if spec.become_password is None and options.become_password is not None:
                spec = replace(spec, become_password=options.become_password)
            connection = SSHConnection(spec, known_hosts=options.known_hosts, ssh_config=options.ssh_config,
                                       connect_timeout=options.connect_timeout)
        selected.append(JobHost(host, variables, connection))
    return options, selected
