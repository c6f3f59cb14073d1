"""The ``provision`` command: parses options, calls the engine, maps the outcome to an exit code.

Exit codes (``provision.errors``): 0 all hosts ok; 2 a task failed on some host; 3 some host unreachable
(none failed); 4 bad input (inventory, playbook, options) and nothing ran; 130 interrupted.
Imports are lazy: ``provision --help`` loads argparse and nothing else.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, OptionsError, Source

if TYPE_CHECKING:
    from .connspec import ConnectionSpec
    from .events import Reporter
    from .inventory import Inventory
    from .playbook import Playbook
    from .runner import RunOptions, RunOutcome
    from .secrets import Redactor

DESCRIPTION = """\
Ansible-style provisioning over SSH for production Frappe benches.

Jobs:    deploy GROUP          converge hosts to production benches (playbooks/deploy.yml)
         onboard ADDRESS       a fresh server to a hardened, inventoried, deployed host
         backup GROUP          every site to the control host (also: restore HOST SITE, cron)
         replication status    each MariaDB replica's lag, threads and last error
Engine:  playbook FILE         run any playbook
         run PATTERN -- CMD    run a shell command on hosts
         ping | facts PATTERN  check reachability / show host facts
         inventory             show hosts, groups and where each variable comes from
         init DIR              scaffold a project directory
Secrets: vault encrypt|decrypt|view|edit|encrypt-string|rekey  secrets at rest
Lab:     lab up|down|status|ssh  throwaway local SSH hosts (Linux, root)

