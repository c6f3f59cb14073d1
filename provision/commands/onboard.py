"""``provision onboard ADDRESS --name app3 --group prod``: a fresh server to a hardened, inventoried, deployed host."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
First contact with a fresh server, from a laptop: pin its host key (after showing its SHA256
fingerprint, or comparing it with --accept-host-key), log in with the initial credentials, create the
deploy user with this control host's key and passwordless sudo, set hostname and time zone, add swap on
small servers, enable unattended security upgrades, apply an nftables firewall (SSH, 80, 443) under a
revert timer that only a fresh login cancels, prove a key login with sudo on a second connection, and
only then turn password and root logins off (sshd -t before, sshd -T after). The host is added to the
inventory (comments kept, diff shown) and deployed with `provision deploy` unless --no-deploy.
Running it again on an onboarded host changes nothing; --check shows every step and changes nothing.
The initial password is typed at a prompt (--ask-pass) or read from a file, never given on a command line.
"""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("onboard", parents=[common], help="onboard a fresh server: harden, inventory, deploy",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 # `--password SECRET` must not pass for --password-file (and be echoed as a path)
                                 allow_abbrev=False)
    parser.add_argument("address", help="the server's address (IP or DNS name)")
    parser.add_argument("--name", required=True, help="inventory name, also the server's hostname (e.g. app3)")
    parser.add_argument("--group", required=True, help="inventory group to add it to (e.g. prod)")
    parser.add_argument("--user", default="root", help="initial login user (default: root)")
    parser.add_argument("--port", type=int, default=22, help="SSH port (default: 22)")
    credential = parser.add_mutually_exclusive_group()
    credential.add_argument("--ask-pass", action="store_true", help="prompt for the initial login password")
    credential.add_argument("--password-file", type=Path, metavar="FILE",
                            help="read the initial login password from FILE (first line)")
    credential.add_argument("--key", type=Path, metavar="FILE", help="initial login private key (a cloud key)")
    parser.add_argument("--accept-host-key", metavar="SHA256:...",
                        help="the host key fingerprint to expect (for scripts); anything else is refused "
                             "before a credential is sent")
    parser.add_argument("--deploy-user", default="frappe-ops", help="the user provision logs in as afterwards "
                                                                    "(default: frappe-ops)")
    parser.add_argument("--deploy-key", type=Path, metavar="FILE",
                        help="the deploy user's private key (generated if missing; default ~/.ssh/id_ed25519 if "
                             "it exists, else keys/deploy_ed25519 next to the inventory)")
    parser.add_argument("--timezone", default="Etc/UTC", help="time zone (default: Etc/UTC)")
    parser.add_argument("--firewall-rules", type=Path, metavar="FILE",
                        help="an nftables ruleset to apply instead of the default (SSH, 80, 443); it is checked "
                             "with nft -c and applied under the same revert timer")
    parser.add_argument("--revert-after", type=int, default=90, metavar="S",
                        help="seconds after which a new firewall ruleset is reverted unless a fresh login "
                             "confirmed it (default: 90)")
    parser.add_argument("--apt-lock-timeout", type=int, default=300, metavar="S",
                        help="how long apt waits for a dpkg lock held by first-boot upgrades (default: 300)")
    parser.add_argument("--no-deploy", action="store_true", help="stop after the inventory; do not deploy")
    parser.set_defaults(func=cmd_onboard)


