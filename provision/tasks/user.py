"""user and group: local accounts, their password hash and their SSH authorized_keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .shell import quote, unified_diff

KEYS_EOF = "PROVISION_AUTHORIZED_KEYS_EOF"


@dataclass
class Account:
    """A user as the probe saw it (``exists`` False when getent knows no such user)."""

    exists: bool
    uid: int = 0
    gid: int = 0
    comment: str = ""
    home: str = ""
    shell: str = ""
    group: str = ""
    groups: list[str] = field(default_factory=list)  # supplementary, not the primary
    password_sha: str = ""  # sha256 of the shadow field, so the hash itself never travels
    keys: str | None = None  # authorized_keys content; None when the file is absent


def parse_user_probe(state: str | None) -> Account:
    """Read the probe's ``key=value`` lines (``keys`` is the rest of the output)."""
    text = state or ""
    head, _, keys = text.partition("@@keys\n")
    values = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    fields = values.get("passwd", "").split(":")
    if len(fields) < 7:
        return Account(exists=False)
    group = values.get("group", "")
    groups = [g for g in values.get("groups", "").split() if g != group]
    return Account(
        exists=True,
        uid=int(fields[2]),
        gid=int(fields[3]),
        comment=fields[4],
        home=fields[5],
        shell=fields[6],
        group=group,
        groups=groups,
        password_sha=values.get("shadow", "").split(" ")[0],
        keys=keys[len("present\n"):] if keys.startswith("present\n") else None,
    )


def usermod_options(current: Account, args: dict[str, Any]) -> list[str]:
    """``usermod`` options that bring an existing user to the wanted state."""
    opts: list[str] = []
    if args["uid"] is not None and args["uid"] != current.uid:
        opts += ["-u", str(args["uid"])]
    if args["group"] and args["group"] != current.group and args["group"] != str(current.gid):
        opts += ["-g", args["group"]]
    wanted = [g for g in args["groups"] or [] if g != (args["group"] or current.group)]
    if args["groups"] is not None:
        if args["append"]:
            missing = [g for g in wanted if g not in current.groups]
            if missing:
                opts += ["-a", "-G", ",".join(missing)]
        elif sorted(set(wanted)) != sorted(set(current.groups)):
            opts += ["-G", ",".join(wanted)]
    if args["shell"] and args["shell"] != current.shell:
        opts += ["-s", args["shell"]]
    if args["home"] and args["home"].rstrip("/") != current.home.rstrip("/"):
        opts += ["-d", args["home"]]
    if args["comment"] is not None and args["comment"] != current.comment:
        opts += ["-c", args["comment"]]
    return opts


def useradd_options(args: dict[str, Any]) -> list[str]:
    """``useradd`` options for a new user."""
    opts: list[str] = []
    for flag, key in (("-u", "uid"), ("-g", "group"), ("-s", "shell"), ("-d", "home"), ("-c", "comment")):
        if args[key] is not None and args[key] != "":
            opts += [flag, str(args[key])]
    if args["groups"]:
        opts += ["-G", ",".join(args["groups"])]
    opts.append("-m" if args["create_home"] else "-M")
    if args["system"]:
        opts.append("-r")
    return opts


def wanted_keys(current: str | None, keys: list[str], exclusive: bool) -> str:
    """The authorized_keys text: the wanted keys, plus the other present lines unless exclusive."""
    lines = [k.strip() for k in keys if k.strip()]
    if not exclusive and current:
        kept = [line for line in current.splitlines() if line.strip() and line.strip() not in lines]
        lines = kept + lines
    return "\n".join(lines) + "\n" if lines else ""


def keys_script(user: str, home: str | None, content: str) -> str:
    """Write ~/.ssh/authorized_keys (700/600, owned by the user) atomically from a here-document."""
    q_user = quote(user)
    home_word = quote(home) if home else f'"$(getent passwd {q_user} | cut -d: -f6)"'
    return (
        f"_pv_g=$(id -gn {q_user})\n"
        f"_pv_d={home_word}/.ssh\n"
        'mkdir -p "$_pv_d"\nchmod 700 "$_pv_d"\n'
        f'chown {q_user}:"$_pv_g" "$_pv_d"\n'
        '_pv_t="$_pv_d/.authorized_keys.provision-$$"\n'
        f"trap 'rm -f \"$_pv_t\"' EXIT HUP INT TERM PIPE\n"
        f"cat > \"$_pv_t\" <<'{KEYS_EOF}'\n{content}{KEYS_EOF}\n"
        'chmod 600 "$_pv_t"\n'
        f'chown {q_user}:"$_pv_g" "$_pv_t"\n'
        'sync "$_pv_t" 2>/dev/null || sync\n'
        'mv -f "$_pv_t" "$_pv_d/authorized_keys"\n'
        "trap - EXIT HUP INT TERM PIPE\n"
    )