Exit codes: 0 ok, 2 a task failed, 3 a host was unreachable, 4 bad input (nothing ran),
130 interrupted."""


class _Parser(argparse.ArgumentParser):
    """argparse, but bad options exit with the contract's code 4, not 2."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _common_options() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("-i", "--inventory", default=os.environ.get("PROVISION_INVENTORY", "inventory.yml"),
                       help="inventory file, or a comma list 'host1,host2,' "
                            "(default: $PROVISION_INVENTORY or ./inventory.yml)")
    group.add_argument("-l", "--limit", help="further limit hosts: names, groups, globs, a:b, a:&b, a:!b")
    group.add_argument("-t", "--tags", default="", help="run only tasks with these tags (comma list)")
    group.add_argument("--skip-tags", default="", help="skip tasks with these tags (comma list)")
    group.add_argument("-C", "--check", action="store_true", help="change nothing; report what would change")
    group.add_argument("-D", "--diff", action="store_true", help="show diffs of changed files")
    group.add_argument("-f", "--forks", type=int, default=10, help="hosts in parallel (default: 10)")
    group.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                       help="key=value, JSON/YAML, or @file.yml; highest precedence (repeatable)")
    group.add_argument("--json", action="store_true", help="NDJSON events on stdout; human output on stderr")
    group.add_argument("--no-progress", action="store_true", help="no live progress (task N of M, overall bar)")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv: results, tracebacks)")
    group.add_argument("-K", "--ask-become-pass", action="store_true", help="prompt for the sudo password")
    group.add_argument("--known-hosts", action="append", default=[], type=Path, metavar="FILE",
                       help="extra known_hosts file (the project's known_hosts is read when present)")
    group.add_argument("--ssh-config", type=Path, metavar="FILE", help="ssh_config to use (default: ~/.ssh/config)")
    group.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="SSH connect timeout")
    group.add_argument("--force-handlers", action="store_true",
                       help="run notified handlers even on hosts where a later task failed")
    group.add_argument("--no-batch", action="store_true",
                       help="send each change on its own channel (also PROVISION_NO_BATCH=1)")
    from .vaultkeys import add_vault_options

    add_vault_options(group)
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    parser = _Parser(prog="provision", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    from .run_habits import add_connection_options, add_playbook_options

    parser.add_argument("-V", "--version", action="version", version=f"provision {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common_options()

    deploy = commands.add_parser("deploy", parents=[common], help="converge hosts to production Frappe benches",
                                 description="Run the built-in deploy playbook (or the project's playbooks/deploy.yml)"
                                             " against GROUP: packages, services, the frappe user, the bench, apps, "
                                             "sites and configs. A re-run on converged hosts reports 0 changed.")
    deploy.add_argument("group", help="group or host pattern, e.g. prod")
    add_playbook_options(deploy)
    deploy.set_defaults(func=cmd_deploy)

    playbook = commands.add_parser("playbook", parents=[common], help="run a playbook",
                                   description="Run a playbook file against the inventory.")
    playbook.add_argument("file", type=Path, help="playbook YAML file")
    playbook.add_argument("pattern", nargs="?", help="run only on hosts matching this pattern (like --limit)")
    add_playbook_options(playbook)
    playbook.add_argument("--explain-var", metavar="NAME", help="run nothing: show NAME's value per host and play, "
                          "with the level and file:line it comes from")
    playbook.set_defaults(func=cmd_playbook)

    run = commands.add_parser("run", parents=[common], help="run a shell command on hosts",
                              description="Run an ad-hoc shell command: provision run web -- uptime")
    run.add_argument("pattern", help="hosts to run on")
    run.add_argument("cmd", nargs="*", help="the command, after --")
    run.add_argument("-b", "--become", action="store_true", help="run as root via sudo")
    run.add_argument("--become-user", help="run as this user via sudo")
    add_connection_options(run, become=False)
    run.set_defaults(func=cmd_run)

    ping = commands.add_parser("ping", parents=[common], help="check that hosts answer over SSH",
                               description="Open one SSH connection to each host matching PATTERN (default all) "
                                           "and run a no-op: ok, or unreachable with the reason. Exit 3 when a "
                                           "host is unreachable.")
    ping.add_argument("pattern", nargs="?", default="all", help="hosts to check (default: all)")
    add_connection_options(ping, become=False)
    ping.set_defaults(func=cmd_ping)

    facts = commands.add_parser("facts", parents=[common], help="gather and show host facts",
                                description="Gather each matching host's facts (OS, release, CPUs, memory, "
                                            "python, service manager ...) in one round trip and print them as "
                                            "JSON by host, with each host's server roles (role_groups) as `roles`. "
                                            "With --json, one 'facts' event per host.")
    facts.add_argument("pattern", nargs="?", default="all", help="hosts to gather facts from (default: all)")
    add_connection_options(facts)
    facts.set_defaults(func=cmd_facts)

    init = commands.add_parser("init", help="scaffold a project directory",
                               description="Create inventory.yml, group_vars/, playbooks/, templates/, files/, "
                                           "known_hosts and a .gitignore that keeps secrets and backups out of git.")
    init.add_argument("dir", type=Path)
    init.add_argument("--vault-password-file", action="append", default=[], metavar="FILE",
                      help="encrypt group_vars/all/vault.yml with this password (and keep the file out of git)")
    init.set_defaults(func=cmd_init)

    modules = commands.add_parser("modules", help="list the task modules and their arguments")
    modules.add_argument("name", nargs="?", help="one module's arguments")
    modules.set_defaults(func=cmd_modules)

    from .commands import register_all
    from .lab.cli import add_lab_parser, run_lab

    register_all(commands, common)

    add_lab_parser(commands)  # type: ignore[arg-type]
    commands.choices["lab"].set_defaults(func=run_lab)
    return parser


# -- commands --------------------------------------------------------------------------------------


def cmd_playbook(args: argparse.Namespace) -> int:
    from .playbook import load_playbook
    from .run_habits import before_run

    playbook = load_playbook(args.file)
    if args.explain_var:
        from .explainvar import print_explained

        return print_explained(args, playbook, args.explain_var)
    code = before_run(args, playbook, args.pattern)
    return run_playbook(args, playbook, pattern=args.pattern) if code is None else code


def cmd_deploy(args: argparse.Namespace) -> int:
    from .playbook import load_playbook
    from .runner import builtin_dir

    project = Path.cwd() / "playbooks" / "deploy.yml"
    path = project if project.exists() else builtin_dir("playbooks") / "deploy.yml"
    if not path.exists():
        raise OptionsError(f"no deploy playbook found ({path})")
    from .run_habits import before_run

    playbook = load_playbook(path)
    code = before_run(args, playbook, args.group)
    return run_playbook(args, playbook, pattern=args.group) if code is None else code


def _adhoc(name: str, module: str, module_args: dict[str, Any], *, gather: bool = False,
           become: bool | None = None, become_user: str | None = None) -> Playbook:
    from .errors import Source
    from .playbook import Play, Playbook, Task

    source = Source("<command line>")
    tasks = [Task(name=name, source=source, module=module, args=module_args)] if module else []
    play = Play(name=name, hosts="all", source=source, gather_facts=gather, tasks=tasks, become=become,
                become_user=become_user, base_dir=Path.cwd())
    return Playbook(Path.cwd() / "<adhoc>", [play])


def cmd_run(args: argparse.Namespace) -> int:
    words = args.cmd
    if not words:
        raise OptionsError("no command given", hint="provision run web -- uptime")
    command = " ".join(words)
    become = True if args.become or args.become_user else None
    playbook = _adhoc(command, "shell", {"cmd": command}, become=become, become_user=args.become_user)
    recorder = _Recorder()
    code = run_playbook(args, playbook, pattern=args.pattern, extra_reporter=recorder)
    if not args.json:
        _print_outputs(recorder, args.redactor)
    return code


def cmd_ping(args: argparse.Namespace) -> int:
    return run_playbook(args, _adhoc("ping", "ping", {}), pattern=args.pattern)


def cmd_facts(args: argparse.Namespace) -> int:
    import json

    recorder = _Recorder()
    outcome_holder: list[RunOutcome] = []
    code = run_playbook(args, _adhoc("facts", "", {}, gather=True), pattern=args.pattern,
                         extra_reporter=recorder, outcome=outcome_holder)
    if outcome_holder:
        from .inventory_roles import inventory_roles

        roles = inventory_roles(load_inventory(args))  # the host's server roles (role_groups), shown with its facts
        facts = {name: {**state.facts, "roles": roles.get(name, [])}
                 for name, state in outcome_holder[0].hosts.items() if state.facts}
        if args.json:  # in the event stream: one line per host
            for name, values in facts.items():
                print(json.dumps({"event": "facts", "host": name, "facts": values}, sort_keys=True, default=str))
        else:
            print(json.dumps(facts, indent=2, sort_keys=True, default=str))
    return code


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import scaffold_project

    for path in scaffold_project(args.dir):
        print(f"created {path}")
    return 0


def cmd_modules(args: argparse.Namespace) -> int:
    from .tasks import get_module, module_names
    from .tasks.base import type_name

    names = [args.name] if args.name else module_names()
    for name in names:
        cls = get_module(name)
        if cls is None:
            raise OptionsError(f"no module named {name!r}", hint="`provision modules` lists them")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:12} {summary}")
        if args.name:
            helps = cls.arg_help()
            for arg_name, arg in cls.args.items():
                flags = "required" if arg.required else f"default {arg.default!r}"
                print(f"  {arg_name:22} {type_name(arg.type):14} {flags:20} {helps[arg_name]}".rstrip())
    return 0


# -- running a playbook ----------------------------------------------------------------------------


def run_playbook(args: argparse.Namespace, playbook: Playbook, *, pattern: str | None,
                  extra_reporter: Reporter | None = None, outcome: list[RunOutcome] | None = None) -> int:
    from .output import build_reporter
    from .output.multi import MultiReporter
    from .runner import Runner

    options = run_options(args, pattern)
    inventory = load_inventory(args)
    redactor: Redactor = args.redactor
    reporter = build_reporter(json_output=args.json, verbosity=args.verbose, redactor=redactor,
                              progress=not getattr(args, "no_progress", False))
    if extra_reporter is not None:
        reporter = MultiReporter(reporter, extra_reporter)
    for warning in inventory.warnings:
        reporter.warning(warning)
    runner = Runner(inventory, options, reporter, redactor=redactor)
    runner.prepare(playbook)
    check_connection_files(inventory, (state.spec for state in runner.hosts.values()))
    with interrupts(runner.interrupt):
        try:
            result = runner.run(playbook)
        finally:
            reporter.close()
    if outcome is not None:
        outcome.append(result)
    return result.exit_code


def run_options(args: argparse.Namespace, pattern: str | None) -> RunOptions:
    from .run_habits import run_option_values
    from .runner import RunOptions
    from .variables import parse_extra_vars

    _check_numbers(args)
    limit = args.limit
    if pattern:
        limit = f"{pattern}:&{limit}" if limit else pattern
    known_hosts = list(args.known_hosts)
    project_known = Path.cwd() / "known_hosts"
    if project_known.exists():
        known_hosts.append(project_known)
    for path in args.known_hosts:
        if not path.exists():
            raise OptionsError(f"--known-hosts {path}: no such file")
    if args.ssh_config is not None and not args.ssh_config.is_file():
        raise OptionsError(f"--ssh-config {args.ssh_config}: no such file",
                           hint="fix the path, or leave --ssh-config out to read ~/.ssh/config")
    password = _ask_become_pass() if args.ask_become_pass else None
    return RunOptions(
        check=args.check, diff=args.diff, forks=args.forks, limit=limit,
        tags=_tag_set(args.tags), skip_tags=_tag_set(args.skip_tags),
        extra_vars=parse_extra_vars(args.extra_vars), verbosity=args.verbose,
        known_hosts=tuple(known_hosts), ssh_config=args.ssh_config, become_password=password,
        connect_timeout=args.connect_timeout, project_dir=Path.cwd(), force_handlers=args.force_handlers,
        batch_changes=not getattr(args, "no_batch", False), **run_option_values(args),
    )


# Beyond these, a value is a typo (or would start that many threads / wait for days).
MAX_FORKS = 1000
MAX_CONNECT_TIMEOUT = 3600.0


def _check_numbers(args: argparse.Namespace) -> None:
    import math

    if not 1 <= args.forks <= MAX_FORKS:
        raise OptionsError(f"--forks {args.forks}: must be between 1 and {MAX_FORKS}",
                           hint="--forks is how many hosts run at once, e.g. --forks 20")
    timeout = args.connect_timeout
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_CONNECT_TIMEOUT):
        raise OptionsError(f"--connect-timeout {timeout:g}: must be a number of seconds above 0 and at most "
                           f"{MAX_CONNECT_TIMEOUT:g}", hint="e.g. --connect-timeout 10 (the default)")


