"""user / group: decisions from canned getent/id output; the authorized_keys writer run for real in a temp dir."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.connection import LocalConnection
from provision.context import HostContext
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.user import Group, User, keys_script, parse_user_probe, usermod_options, wanted_keys
from tests.unit._modrun import FakeContext

pytestmark = pytest.mark.unit

HASH = "$6$salt$abcdefghijklmnopqrstuvwxyz"
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB bob@laptop"


def probe_out(*, groups: str = "frappe sudo", shadow: str = HASH, keys: str | None = None) -> str:
    sha = hashlib.sha256(shadow.encode()).hexdigest()
    text = (
        "passwd=frappe:x:1000:1000:Frappe:/home/frappe:/bin/bash\n"
        f"group=frappe\ngroups={groups}\nshadow={sha}  -\n"
    )
    if keys is not None:
        text += "@@keys\n" + ("absent\n" if keys == "" else "present\n" + keys)
    return text


MISSING = "passwd=\ngroup=\ngroups=\n"



def uargs(**raw: Any) -> dict[str, Any]:
    coerced = User.coerce(User.normalize({"name": "frappe", **raw}))
    User().check_args(coerced)
    return coerced


def test_parse_probe() -> None:
    account = parse_user_probe(probe_out(keys=KEY_A + "\n"))
    assert (account.uid, account.group, account.groups, account.home) == (1000, "frappe", ["sudo"], "/home/frappe")
    assert account.keys == KEY_A + "\n"
    assert not parse_user_probe(MISSING).exists


MODS = [
    ({}, []),
    ({"shell": "/bin/bash", "uid": 1000, "group": "frappe", "comment": "Frappe"}, []),
    ({"shell": "/bin/sh"}, ["-s", "/bin/sh"]),
    ({"uid": 1001}, ["-u", "1001"]),
    ({"groups": ["sudo"]}, []),
    ({"groups": ["sudo", "adm"], "append": True}, ["-a", "-G", "adm"]),
    ({"groups": ["sudo", "adm"]}, ["-G", "sudo,adm"]),
    ({"groups": []}, ["-G", ""]),
    ({"groups": ["adm"], "append": True, "home": "/srv/frappe"}, ["-a", "-G", "adm", "-d", "/srv/frappe"]),
]


@pytest.mark.parametrize(("raw", "expected"), MODS)
def test_usermod_options(raw: dict[str, Any], expected: list[str]) -> None:
    assert usermod_options(parse_user_probe(probe_out()), uargs(**raw)) == expected


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    a = uargs(shell="/bin/bash", groups=["sudo"], password=HASH, authorized_keys=[KEY_A])
    result = execute_module(User(), a, ctx, probe_out(keys=KEY_A + "\n"))
    assert result.status == "ok" and ctx.calls == []


def test_create_with_password_on_stdin_only() -> None:
    ctx = FakeContext()
    a = uargs(shell="/bin/bash", groups=["sudo"], password=HASH, system=True, authorized_keys=[KEY_A])
    result = execute_module(User(), a, ctx, MISSING + "@@keys\nabsent\n")
    assert result.status == "changed"
    [(script, stdin, _ro)] = ctx.calls
    assert "useradd -s /bin/bash -G sudo -m -r frappe" in script
    assert "chpasswd -e" in script and HASH not in script
    assert stdin == f"frappe:{HASH}\n".encode()
    assert KEY_A in script


def test_password_changed_only_when_hash_differs() -> None:
    ctx = FakeContext()
    result = execute_module(User(), uargs(password="$6$other$hash"), ctx, probe_out())
    assert result.status == "changed" and result.data["steps"] == ["set password"]
    ctx2 = FakeContext()
    unchanged = execute_module(User(), uargs(password="$6$other$hash", update_password="on_create"), ctx2, probe_out())
    assert unchanged.status == "ok"


def test_keys_exclusive_and_diff() -> None:
    assert wanted_keys(KEY_A + "\n# note\n", [KEY_B], exclusive=False) == f"{KEY_A}\n# note\n{KEY_B}\n"
    assert wanted_keys(KEY_A + "\n", [KEY_B], exclusive=True) == KEY_B + "\n"
    ctx = FakeContext(check=True, diff=True)
    result = execute_module(User(), uargs(authorized_keys=[KEY_B], exclusive=True), ctx, probe_out(keys=KEY_A + "\n"))
    assert result.status == "changed" and ctx.calls == []
    assert result.diff is not None and f"-{KEY_A}" in result.diff and f"+{KEY_B}" in result.diff


def test_absent() -> None:
    ctx = FakeContext()
    assert execute_module(User(), uargs(state="absent"), ctx, MISSING).status == "ok"
    result = execute_module(User(), uargs(state="absent", remove=True), ctx, probe_out())
    assert result.status == "changed" and ctx.calls[0][0] == "userdel -r frappe\n"


def test_failure_names_command() -> None:
    ctx = FakeContext(results=[CommandResult(6, "", "useradd: group 'nosuch' does not exist")])
    result = execute_module(User(), uargs(group="nosuch"), ctx, MISSING)
    assert result.status == "failed" and "nosuch" in result.msg and "exit 6" in result.msg


@pytest.mark.parametrize("raw", [{"password": "clear-text"}, {"password": "$6$a:b"}, {"state": "gone"}])
def test_bad_args(raw: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        uargs(**raw)


def test_password_is_secret() -> None:
    assert User.secret_args() == ("password",)


GROUPS = [
    ("", {}, "changed", "groupadd frappe\n"),
    ("", {"gid": 1500, "system": True}, "changed", "groupadd -g 1500 -r frappe\n"),
    ("frappe:x:1000:\n", {}, "ok", None),
    ("frappe:x:1000:\n", {"gid": 1000}, "ok", None),
    ("frappe:x:1000:\n", {"gid": 1001}, "changed", "groupmod -g 1001 frappe\n"),
    ("frappe:x:1000:\n", {"state": "absent"}, "changed", "groupdel frappe\n"),
    ("", {"state": "absent"}, "ok", None),
]


@pytest.mark.parametrize(("probe", "raw", "status", "script"), GROUPS)
def test_group(probe: str, raw: dict[str, Any], status: str, script: str | None) -> None:
    ctx = FakeContext()
    result = execute_module(Group(), Group.coerce(Group.normalize({"name": "frappe", **raw})), ctx, probe)
    assert result.status == status
    assert [c[0] for c in ctx.calls] == ([script] if script else [])


def test_probe_scripts_are_valid_sh() -> None:
    a = uargs(password=HASH, authorized_keys=[KEY_A])
    subprocess.run(["sh", "-n", "-c", User().probe(a)], check=True)
    subprocess.run(["sh", "-n", "-c", keys_script("frappe", None, KEY_A + "\n")], check=True)


def test_keys_writer_for_real(tmp_path: Path) -> None:
    """keys_script and the key part of the probe, run locally for the current user in a temp home."""
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    ctx = HostContext(LocalConnection(), host="local", variables={})
    result = ctx.run(keys_script(me, str(tmp_path), f"{KEY_A}\n{KEY_B}\n"))
    assert result.ok, result.stderr
    ssh = tmp_path / ".ssh"
    assert oct(ssh.stat().st_mode & 0o777) == "0o700"
    keys = ssh / "authorized_keys"
    assert oct(keys.stat().st_mode & 0o777) == "0o600" and keys.read_text() == f"{KEY_A}\n{KEY_B}\n"
    assert sorted(p.name for p in ssh.iterdir()) == ["authorized_keys"]
    probe = User().probe(User.coerce({"name": me, "home": str(tmp_path), "authorized_keys": [KEY_A]}))
    state = ctx.run(probe, readonly=True).stdout
    assert parse_user_probe(state).keys == f"{KEY_A}\n{KEY_B}\n"