class User(Module):
    """Manage a local user account.

    name: the login name
    uid: numeric user id
    group: primary group (name or gid)
    groups: supplementary groups; with append false the user is removed from the others
    append: add to groups, keep the others
    shell, home, comment: login shell, home directory, GECOS
    create_home: create the home directory for a new user (default true)
    system: create a system account
    state: present | absent
    remove: with state absent, delete the home directory too
    password: an already hashed password (secret), set with chpasswd -e
    update_password: always | on_create
    authorized_keys: public keys for ~/.ssh/authorized_keys
    exclusive: remove the keys not listed
    """

    name = "user"
    args = {
        "name": Arg(str, required=True, help="the login name"),
        "uid": Arg(int, help="numeric user id"),
        "group": Arg(str, help="primary group (name or gid)"),
        "groups": Arg(list, help="supplementary groups; with append false the user is removed from the others"),
        "append": Arg(bool, default=False, help="add to groups, keep the others"),
        "shell": Arg(str, help="login shell, home directory, GECOS"),
        "home": Arg(str, help="login shell, home directory, GECOS"),
        "comment": Arg(str, help="login shell, home directory, GECOS"),
        "create_home": Arg(bool, default=True, aliases=("createhome",),
                           help="create the home directory for a new user (default true)"),
        "system": Arg(bool, default=False, help="create a system account"),
        "state": Arg(str, default="present", choices=("present", "absent"), help="present | absent"),
        "remove": Arg(bool, default=False, help="with state absent, delete the home directory too"),
        "password": Arg(str, secret=True, help="an already hashed password (secret), set with chpasswd -e"),
        "update_password": Arg(str, default="always", choices=("always", "on_create"), help="always | on_create"),
        "authorized_keys": Arg(list, help="public keys for ~/.ssh/authorized_keys"),
        "exclusive": Arg(bool, default=False, help="remove the keys not listed"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        password = args["password"]
        if password and not password.startswith(("$", "!", "*")):
            raise ArgumentError(
                "user: password must already be hashed (it starts with $ like $6$…)",
                hint="hash it first, e.g. `mkpasswd -m sha-512` or `openssl passwd -6`; never send it in clear",
            )
        if password and (":" in password or "\n" in password):
            raise ArgumentError("user: password hash must not contain ':' or a newline")
        for key in args["authorized_keys"] or []:
            if "\n" in key.strip():
                raise ArgumentError("user: each authorized_keys item must be one key on one line")

    def facts(self, args: dict[str, Any]) -> Probe[Account]:
        return Probe(self._probe(args), parse_user_probe)

    def _probe(self, args: dict[str, Any]) -> str:
        q = quote(args["name"])
        lines = [
            f"echo \"passwd=$(getent passwd {q})\"",
            f"echo \"group=$(id -gn {q} 2>/dev/null)\"",
            f"echo \"groups=$(id -Gn {q} 2>/dev/null)\"",
        ]
        if args["password"]:
            lines.append(f"echo \"shadow=$(getent shadow {q} | cut -d: -f2 | tr -d '\\n' | sha256sum)\"")
        if args["authorized_keys"] is not None:
            home = quote(args["home"]) if args["home"] else f"\"$(getent passwd {q} | cut -d: -f6)\""
            lines += ["echo @@keys", f"_pv_h={home}", 'pv_cat "$_pv_h/.ssh/authorized_keys"']
        return "\n".join(lines) + "\n"

    def plan(self, args: dict[str, Any], facts: Account, ctx: PlanContext) -> Plan:
        name = args["name"]
        current = facts
        if args["state"] == "absent":
            if not current.exists:
                return Plan(f"user {name} absent", data={"name": name, "state": "absent"})
            script = f"userdel {'-r ' if args['remove'] else ''}{quote(name)}\n"
            return _change(script, None, f"removed user {name}", f"would remove user {name}",
                           name=name, state="absent")

        steps: list[str] = []
        script = ""
        stdin: bytes | None = None
        if not current.exists:
            steps.append("create")
            script += f"useradd {' '.join(quote(o) for o in useradd_options(args))} {quote(name)}\n"
        else:
            opts = usermod_options(current, args)
            if opts:
                fields = {"-u": "uid", "-g": "group", "-G": "groups", "-s": "shell", "-d": "home", "-c": "comment"}
                steps.append("change " + ", ".join(fields[o] for o in opts if o in fields))
                script += f"usermod {' '.join(quote(o) for o in opts)} {quote(name)}\n"
        password = args["password"]
        if password and (not current.exists or (args["update_password"] == "always"
                                                and hashlib.sha256(password.encode()).hexdigest()
                                                != current.password_sha)):
            steps.append("set password")
            # The hash goes on stdin only: never in the script or a command line.
            script += "chpasswd -e\n"
            stdin = f"{name}:{password}\n".encode()
        diff: Callable[[PlanContext], str] | None = None
        if args["authorized_keys"] is not None:
            home = args["home"] or current.home or None
            old = current.keys if current.exists else None
            new = wanted_keys(old, args["authorized_keys"], args["exclusive"])
            if new != (old or ""):
                steps.append("write authorized_keys")
                script += keys_script(name, home, new)
                diff = _keys_diff(old or "", new, f"{home or '~' + name}/.ssh/authorized_keys")
        if not steps:
            return Plan(f"user {name} up to date", data={"name": name, "uid": current.uid, "home": current.home})
        msg = f"user {name}: " + ", ".join(steps)
        return _change("set -e\n" + script, stdin, msg, f"would {', '.join(steps)} (user {name})", diff=diff,
                       name=name, steps=steps)


def _keys_diff(old: str, new: str, path: str) -> Callable[[PlanContext], str]:
    return lambda _ctx: unified_diff(old, new, path)


def _change(script: str, stdin: bytes | None, msg: str, check_msg: str, *,
            diff: Callable[[PlanContext], str] | None = None, **data: Any) -> Plan:
    def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult | None:
        if result.ok:
            return None
        failed = TaskResult.from_command(msg, result)
        failed.data.update(data)
        return failed

    return Plan(msg, script=script, stdin=stdin, data=data, check_msg=check_msg, diff=diff, outcome=outcome)


def parse_group_probe(state: str | None) -> tuple[bool, int]:
    """(exists, gid) from ``getent group`` output."""
    fields = (state or "").strip().split(":")
    if len(fields) < 3 or not fields[2].isdigit():
        return False, 0
    return True, int(fields[2])


class Group(Module):
    """Manage a local group.

    name: the group name
    gid: numeric group id
    system: create a system group
    state: present | absent
    """

    name = "group"
    args = {
        "name": Arg(str, required=True, help="the group name"),
        "gid": Arg(int, help="numeric group id"),
        "system": Arg(bool, default=False, help="create a system group"),
        "state": Arg(str, default="present", choices=("present", "absent"), help="present | absent"),
    }

    def facts(self, args: dict[str, Any]) -> Probe[tuple[bool, int]]:
        return Probe(f"getent group {quote(args['name'])} || true\n", parse_group_probe)

    def plan(self, args: dict[str, Any], facts: tuple[bool, int], ctx: PlanContext) -> Plan:
        name, gid = args["name"], args["gid"]
        exists, current_gid = facts
        if args["state"] == "absent":
            if not exists:
                return Plan(f"group {name} absent", data={"name": name})
            script, msg = f"groupdel {quote(name)}\n", f"removed group {name}"
        elif not exists:
            opts = (f"-g {gid} " if gid is not None else "") + ("-r " if args["system"] else "")
            script, msg = f"groupadd {opts}{quote(name)}\n", f"created group {name}"
        elif gid is not None and gid != current_gid:
            script, msg = f"groupmod -g {gid} {quote(name)}\n", f"group {name}: gid {current_gid} -> {gid}"
        else:
            return Plan(f"group {name} present (gid {current_gid})", data={"name": name, "gid": current_gid})
        return _change(script, None, msg, "would: " + msg, name=name)