def _ask_become_pass() -> str:
    """The sudo password typed at a prompt on the terminal; without a terminal, a clear input error."""
    import getpass

    hint = ("run from a terminal, or set become_password for the hosts (tag it !secret, e.g. in "
            "group_vars/all/vault.yml) instead of -K")
    try:
        with open("/dev/tty", "rb"):  # getpass prompts on the controlling terminal
            pass
    except OSError:
        raise OptionsError("-K/--ask-become-pass needs a terminal to prompt on, and there is none",
                           hint=hint) from None
    try:
        return getpass.getpass("BECOME password: ")
    except EOFError:
        raise OptionsError("-K/--ask-become-pass: no password was typed (end of input)", hint=hint) from None


def check_connection_files(inventory: Inventory, specs: Iterable[ConnectionSpec]) -> None:
    """A known_hosts or key file named in the inventory that does not exist is bad input: exit 4 now."""
    from .connspec import ALIASES
    from .errors import InventoryError

    for spec in specs:
        if spec.local:
            continue
        for setting, value in (("known_hosts_file", spec.known_hosts_file),
                               ("private_key_file", spec.private_key_file)):
            if value and not Path(os.path.expanduser(value)).is_file():
                names = ALIASES[setting]
                where = next((e.source for e in inventory.explain(spec.name) if e.name in names), None)
                raise InventoryError(
                    f"host {spec.name!r}: {names[0]} {value} does not exist",
                    source=Source(where) if where else None,
                    hint=f"fix the path, or create the file (for known_hosts: `ssh-keyscan HOST >> {value}`, "
                    "after checking the fingerprint)" if setting == "known_hosts_file" else "fix the path",
                )


