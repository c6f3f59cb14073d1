"""``provision inventory``: the inventory as ``ansible-inventory`` shows it, plus ``--explain``.

Only the options that mean something here are offered (no --check, --forks, --tags ...).
Secret values (``!secret``, vault) print as ``********`` unless ``--show-secrets``: the one
documented difference from ansible-inventory, which prints vaulted values in its own encrypted
form.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import OptionsError

DESCRIPTION = """\
Show hosts, groups and variables, as ansible-inventory does for the same file:
  provision inventory --list              every group and host, with hostvars (JSON; --yaml for YAML)
  provision inventory --host app1         one host's variables
  provision inventory --graph [GROUP]     the group tree, in ansible-inventory's |--@group: shape
  provision inventory --host app1 --explain   each variable's level and the file:line it came from
  provision inventory --roles             each host's server roles (role_groups: db, db_replica, app ...)
  provision inventory --graph --roles     the group tree with each host's roles after its name
--limit keeps only the hosts it selects (ansible-inventory ignores it for --graph; we do not).
Secret values print as ******** unless --show-secrets."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("inventory", help="show the inventory (like ansible-inventory)",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default=os.environ.get("PROVISION_INVENTORY", "inventory.yml"),
                        help="inventory file (YAML or INI), or a comma list 'host1,host2,' "
                             "(default: $PROVISION_INVENTORY or ./inventory.yml)")
    parser.add_argument("-l", "--limit", help="only the hosts this pattern selects")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="every group and host, with hostvars (the default)")
    mode.add_argument("--host", metavar="HOST", help="one host's variables")
    mode.add_argument("--graph", nargs="?", const="all", metavar="GROUP", help="the group tree (from GROUP)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON output (the default)")
    output.add_argument("-y", "--yaml", action="store_true", help="YAML output (the inventory's YAML shape)")
    parser.add_argument("--explain", action="store_true", help="with --host: each variable's level and source")
    parser.add_argument("--roles", action="store_true",
                        help="each host's server roles (from role_groups); with --graph: after each host")
    parser.add_argument("--show-secrets", action="store_true", help="print secret values instead of ********")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv: tracebacks)")
    _add_vault_options(parser)
    parser.set_defaults(func=cmd_inventory)


def _add_vault_options(parser: argparse.ArgumentParser) -> None:
    """The vault password options, where the vault module exists (it reads !vault values in inventories)."""
    try:
        from .. import vaultkeys  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    vaultkeys.add_vault_options(parser.add_argument_group("vault"))


def cmd_inventory(args: argparse.Namespace) -> int:
    from ..cli import load_inventory
    from ..yamlfile import paused_gc

    if args.explain and not args.host:
        raise OptionsError("--explain needs --host HOST", hint="provision inventory --host app1 --explain")
    if args.graph and args.yaml:
        raise OptionsError("--yaml applies to --list and --host, not --graph")
    if args.roles and (args.host or args.list or args.yaml):
        raise OptionsError("--roles goes alone or with --graph", hint="provision inventory --graph --roles")
    with paused_gc():  # the listing below only allocates: see paused_gc
        return _show(args, load_inventory(args))


def _show(args: argparse.Namespace, inventory: Any) -> int:
    from ..inventory_graph import dump_yaml, graph_lines, limited_list, yaml_inventory
    from ..inventory_roles import inventory_roles, roles_lines

    for warning in inventory.warnings:
        _warn(warning)
    hosts = {h.name for h in inventory.select(args.limit)} if args.limit else None
    if args.limit and not hosts:
        raise OptionsError(f"--limit {args.limit!r} matches no host")
    if args.host:
        if args.explain:
            _print_explain(inventory, args.host, args.show_secrets)
        else:
            _emit(inventory.host_vars(args.host, show_secrets=args.show_secrets), args.yaml)
    elif args.graph:
        roles = inventory_roles(inventory) if args.roles else None
        print("\n".join(graph_lines(inventory, args.graph, hosts=hosts, roles=roles)))
    elif args.roles:
        roles = inventory_roles(inventory)
        if args.json:
            _emit({name: values for name, values in roles.items() if hosts is None or name in hosts}, False)
        else:
            print("\n".join(roles_lines(roles, hosts)))
    elif args.yaml:
        print(dump_yaml(yaml_inventory(inventory, hosts=hosts, show_secrets=args.show_secrets)), end="")
    else:
        listing = inventory.to_ansible_list(show_secrets=args.show_secrets)
        _emit(limited_list(listing, hosts) if hosts is not None else listing, False)
    return 0


def _emit(data: Any, as_yaml: bool) -> None:
    from ..inventory_graph import dump_yaml
    from ..jsontext import dumps_indented  # json.dumps(indent=4, sort_keys=True, default=str), faster

    print(dump_yaml(data), end="") if as_yaml else print(dumps_indented(data))


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def _print_explain(inventory: Any, host: str, show_secrets: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..variables import explain_rows

    table = Table(title=f"variables of {host}, highest level wins", title_justify="left")
    for column in ("variable", "value", "level", "source"):
        table.add_column(column, overflow="fold")
    for row in explain_rows(inventory.explain(host), show_secrets=show_secrets):
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)
