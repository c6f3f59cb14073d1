"""The engine: plays over hosts in serial batches, hosts in parallel up to ``forks``.

Before any host is touched, ``Runner.prepare`` resolves every pattern, connection setting, vars
file and literal template name, so bad input stops the run with exit code 4 and nothing done.
Then each play runs batch by batch (``serial``); inside a batch every host walks the play on its
own thread with its own connection (``HostRun``), so a slow host never holds the others back.
A failed host stops receiving tasks; ``max_fail_percentage`` and ``any_errors_fatal`` stop the
batch's other hosts and the rest of the playbook, as Ansible defines them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    ConnectError,
    InventoryError,
    PlaybookError,
    ProvisionError,
    Source,
)
from .evaluation import TaskEvaluation
from .events import PlayStarted, Recap, Reporter, TaskDone
from .facts import FACTS_SCRIPT, parse_facts
from .hostrun import HostRun
from .inventory import ConnectionSpec, Host, Inventory, connection_spec, host_magic
from .lookahead import Lookahead
from .playbook import Play, Playbook, walk_tasks
from .playbook_listing import selected_task_count
from .playbook_vars import add_playbook_vars
from .probes import ProbeKey, facts_and_probes_script, new_nonce, split_facts_and_probes
from .registry import get_module
from .runstate import BatchControl, HostState, RunOptions, RunShared
from .secrets import Redactor, secret_values
from .templating import Templar, is_template
from .variables import DEFAULTS, EXTRA_VARS, FACTS, MAGIC, PLAY_VARS, VARS_FILES, VariableLayers
from .yamlfile import load_yaml


def command_line_defaults(spec: ConnectionSpec, options: RunOptions) -> ConnectionSpec:
    """-u, --private-key, -b, --become-user fill in what the inventory leaves unset, as in Ansible."""
    return replace(spec, user=spec.user or options.remote_user,
                   private_key_file=spec.private_key_file or options.private_key_file,
                   become=spec.become or options.become, become_user=spec.become_user or options.become_user)


@dataclass
class PlayFiles:
    """A play's vars files, loaded before the run (``None``: a templated name, loaded per host)."""

    defaults: list[tuple[str, Mapping[str, Any]]]
    vars_files: list[tuple[str, Mapping[str, Any]] | None]


@dataclass
class RunOutcome:
    """What a run ended with."""

    exit_code: int
    hosts: dict[str, HostState]
    duration: float
    interrupted: bool = False


def builtin_dir(kind: str) -> Path:
    """The built-in ``playbooks/`` or ``templates/`` shipped with provision."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "builtin" / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    return package / "builtin" / kind


def template_search_path(project_dir: Path, playbook_dir: Path | None = None) -> list[Path]:
    """The user's templates first (beside the playbook, then the project), then the built-in ones."""
    paths: list[Path] = []
    for base in (playbook_dir, project_dir):
        if base is not None and (base / "templates").is_dir() and (base / "templates") not in paths:
            paths.append(base / "templates")
    paths.append(builtin_dir("templates"))
    return paths


class HostVars(Mapping[str, Any]):
    """``hostvars``: each host's inventory variables plus what ``register``/``set_fact`` recorded on it
    so far in this run (as in Ansible), so a later play can use what an earlier one found on another
    host (a multi-server deploy reads the first app host's site configs, the files host's key)."""

    def __init__(self, inventory: Inventory, states: Mapping[str, HostState]) -> None:
        self._inventory = inventory
        self._states = states

    def __getitem__(self, name: str) -> Any:
        values = self._inventory.hosts[name].vars
        state = self._states.get(name)
        if state is None or not state.runtime:
            return values
        return {**values, **dict(state.runtime)}

    def __iter__(self) -> Iterator[str]:
        return iter(self._inventory.hosts)

    def __len__(self) -> int:
        return len(self._inventory.hosts)