def _tag_set(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def load_inventory(args: argparse.Namespace) -> Inventory:
    from .errors import InventoryError
    from .inventory import Inventory

    source = args.inventory
    if not Path(source).exists() and "," not in source:
        from .run_habits import missing_inventory_hint

        raise InventoryError(f"inventory {source} not found", hint=missing_inventory_hint(source))
    return Inventory.load(source)


class interrupts:
    """First Ctrl-C stops cleanly (running commands cut, writes stay atomic); the second one exits now."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.count = 0
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        print("\ninterrupted: finishing running tasks cleanly (Ctrl-C again to quit now)", file=sys.stderr)
        self.stop()

    def __enter__(self) -> interrupts:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Recorder:
    """Keeps task results for commands that print them after the run (run, facts)."""

    def __init__(self) -> None:
        from .events import TaskDone

        self.results: list[TaskDone] = []

    def play_started(self, event: Any) -> None: ...
    def task_started(self, event: Any) -> None: ...
    def host_unreachable(self, event: Any) -> None: ...
    def warning(self, message: str, *, host: str | None = None) -> None: ...
    def recap(self, event: Any) -> None: ...
    def close(self) -> None: ...

    def task_done(self, event: Any) -> None:
        self.results.append(event)


def _print_outputs(recorder: _Recorder, redactor: Redactor) -> None:
    for event in recorder.results:
        if event.module not in ("shell", "command"):
            continue
        rc = event.data.get("rc", "?")
        print(f"{event.host} | {event.status} | rc={rc} >>")
        for stream in ("stdout", "stderr"):
            text = str(event.data.get(stream) or "").rstrip("\n")
            if text:
                print(redactor(text))


def parse_words(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """Parse; an unknown option is reported with the usage of the sub-command it was given to."""
    args, unknown = parser.parse_known_args(words)
    if unknown:
        from .run_habits import innermost_parser

        innermost_parser(parser, words).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``provision`` console script."""
    from .output.pipes import guard_std_streams

    guard_std_streams()  # `provision ... | head`: the run goes on, its exit code stays its own
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # `provision run PATTERN [options] -- CMD...`: everything after the first `--` is the command.
    command: list[str] | None = None
    if "--" in words and words[:1] == ["run"]:
        cut = words.index("--")
        words, command = words[:cut], words[cut + 1:]
    args = parse_words(parser, words)
    if command is not None:
        args.cmd = [*args.cmd, *command]
    from .secrets import Redactor

    # One redactor for the whole command: the run fills it with the inventory's secrets, and an
    # error raised anywhere afterwards is scrubbed by it too.
    args.redactor = Redactor()
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    verbosity = getattr(args, "verbose", 0)
    try:
        from .vaultkeys import keyring_from_args, use_keyring

        use_keyring(keyring_from_args(args, args.redactor))  # before anything loads YAML
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `provision inventory --list | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # every error a person sees is printed cleanly, with its exit code
        from .errors import ProvisionError
        from .output import make_console, render_error

        render_error(make_console(stderr=True), exc, verbosity, redactor=args.redactor)
        return exc.exit_code if isinstance(exc, ProvisionError) else 1


if __name__ == "__main__":
    sys.exit(main())
