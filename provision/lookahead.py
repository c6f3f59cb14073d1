"""Look-ahead probing: the checks of upcoming tasks travel to the host together.

When a task's probe is not cached, ``Lookahead`` renders the tasks that follow (as far as their
arguments can be known now) and sends every probe, as each user, in one script on one channel.
After a change it gives the changing script the probes of the next few tasks to run at its end.
Everything about which probes go when lives here; the host run only asks for answers. It reads
tasks through ``TaskEvaluation``, as the host run does.
"""

from __future__ import annotations

from typing import Any

from .connection import Connection
from .context import HostContext
from .contract import Module
from .errors import ConnectError, ProvisionError
from .evaluation import TaskEvaluation
from .playbook import Task
from .probes import ProbeKey, batch_script, new_nonce, split_answers
from .registry import get_module

LOOKAHEAD = 64  # tasks probed ahead in one batch
MAX_LOOKAHEAD_KEYS = 512  # probes in one batch (loops expand to one per item)
POST_CHANGE_PROBES = 4  # probes re-sent at the end of a changing script


class Lookahead:
    """Probe answers for one host's run of a play, batched ahead."""

    def __init__(self, run: TaskEvaluation) -> None:
        self.run = run

    def probe(self, task: Task, module: Module, args: dict[str, Any], become_user: str | None,
              connection: Connection, *, fresh: bool) -> str | None:
        """The module's probe answer: from the cache, or from one batch covering upcoming tasks too."""
        script = module.probe(args)
        if script is None:
            return None
        key: ProbeKey = (become_user, script)
        if not (task.delegate_to or fresh):
            cached = self.run.host.probes.get(key)
            if cached is not None:
                return cached
            ahead = [k for k in (*self._own_items(task), *self._lookahead(task))
                     if self.run.host.probes.get(k) is None]
            answer = self._send_batch([key, *ahead], connection).get(key)
            if answer is not None:
                return answer
        # Alone, outside any batch: delegated, asked fresh, or its batch answer did not line up.
        return HostContext(connection, host=self.run.host.name, variables={},
                           become_user=become_user).run(script, readonly=True).stdout

    def _send_batch(self, keys: list[ProbeKey], connection: Connection) -> dict[ProbeKey, str]:
        """Run the probes, one script per user; ``keys[0]`` is the current task's, the rest lookahead."""
        by_user: dict[str | None, list[str]] = {}
        for user, script in dict.fromkeys(keys):
            by_user.setdefault(user, []).append(script)
        answers: dict[ProbeKey, str] = {}
        current_user = keys[0][0]
        for user, scripts in by_user.items():
            nonce = new_nonce()
            result = HostContext(connection, host=self.run.host.name, variables={}, become_user=user).run(
                batch_script(scripts, nonce), readonly=True)
            if result.rc != 0 and not result.stdout:
                if user != current_user:
                    # A look ahead as a user that does not exist yet (an earlier task creates it):
                    # those tasks are probed when they come.
                    continue
                if result.rc < 0:
                    raise ConnectError(f"host {self.run.host.name}: state check cut off: {result.tail()}")
                raise ProvisionError(f"state check as {user or 'the login user'} failed (exit {result.rc}): "
                                     f"{result.tail()}")
            for script, answer in zip(scripts, split_answers(result.stdout, len(scripts), nonce), strict=True):
                if answer is not None:
                    answers[(user, script)] = answer
        self.run.host.probes.store(answers)
        self.run.host.probes.batches += 1
        return answers

    def next_probes(self, task: Task, user: str | None, current: str | None) -> list[str]:
        """Probes to run right after a change by ``task``: its next loop items, then the next tasks'.

        Only a few: when one task changes, the next often does too (a cold run), and every probe
        re-sent after each change would make a cold run quadratic. A converged run never gets
        here; its first batch covers everything.
        """
        if task.delegate_to or task.id not in self.run.position:
            return []
        own = [script for owner, script in self._own_items(task) if owner == user]
        if current in own:
            own = own[own.index(current) + 1:]
        scripts = list(dict.fromkeys(own))[:POST_CHANGE_PROBES]
        if len(scripts) < POST_CHANGE_PROBES:
            ahead = [s for owner, s in self._lookahead(task, max_keys=POST_CHANGE_PROBES * 4) if owner == user]
            scripts = list(dict.fromkeys([*scripts, *ahead]))[:POST_CHANGE_PROBES]
        return scripts

    def own_items(self, task: Task) -> list[ProbeKey]:
        """Probe keys of every item of a loop task (none for a task without a loop)."""
        return self._own_items(task)

    def keys_after(self, task: Task, *, max_keys: int = MAX_LOOKAHEAD_KEYS) -> list[ProbeKey]:
        """Probe keys of the tasks after ``task`` whose arguments can be known now."""
        return self._lookahead(task, max_keys=max_keys)

    def _own_items(self, task: Task) -> list[ProbeKey]:
        """Probe keys of every item of a loop task (the later items are probed with the first)."""
        if task.loop is None:
            return []
        try:
            return self._task_keys(task)
        except Exception:  # a task we cannot pre-render is probed item by item
            return []

    def _lookahead(self, current: Task, *, max_keys: int = MAX_LOOKAHEAD_KEYS) -> list[ProbeKey]:
        """Probe keys of the next tasks whose arguments can be known now (at most ``max_keys``)."""
        start = self.run.position.get(current.id)
        if start is None:
            return []
        return self._keys_from(start + 1, {current.register} if current.register else set(), max_keys)

    def keys_from_start(self, *, max_keys: int = MAX_LOOKAHEAD_KEYS) -> list[ProbeKey]:
        """Probe keys of the play's first tasks, as far as their arguments can be known before facts.

        Sent with the facts (one session less). A guess rendered without facts is harmless: answers
        are keyed by the probe script, so a task whose real probe differs checks again itself.
        """
        return self._keys_from(0, set(), max_keys)

    def _keys_from(self, start: int, registered: set[str], max_keys: int) -> list[ProbeKey]:
        keys: list[ProbeKey] = []
        for task in self.run.schedule[start:start + LOOKAHEAD]:
            cls = get_module(task.module or "")
            if cls is None or cls.stops_lookahead or any(_mentions(task, name) for name in registered):
                break
            if task.register:
                registered.add(task.register)
            if task.delegate_to or not self.run.selected(task):
                continue
            try:
                keys.extend(self._task_keys(task))
            except Exception:  # arguments not knowable yet (a later fact, a bad template): stop here
                break
            if len(keys) >= max_keys:
                break
        return keys[:max_keys]

    def _task_keys(self, task: Task) -> list[ProbeKey]:
        cls = get_module(task.module or "")
        if cls is None or (cls.probe is Module.probe and cls.facts is Module.facts):
            return []  # reads nothing
        module = cls()
        variables = self.run.variables(task)
        inherited = self.run.inherited[task.id]
        conditions = [*inherited.when, *task.when]
        keys: list[ProbeKey] = []
        items = self.run.loop_items(task, variables)
        for index, item in enumerate(items):
            scope = self.run.item_scope(task, variables, item, index=index, items=items)
            if not self.run.conditions_hold(task, conditions, scope):
                continue
            args = cls.coerce(self.run.shared.templar.render_value(task.args, scope))
            script = module.probe(args)
            if script is not None:
                keys.append((self.run.become_user_of(task, scope, inherited), script))
        return keys


def _mentions(task: Task, name: str) -> bool:
    text = repr((task.args, task.when, task.loop, task.vars))
    return name in text