class Runner:
    """Runs playbooks against an inventory."""

    def __init__(self, inventory: Inventory, options: RunOptions, reporter: Reporter, *,
                 redactor: Redactor | None = None) -> None:
        self.inventory = inventory
        self.options = options
        self.reporter = reporter
        self.redactor = redactor or Redactor()
        self.hosts: dict[str, HostState] = {}
        self.shared: RunShared | None = None
        self._play_files: dict[int, PlayFiles] = {}
        self._hostvars: Mapping[str, Any] = {}
        self._limit: set[str] | None = None
        self._cancel_hooks: list[Callable[[], None]] = []

    # -- preparation: everything that can be wrong with the input, before any host is touched ------

    def prepare(self, playbook: Playbook) -> None:
        """Validate patterns, connections, vars files and template names; raise InputError on bad input."""
        base = playbook.path.parent
        templar = Templar(template_search_path(self.options.project_dir, base))
        self.shared = RunShared(options=self.options, templar=templar, reporter=self.reporter,
                                redactor=self.redactor, file_dirs=[base, self.options.project_dir])
        for warning in add_playbook_vars(self.inventory, base):
            self.reporter.warning(warning)
        limit = {h.name for h in self.inventory.select(self.options.limit)} if self.options.limit else None
        self._limit = limit
        if limit is not None and not limit:
            raise InventoryError(f"--limit {self.options.limit!r} matches no host")
        self._hostvars = HostVars(self.inventory, self.hosts)
        for play in playbook.plays:
            for host in self._play_hosts(play, limit):
                if host.name not in self.hosts:
                    self.hosts[host.name] = self._host_state(host, templar)
            self._play_files[id(play)] = PlayFiles(
                defaults=[self._load_vars_file(play, entry) for entry in play.defaults_files],
                vars_files=[None if is_template(entry) else self._load_vars_file(play, entry)
                            for entry in play.vars_files])
            self._check_templates(play, templar)
        self.redactor.add(secret_values(self.options.extra_vars))
        if self.options.become_password:
            self.redactor.add([self.options.become_password])

    def play_hosts(self, play: Play) -> list[Host]:
        """The hosts ``play`` runs on, ``--limit`` applied (after ``prepare``)."""
        return self._play_hosts(play, self._limit)

    def _play_hosts(self, play: Play, limit: set[str] | None) -> list[Host]:
        try:
            hosts = self.inventory.select(play.hosts, source=play.source)
        except InventoryError as exc:
            exc.source = exc.source or play.source
            raise
        return [h for h in hosts if limit is None or h.name in limit]

    def _host_state(self, host: Host, templar: Templar) -> HostState:
        """The host's levels for the run: its inventory levels, ``-e``, and the run's magic."""
        layers = host.layers.copy(drop=(MAGIC,))
        layers.push(EXTRA_VARS, "-e", self.options.extra_vars)
        self.redactor.add(secret_values(layers.merged()))
        layers.push(MAGIC, "run", host_magic(self.inventory, host, check=self.options.check, diff=self.options.diff,
                                             hostvars=self._hostvars))
        try:
            spec = connection_spec(host.name, templar.variables(layers.merged()))
            spec = command_line_defaults(spec, self.options)
        except ProvisionError as exc:
            raise InventoryError(str(exc.message), source=exc.source or host.source, hint=exc.hint) from None
        return HostState(host, spec, layers)

    def _load_vars_file(self, play: Play, entry: Any) -> tuple[str, Mapping[str, Any]]:
        path = play.base_dir / str(entry)
        data = load_yaml(path, error=PlaybookError)
        if data is None:
            return str(path), {}
        if not isinstance(data, dict):
            raise PlaybookError(f"vars file {path} must hold a mapping of names to values", source=Source(str(path)))
        self.redactor.add(secret_values(data))
        return str(path), data

    def _check_templates(self, play: Play, templar: Templar) -> None:
        """A literal template name that is not on the search path is an input error now, not mid-run."""
        for task in walk_tasks([*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers]):
            cls = get_module(task.module) if task.module else None
            for name in cls.templates(task.args) if cls is not None else ():
                if isinstance(name, str) and not is_template(name):
                    templar.load_file(name, source=task.source)

    # -- running -----------------------------------------------------------------------------------

    def run(self, playbook: Playbook) -> RunOutcome:
        """Run every play; returns the outcome with the contract's exit code."""
        started = time.monotonic()
        if self.shared is None:
            self.prepare(playbook)
        assert self.shared is not None
        shared = self.shared
        limit = self._limit
        try:
            for play in playbook.plays:
                if shared.cancel.is_set() or not self._run_play(play, limit):
                    break
        finally:
            duration = time.monotonic() - started
            self.reporter.recap(Recap({n: h.stats for n, h in self.hosts.items()}, duration,
                                      interrupted=shared.cancel.is_set()))
            for state in self.hosts.values():
                state.close()
        return RunOutcome(self._exit_code(), self.hosts, duration, shared.cancel.is_set())

    def interrupt(self) -> None:
        """Stop cleanly: no new task starts, running commands are cut, every file write stays atomic."""
        if self.shared is not None:
            self.shared.cancel.set()

    def _run_play(self, play: Play, limit: set[str] | None) -> bool:
        """Run one play; False when the playbook must stop (threshold exceeded, all hosts failed)."""
        assert self.shared is not None
        hosts = [self.hosts[h.name] for h in self._play_hosts(play, limit)
                 if not self.hosts[h.name].failed and not self.hosts[h.name].unreachable]
        if not hosts:
            self.reporter.warning(f"play {play.name!r}: no hosts matched {play.hosts!r}, skipping")
            return True
        batches = serial_batches(len(hosts), play.serial)
        offset = 0
        for number, size in enumerate(batches, start=1):
            batch = hosts[offset:offset + size]
            offset += size
            self.shared.batch = BatchControl(len(batch), play.max_fail_percentage, play.any_errors_fatal)
            self.reporter.play_started(PlayStarted(play.name, tuple(h.name for h in batch), number, len(batches),
                                                   self.options.check, tasks=selected_task_count(play, self.options)))
            workers = max(1, min(self.options.forks, len(batch)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
                list(pool.map(lambda state: self._run_host(play, state), batch))
            if self.shared.cancel.is_set():
                return False
            failed = [h for h in batch if h.failed or h.unreachable]
            if self.shared.batch.aborted or (failed and len(failed) == len(batch)):
                if offset < len(hosts):
                    self.reporter.warning(f"play {play.name!r}: stopping after batch {number}/{len(batches)}: "
                                          f"{len(failed)} of {len(batch)} hosts failed")
                return False
        return True

    def _run_host(self, play: Play, state: HostState) -> None:
        assert self.shared is not None
        shared = self.shared
        try:
            layers = self.play_layers(play, state)
            if play.gather_facts and state.facts is None and not state.spec.local:
                self._gather_facts(state, TaskEvaluation(play, state, shared, layers))
            layers.push(FACTS, "gather facts", {"facts": state.facts or {}})
            # Secrets as they will be used: rendered, so "{{ vault_pw }}" is redacted by its value.
            shared.redactor.add(secret_values(shared.templar.variables(layers.merged(without=(MAGIC,))).resolved()))
            run = HostRun(play, state, shared, layers)
            run.run()
            if run.failed:
                state.failed = True
        except ConnectError:
            pass  # reported as unreachable by HostState
        except ProvisionError as exc:
            state.failed = True
            state.stats.failed += 1
            shared.host_failed(state.name)
            self.reporter.task_done(TaskDone(state.name, "play setup", "", "failed", str(exc)))

    def play_layers(self, play: Play, state: HostState) -> VariableLayers:
        """The host's levels plus the play's: defaults, vars, vars_files and ``playbook_dir``."""
        assert self.shared is not None
        files = self._play_files[id(play)]
        layers = state.layers.copy()
        where = str(play.source.file)
        for path, data in files.defaults:
            layers.push(DEFAULTS, path, data)
        layers.push(DEFAULTS, where, play.defaults)
        layers.push(PLAY_VARS, where, play.vars)
        for entry, loaded in zip(play.vars_files, files.vars_files, strict=True):
            if loaded is None:  # a templated name: rendered with what the play knows so far
                name = self.shared.templar.render_string(entry, layers.merged(), source=play.source,
                                                         what="vars_files")
                loaded = self._load_vars_file(play, name)
            layers.push(VARS_FILES, *loaded)
        layers.push(MAGIC, where, {"playbook_dir": str(play.base_dir)})
        return layers

    def _gather_facts(self, state: HostState, before_facts: TaskEvaluation) -> None:
        """The facts, with the first tasks' checks in the same script where they can be known yet."""
        assert self.shared is not None
        started = time.monotonic()
        connection = state.connect(self.shared)
        early = self._first_probes(state, before_facts)
        if early:
            nonce = new_nonce()
            result = connection.run(facts_and_probes_script(FACTS_SCRIPT, [script for _, script in early], nonce))
            output, answers = split_facts_and_probes(result.stdout, len(early), nonce)
            state.probes.store({key: answer for key, answer in zip(early, answers, strict=True) if answer is not None})
            state.probes.batches += 1
        else:
            result = connection.run(FACTS_SCRIPT)
            output = result.stdout
        status = "ok" if result.ok else "failed"
        state.facts = parse_facts(output)
        state.stats.ok += 1
        self.reporter.task_done(TaskDone(state.name, "gather facts", "facts", status,  # type: ignore[arg-type]
                                         "" if result.ok else result.tail(), duration=time.monotonic() - started,
                                         check=self.options.check))

    @staticmethod
    def _first_probes(state: HostState, before_facts: TaskEvaluation) -> list[ProbeKey]:
        """The play's first probes that run as the login user (the facts' channel), rendered without facts."""
        try:
            keys = Lookahead(before_facts).keys_from_start()
        except Exception:  # only a head start: the tasks check for themselves
            return []
        return list(dict.fromkeys(k for k in keys if k[0] is None or k[0] == state.spec.user))

    def _exit_code(self) -> int:
        assert self.shared is not None
        if self.shared.cancel.is_set():
            return EXIT_INTERRUPTED
        stats = [h.stats for h in self.hosts.values()]
        if any(s.failed for s in stats):
            return EXIT_FAILED
        if any(s.unreachable for s in stats):
            return EXIT_UNREACHABLE
        return EXIT_OK


def serial_batches(count: int, serial: list[int | str]) -> list[int]:
    """Batch sizes for ``count`` hosts, as Ansible computes them (the last value repeats)."""
    if not serial:
        return [count] if count else []
    sizes: list[int] = []
    remaining = count
    index = 0
    while remaining > 0:
        spec = serial[min(index, len(serial) - 1)]
        if isinstance(spec, str) and spec.endswith("%"):
            size = math.floor(float(spec[:-1]) / 100.0 * count) or 1
        else:
            size = int(spec)
        size = min(max(size, 1), remaining)
        sizes.append(size)
        remaining -= size
        index += 1
    return sizes


__all__ = ["RunOptions", "RunOutcome", "Runner", "builtin_dir", "serial_batches", "template_search_path"]
