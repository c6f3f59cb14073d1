"""Ansible's command-line habits for ``playbook`` and ``deploy`` (and the connection ones for ad-hoc).

``--syntax-check`` validates offline (exit 0, or 4 with file:line); ``--list-hosts``,
``--list-tasks`` and ``--list-tags`` print what ``ansible-playbook`` prints and touch no host;
``--start-at-task``; ``-u/--user``, ``--private-key``, ``-b/--become``, ``--become-user``, which
fill in what the inventory leaves unset (an inventory ``ansible_user`` still wins, as in Ansible).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .errors import OptionsError
from .events import SilentReporter

if TYPE_CHECKING:
    from .playbook import Playbook


def add_connection_options(parser: argparse.ArgumentParser, *, become: bool = True) -> None:
    """``-u``, ``--private-key`` and (unless the command has its own) ``-b``/``--become-user``."""
    group = parser.add_argument_group("connection (like ansible)")
    group.add_argument("-u", "--user", dest="remote_user", metavar="USER",
                       help="SSH login user for hosts whose inventory sets none")
    group.add_argument("--private-key", "--key-file", dest="private_key_file", metavar="FILE",
                       help="SSH private key for hosts whose inventory sets none")
    if become:
        group.add_argument("-b", "--become", action="store_true", help="run tasks as root via sudo")
        group.add_argument("--become-user", metavar="USER", help="sudo to this user (with -b; default root)")


def add_playbook_options(parser: argparse.ArgumentParser) -> None:
    """The listing and start options of ``ansible-playbook``, plus the connection ones."""
    group = parser.add_argument_group("playbook (like ansible-playbook)")
    group.add_argument("--syntax-check", action="store_true",
                       help="validate the playbook (and the inventory, when there is one) offline; exit 0 or 4")
    group.add_argument("--list-hosts", action="store_true", help="list the hosts each play would run on")
    group.add_argument("--list-tasks", action="store_true", help="list the tasks each play would run")
    group.add_argument("--list-tags", action="store_true", help="list the tags of each play's tasks")
    group.add_argument("--start-at-task", metavar="NAME", help="start at the first task of this name (a glob)")
    add_connection_options(parser)


def run_option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``RunOptions`` fields these options set (absent options leave the defaults)."""
    values: dict[str, Any] = {}
    names = ["remote_user", "private_key_file", "start_at_task"]
    if getattr(args, "command", None) != "run":  # `run` has its own -b, for its one ad-hoc task
        names.append("become_user")
        if getattr(args, "become", False):
            values["become"] = True
    for name in names:
        if getattr(args, name, None):
            values[name] = getattr(args, name)
    if values.get("become_user") and "become" not in values:
        raise OptionsError("--become-user needs -b/--become", hint="add -b, as with ansible-playbook")
    return values


def missing_inventory_hint(source: str) -> str:
    """The fix for an ``-i`` that is no file: a one-host list needs its trailing comma, as in Ansible."""
    looks_like_file = "/" in source or source.endswith((".yml", ".yaml", ".ini", ".cfg", ".txt", ".json"))
    if source and not looks_like_file and " " not in source:
        return f"to give hosts on the command line, end the list with a comma: -i '{source},'"
    return "pass -i FILE, set PROVISION_INVENTORY, or run `provision init DIR` to start one"


def before_run(args: argparse.Namespace, playbook: Playbook, pattern: str | None) -> int | None:
    """Handle the listing modes and checks that come before a run; an exit code ends the command."""
    from .playbook_listing import ListingRequest, has_task_named, listing, unmatched_tags

    start = getattr(args, "start_at_task", None)
    if start and not has_task_named(playbook, start):
        raise OptionsError(f"--start-at-task {start!r}: no task of that name in {playbook.path}",
                           hint="`--list-tasks` shows the task names")
    request = ListingRequest(hosts=getattr(args, "list_hosts", False), tasks=getattr(args, "list_tasks", False),
                             tags=getattr(args, "list_tags", False))
    if getattr(args, "syntax_check", False):
        _check_offline(args, playbook, pattern)
        print(f"\nplaybook: {playbook.path}")
        return 0
    if request.hosts or request.tasks or request.tags:
        from .cli import load_inventory, run_options

        options = run_options(args, pattern)
        inventory = load_inventory(args) if request.hosts else None
        sys.stdout.write(listing(playbook, request, inventory=inventory, limit=options.limit,
                                 tags=options.tags, skip_tags=options.skip_tags))
        return 0
    for option in ("tags", "skip_tags"):
        wanted = [t.strip() for t in str(getattr(args, option, "") or "").split(",") if t.strip()]
        for tag in unmatched_tags(playbook, wanted):
            _warn(f"--{option.replace('_', '-')} {tag!r} matches no task in {playbook.path.name}")
    return None


def _check_offline(args: argparse.Namespace, playbook: Playbook, pattern: str | None) -> None:
    """What a run checks before touching a host: patterns, connection settings, vars files, templates."""
    from pathlib import Path

    from .cli import load_inventory, run_options
    from .events import Reporter
    from .runner import Runner

    source = str(args.inventory)
    if not Path(source).exists() and "," not in source:
        return  # the playbook alone is valid; there is no inventory to hold it against
    reporter: Reporter = SilentReporter()
    Runner(load_inventory(args), run_options(args, pattern), reporter, redactor=args.redactor).prepare(playbook)


def innermost_parser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The (sub-)sub-command parser the words name, e.g. ``lab up``'s for ``lab up --bad``."""
    current = parser
    for word in words:
        choices = next((a.choices for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        if isinstance(choices, dict) and word in choices:
            current = choices[word]
    return current


def _warn(message: str) -> None:
    from rich.console import Console

    from .output.render import warning_line

    Console(stderr=True, soft_wrap=True).print(warning_line(message, None, 0), highlight=False)

