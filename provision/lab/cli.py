"""``provision lab up|down|status|ssh``: the command-line front of the lab."""

from __future__ import annotations

import argparse
import subprocess
import sys

from provision.errors import LabError
from provision.lab.settings import DEFAULT_PROXY_PORT, DEFAULT_STATE_DIR, DEFAULT_SUBNET, LabSettings

# The base image recipes (provision.lab.base.RECIPES); named here so --help loads no lab machinery.
BASE_RECIPES = ("fresh",)

DESCRIPTION = """\
Throwaway Debian SSH hosts on this machine (Linux, root), for trying a playbook before production.
Each host is an overlay of a cached Debian bookworm base with its own network, PID, mount, UTS and IPC
namespaces, tini as pid 1 and sshd; users root, admin (passwordless sudo) and ops (sudo with the password in
<state>/ops-password) log in with <state>/id_ed25519. Hosts reach only the lab's /24: apt, pip and npm go
through the lab's own apt-cacher-ng on the bridge address. `up` writes <state>/inventory.yml (group `lab`),
ssh_config (ssh -F <state>/ssh_config lab1), known_hosts and hosts.tsv.
"""


def add_lab_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lab`` sub-command and its own sub-commands."""
    lab = subparsers.add_parser("lab", help="throwaway local SSH hosts (Linux, root)", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help=f"lab state directory (env PROVISION_LAB_DIR; default "
                                            f"{DEFAULT_STATE_DIR})")
    common.add_argument("--subnet", help=f"the lab's private /24 (env PROVISION_LAB_SUBNET; default {DEFAULT_SUBNET})")
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    up = commands.add_parser("up", parents=[common], help="start hosts lab1..labN (keeps running ones)",
                             description="Start hosts lab1..labN; hosts already running are kept. The first run "
                                         "builds the base image (about 20 s).")
    up.add_argument("count", nargs="?", type=int, default=1, help="number of key-login hosts (default 1)")
    up.add_argument("--base", choices=BASE_RECIPES, default="fresh",
                    help="base image: fresh = a freshly installed Debian server (default)")
    up.add_argument("--password-host", action="append", default=[], metavar="NAME",
                    help="also start host NAME that accepts only a password for root, like a fresh cloud VPS "
                         "(no authorized key, a 50-cloud-init.conf turning password login on; for onboarding "
                         "tests); its password is in <state>/hosts/NAME/root-password (mode 600). Repeatable.")
    up.add_argument("--serve-git", metavar="DIR",
                    help="also serve the git repositories under DIR at git://<bridge address>:9418/NAME "
                         "until `lab down` (lab hosts reach nothing outside the lab)")
    up.add_argument("--proxy-port", type=int, default=DEFAULT_PROXY_PORT,
                    help=f"port of the lab proxy on the bridge address (default {DEFAULT_PROXY_PORT})")

    down = commands.add_parser("down", parents=[common], help="stop every host, remove what up created",
                               description="Stop every host and remove the namespaces, links, mounts and proxy "
                                           "that up recorded. Safe to run twice, and after a crash.")
    down.add_argument("--purge", action="store_true", help="also delete the base image, proxy cache and lab key")

    commands.add_parser("status", parents=[common], help="list hosts and whether they run")

    ssh = commands.add_parser("ssh", parents=[common], help="ssh into a host (as root)",
                              description="Run ssh -F <state>/ssh_config HOST [CMD…] (strict host key checking).")
    ssh.add_argument("host", help="host name, e.g. lab1")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, help="command to run (after --)")


def run_lab(args: argparse.Namespace) -> int:
    """Run a parsed ``lab`` command; returns the exit code, raises LabError for expected failures."""
    settings = LabSettings.create(args.state_dir, subnet=args.subnet,
                                  proxy_port=getattr(args, "proxy_port", DEFAULT_PROXY_PORT))
    from provision.lab.lab import Lab

    lab = Lab(settings)
    if args.lab_command == "up":
        hosts = lab.up(args.count, password_hosts=args.password_host, base=args.base)
        for host in hosts:
            print(f"{host.name}\t{host.address}\t{host.profile}")
        print(f"inventory: {lab.inventory}\nssh: ssh -F {lab.ssh_config} {hosts[0].name if hosts else 'lab1'}")
        if args.serve_git:
            from pathlib import Path

            from provision.lab.gitserve import serve_git

            print(f"git: {serve_git(settings, Path(args.serve_git))}")
        return 0
    if args.lab_command == "down":
        lab.down(purge=args.purge)
        return 0
    if args.lab_command == "status":
        status = lab.status()
        if not status.hosts:
            print(f"no lab hosts in {settings.state_dir}")
            return 0
        for item in status.hosts:
            state = f"running (pid {item.pid})" if item.running else "stopped"
            print(f"{item.host.name}\t{item.host.address}\t{item.host.profile}\t{state}")
        print(f"proxy\t{settings.gateway}\t{'running' if status.proxy_running else 'stopped'}")
        from provision.lab.gitserve import git_served, record_file

        if record_file(settings).exists():
            print(f"git\t{settings.gateway}\t{'running' if git_served(settings) else 'stopped'}")
        return 0 if all(item.running for item in status.hosts) else 1
    if args.lab_command == "ssh":
        remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
        return subprocess.call(lab.ssh_argv(args.host, remote))
    raise LabError(f"unknown lab command {args.lab_command!r}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m provision.lab``) until the ``provision`` CLI wires the lab in."""
    parser = argparse.ArgumentParser(prog="provision")
    add_lab_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return run_lab(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted; run `provision lab down` to remove a half-built lab", file=sys.stderr)
        return 130
