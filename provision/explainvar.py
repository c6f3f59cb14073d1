"""``provision playbook FILE --explain-var NAME --limit H``: where a variable's value comes from.

For each play that runs on each selected host, the value the play starts with, its level and
``file:line`` (play defaults, inventory, group/host vars files, play vars, vars_files, ``-e``,
magic: see ``provision.variables``), what it overrides, and the tasks that set it once the run
is under way (block/task ``vars:``, ``register``, ``set_fact``): those are known only then.
Nothing connects to a host.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from .events import SilentReporter
from .playbook import Play, Playbook, Task, walk_tasks
from .registry import get_module
from .runner import Runner
from .secrets import is_secret_name
from .variables import RUNTIME, TASK_VARS, Explained, short_json


@dataclass(frozen=True)
class VariableOrigin:
    """One variable on one host in one play."""

    host: str
    play: Play
    explained: Explained | None
    # (level, where) of tasks that set it while the play runs, in play order.
    later: list[tuple[str, str]] = field(default_factory=list)


def explain_variable(runner: Runner, playbook: Playbook, name: str) -> list[VariableOrigin]:
    """The origins of ``name`` on every host the run would touch (``runner`` prepared here)."""
    if runner.shared is None:
        runner.prepare(playbook)
    origins = []
    for play in playbook.plays:
        setters = _setters(play, name)
        for host in runner.play_hosts(play):
            layers = runner.play_layers(play, runner.hosts[host.name])
            found = next((e for e in layers.explain() if e.name == name), None)
            origins.append(VariableOrigin(host.name, play, found, setters))
    return origins


def _setters(play: Play, name: str) -> list[tuple[str, str]]:
    found = []
    for task in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers]):
        if name in task.vars:
            found.append((TASK_VARS, _where(task)))
        if task.register == name:
            found.append((RUNTIME, f"register of {_where(task)}"))
        cls = get_module(task.module) if task.module else None
        if cls is not None and cls.sets_variables and name in task.args:
            found.append((RUNTIME, f"set_fact {_where(task)}"))
    return found


def _where(task: Task) -> str:
    return f"task {task.name!r} ({task.source})"


def render_origins(origins: list[VariableOrigin], name: str, *, show_secrets: bool = False) -> str:
    """The origins as text, one paragraph per host and play."""
    secret = is_secret_name(name)
    if not origins:
        return f"{name}: no play runs on the selected hosts\n"
    out = []
    for origin in origins:
        out.append(f"{name} on {origin.host}, play {origin.play.name!r} ({origin.play.source}):")
        item = origin.explained
        if item is None:
            out.append("  not defined when the play starts")
        else:
            value = short_json(item.value, show_secrets=show_secrets, secret=secret)
            out.append(f"  = {value}    {item.level}    {item.source}")
            for level, source, lost in item.overridden:
                out.append(f"  overrides {short_json(lost, show_secrets=show_secrets, secret=secret)}    "
                           f"{level}    {source}")
        for level, where in origin.later:
            out.append(f"  then set at run time ({level}) by {where}")
    return "\n".join(out) + "\n"


def print_explained(args: argparse.Namespace, playbook: Playbook, name: str) -> int:
    """The CLI side: build the run as ``provision playbook`` would, print the origins, run nothing."""
    from .cli import load_inventory, run_options

    runner = Runner(load_inventory(args), run_options(args, args.pattern), SilentReporter())
    print(render_origins(explain_variable(runner, playbook, name), name), end="")
    return 0

