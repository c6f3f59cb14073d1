"""What ``ansible-playbook --list-hosts / --list-tasks / --list-tags`` print, for our playbooks.

Pure functions from a parsed playbook (and the inventory, for hosts) to the text Ansible prints,
so an Ansible user reads the same shape::

    playbook: site.yml

      play #1 (web): Web servers	TAGS: []
        pattern: ['web']
        hosts (2):
          app1
          app2
        tasks:
          Install nginx	TAGS: [nginx]

Includes are static here (read at parse time), so included tasks are listed too, as Ansible lists
``import_tasks``. Also: which ``--tags`` match no task, and whether ``--start-at-task`` names one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .inventory import Inventory
from .playbook import Play, Playbook, Task, tag_selected, walk_tasks
from .runstate import RunOptions

# Tags with a meaning of their own: never "unmatched".
SPECIAL_TAGS = frozenset({"all", "tagged", "untagged", "always", "never"})


@dataclass(frozen=True)
class ListingRequest:
    """Which listings to print (several may be combined, as in Ansible)."""

    hosts: bool = False
    tasks: bool = False
    tags: bool = False


def play_tasks(play: Play) -> list[Task]:
    """The play's runnable tasks in order (blocks flattened; handlers left out, as Ansible lists them)."""
    return [t for t in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks]) if not t.is_block]


def all_tags(playbook: Playbook) -> frozenset[str]:
    """Every tag of every task and handler of the playbook."""
    found: set[str] = set()
    for play in playbook.plays:
        found.update(play.tags)
        for task in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers]):
            found.update(task.tags)
    return frozenset(found)


def unmatched_tags(playbook: Playbook, wanted: Iterable[str]) -> list[str]:
    """The ``--tags``/``--skip-tags`` values that no task carries (the special tags never count)."""
    present = all_tags(playbook)
    return sorted(tag for tag in set(wanted) if tag not in SPECIAL_TAGS and tag not in present)


def has_task_named(playbook: Playbook, pattern: str) -> bool:
    """True when some task's name is ``pattern`` or matches it as a glob (``--start-at-task``)."""
    return any(task.name == pattern or fnmatch.fnmatchcase(task.name, pattern)
               for play in playbook.plays for task in play_tasks(play))


def selected_task_count(play: Play, options: RunOptions) -> int:
    """How many tasks of ``play`` a host will start, with the run's tags (for progress)."""
    return sum(1 for task in play_tasks(play) if tag_selected(task.tags, options.tags, options.skip_tags))


def _tag_list(tags: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(tags)) + "]"


def _hosts_of(inventory: Inventory, play: Play, limit: set[str] | None) -> list[str]:
    names = [host.name for host in inventory.select(play.hosts, source=play.source)]
    return [name for name in names if limit is None or name in limit]


def listing(playbook: Playbook, request: ListingRequest, *, inventory: Inventory | None = None,
            limit: str | None = None, tags: frozenset[str] = frozenset(),
            skip_tags: frozenset[str] = frozenset()) -> str:
    """The text ``ansible-playbook`` prints for ``--list-hosts``, ``--list-tasks`` and/or ``--list-tags``."""
    return "\n".join(_lines(playbook, request, inventory, limit, tags, skip_tags)) + "\n"


def _lines(playbook: Playbook, request: ListingRequest, inventory: Inventory | None, limit: str | None,
           tags: frozenset[str], skip_tags: frozenset[str]) -> Iterator[str]:
    limited = {h.name for h in inventory.select(limit)} if inventory is not None and limit else None
    yield ""
    yield f"playbook: {playbook.path}"
    for number, play in enumerate(playbook.plays, start=1):
        yield ""
        yield f"  play #{number} ({play.hosts}): {play.name}\t" + f"TAGS: {_tag_list(play.tags)}"
        if request.hosts:
            hosts = _hosts_of(inventory, play, limited) if inventory is not None else []
            yield f"    pattern: {[play.hosts]!r}"
            yield f"    hosts ({len(hosts)}):"
            yield from (f"      {name}" for name in hosts)
        selected = [t for t in play_tasks(play) if tag_selected(t.tags, tags, skip_tags)]
        if request.tasks:
            yield "    tasks:"
            yield from (f"      {task.label()}\tTAGS: {_tag_list(task.tags)}" for task in selected)
        if request.tags:
            task_tags = {tag for task in selected for tag in task.tags}
            yield f"      TASK TAGS: {_tag_list(task_tags)}"