def cmd_onboard(args: argparse.Namespace) -> int:
    from ..errors import OptionsError
    from ..onboard.flow import Onboarding, Request
    from ..onboard.steps import check_host_name, check_timezone, check_user_name

    if not 0 < args.port < 65536:
        raise OptionsError(f"--port {args.port} is not a port number")
    if args.revert_after < 10:
        raise OptionsError("--revert-after must be at least 10 seconds (a fresh login has to fit in it)")
    if args.accept_host_key:
        from ..onboard.hostkey import normalize_fingerprint

        normalize_fingerprint(args.accept_host_key)  # a typo is bad input before any host is contacted
    inventory = Path(args.inventory)
    if "," in args.inventory:
        raise OptionsError("onboard edits an inventory file; -i must name one", hint="-i inventory.yml")
    password = _password(args)
    if password is not None:
        args.redactor.add([password])
    _learn_inventory_secrets(args, inventory)
    request = Request(
        address=args.address, name=check_host_name(args.name), group=args.group, inventory=inventory,
        deploy_key=_deploy_key(args, inventory), port=args.port, user=args.user, password=password,
        key_file=args.key, accept_host_key=args.accept_host_key, deploy_user=check_user_name(args.deploy_user),
        timezone=check_timezone(args.timezone), check=args.check, revert_after=args.revert_after,
        lock_timeout=args.apt_lock_timeout, ruleset=_read(args.firewall_rules, "--firewall-rules"),
        connect_timeout=args.connect_timeout, confirm=_confirm if sys.stdin.isatty() else None,
    )
    if args.key is not None and not args.key.exists():
        raise OptionsError(f"--key {args.key}: no such file")

    def say(line: str) -> None:
        # With --json, stdout carries only the deploy's NDJSON events; our lines are for people.
        print(args.redactor(line), flush=True, file=sys.stderr if args.json else sys.stdout)

    say(f"onboarding {args.address}:{args.port} as {args.name} (group {args.group})"
        + (" -- check mode, nothing is changed" if args.check else ""))
    summary = Onboarding(request, say).run()
    if not summary.changed:
        say(f"{args.name} is already onboarded: nothing changed")
    elif args.check:
        say(f"{args.name}: {len(summary.changed)} step(s) would change: {', '.join(summary.changed)}")
    else:
        say(f"{args.name}: onboarded ({len(summary.changed)} step(s) changed)")
    if args.no_deploy or args.check:
        if not args.check:
            say(f"not deployed (--no-deploy): run `provision deploy {args.name}` when ready")
        return 0
    return _deploy(args, request.known_hosts)


def _learn_inventory_secrets(args: argparse.Namespace, inventory: Path) -> None:
    """The inventory's secrets (``!secret``, credential-like names) stay out of the diff we show."""
    from ..errors import InventoryError
    from ..secrets import secret_values
    from ..yamlfile import parse_yaml

    if not inventory.exists():
        return
    data = parse_yaml(inventory.read_text(), str(inventory), error=InventoryError)
    if isinstance(data, dict):
        args.redactor.add(secret_values(data))


def _deploy(args: argparse.Namespace, known_hosts: Path) -> int:
    """The existing deploy path, limited to the new host; the project's known_hosts goes with it."""
    from ..cli import cmd_deploy

    if known_hosts not in args.known_hosts:
        args.known_hosts.append(known_hosts)
    args.group = args.name
    print(f"deploying {args.name} (provision deploy {args.name})", flush=True,
          file=sys.stderr if args.json else sys.stdout)
    return cmd_deploy(args)


def _password(args: argparse.Namespace) -> str | None:
    from ..errors import OptionsError

    if args.ask_pass:
        import getpass

        return getpass.getpass(f"{args.user}@{args.address} password: ")
    if args.password_file is not None:
        text = _read(args.password_file, "--password-file") or ""
        password = text.splitlines()[0] if text else ""
        if not password:
            raise OptionsError(f"--password-file {args.password_file} is empty")
        return password
    return None


def _deploy_key(args: argparse.Namespace, inventory: Path) -> Path:
    if args.deploy_key is not None:
        return Path(args.deploy_key).expanduser().absolute()
    home_key = Path.home() / ".ssh" / "id_ed25519"
    if home_key.exists():
        return home_key
    return inventory.absolute().parent / "keys" / "deploy_ed25519"


def _read(path: Path | None, option: str) -> str | None:
    from ..errors import OptionsError

    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise OptionsError(f"{option} {path}: {exc.strerror or exc}") from None


def _confirm(question: str) -> bool:
    print(question, file=sys.stderr)
    while True:
        answer = input("type yes or no: ").strip().lower()
        if answer in ("yes", "no"):
            return answer == "yes"
