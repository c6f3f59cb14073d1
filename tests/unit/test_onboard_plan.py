"""Onboarding's pure parts: fingerprints, pinning, step planning in check mode, sshd and firewall texts."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from provision.errors import HostKeyError, OptionsError, TaskFailed
from provision.onboard import firewall, hostkey, sshd, steps
from provision.onboard.flow import Onboarding, Request

pytestmark = pytest.mark.unit


def make_key(tmp_path: Path, name: str = "k") -> hostkey.HostKey:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return hostkey.HostKey("ssh-ed25519", paramiko.Ed25519Key.from_private_key_file(str(path)))


def openssh_fingerprint(path: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_fingerprint_matches_openssh_and_accepts_what_people_paste(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    expected = openssh_fingerprint(tmp_path / "k.pub")
    assert key.fingerprint == expected
    for pasted in (expected, expected[len("SHA256:"):], f"  {expected}=\n", "sha256:" + expected[7:]):
        assert hostkey.matching_key([key], hostkey.normalize_fingerprint(pasted)) == key
    other = make_key(tmp_path, "other")
    assert hostkey.matching_key([other], hostkey.normalize_fingerprint(expected)) is None


@pytest.mark.parametrize("bad", ["", "SHA256:", "MD5:aa:bb", "SHA256:" + "A" * 10, "SHA256:!!!"])
def test_a_malformed_fingerprint_is_bad_input(bad: str) -> None:
    with pytest.raises(OptionsError, match="not a SHA256 host key fingerprint"):
        hostkey.normalize_fingerprint(bad)


def test_a_valid_but_unknown_fingerprint_is_well_formed() -> None:
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode().rstrip("=")
    assert hostkey.normalize_fingerprint(digest) == "SHA256:" + digest


def test_pinning_appends_atomically_and_a_changed_key_is_refused(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0PjF0Z3JzZn4BTLLMSh7Ckv1hY5c6GRMXVxm8Mv7q")
    key = make_key(tmp_path)
    assert hostkey.check_pinned(known, "10.0.0.3", 2222, [key]) is False
    hostkey.pin_host_key(known, "10.0.0.3", 2222, key)
    lines = known.read_text().splitlines()
    assert lines[0].startswith("other.example ") and lines[1].startswith("[10.0.0.3]:2222 ssh-ed25519 ")
    assert hostkey.check_pinned(known, "10.0.0.3", 2222, [key]) is True
    assert hostkey.check_pinned(known, "10.0.0.3", 22, [key]) is False  # another port is another host
    with pytest.raises(HostKeyError, match="DIFFERENT ssh-ed25519 host key"):
        hostkey.check_pinned(known, "10.0.0.3", 2222, [make_key(tmp_path, "rebuilt")])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_our_sshd_dropin_sorts_before_cloud_init_and_hardens() -> None:
    assert sorted([Path(sshd.DROPIN).name, "50-cloud-init.conf", "90-lab.conf"])[0] == "00-provision.conf"
    text = sshd.dropin_text()
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no"):
        assert line in text.splitlines()


def test_effective_values_are_read_per_user_and_every_weak_one_is_named() -> None:
    out = ("root passwordauthentication no\nroot kbdinteractiveauthentication no\nroot permitrootlogin no\n"
           "root pubkeyauthentication yes\nops passwordauthentication yes\nops kbdinteractiveauthentication no\n"
           "ops permitrootlogin no\nops pubkeyauthentication yes\n")
    effective = sshd.parse_effective(out)
    assert sshd.not_hardened(effective, ["root"]) == []
    assert sshd.not_hardened(effective, ["root", "ops"]) == ["ops: passwordauthentication is yes, want no"]
    assert sshd.not_hardened({}, ["x"])[0] == "x: passwordauthentication is unknown, want no"


def test_default_ruleset_opens_ssh_http_https_and_the_custom_ssh_port() -> None:
    assert "tcp dport { 22, 80, 443 } accept" in firewall.render_ruleset(22)
    assert "tcp dport { 22, 80, 443, 2222 } accept" in firewall.render_ruleset(2222)
    text = firewall.render_ruleset(22)
    assert "ct state established,related accept" in text and "policy drop" in text
    # Replaced in one transaction: create (so delete cannot fail), delete, define.
    assert text.index("table inet provision\n") < text.index("delete table inet provision") < text.index("{")


def test_revert_job_is_detached_and_applies_after_our_reply() -> None:
    script = firewall.arm_script(45)
    assert "setsid sh -c 'sleep 1; nft -f" in script and "sleep 45" in script
    assert "</dev/null >/dev/null 2>&1 &" in script  # nothing keeps our SSH channel open
    assert script.index("nft -c -f") < script.index("setsid")  # checked before anything is applied


@pytest.mark.parametrize(("function", "value"), [
    (steps.check_host_name, "App_3"), (steps.check_host_name, "-x"), (steps.check_user_name, "Root"),
    (steps.check_user_name, "a b"), (steps.check_timezone, "../etc/passwd"), (steps.check_timezone, "Europe Berlin"),
])
def test_names_that_would_reach_a_shell_are_bad_input(function: Any, value: str) -> None:
    with pytest.raises(OptionsError):
        function(value)


class FakeHost:
    """Answers check scripts by step name, as a host would; records every script that ran."""

    def __init__(self, answers: dict[str, int]) -> None:
        self.answers = answers
        self.ran: list[str] = []

    def __call__(self, script: str, stdin: bytes | None, timeout: float) -> tuple[int, str, str]:
        self.ran.append(script)
        for marker, rc in self.answers.items():
            if marker in script:
                return rc, f"{marker}: detail", ""
        return steps.OK, "ok", ""


def planner(tmp_path: Path, *, check: bool) -> tuple[Onboarding, list[str]]:
    lines: list[str] = []
    request = Request(address="10.0.0.3", name="app3", group="prod", inventory=tmp_path / "inventory.yml",
                      deploy_key=tmp_path / "key", check=check)
    return Onboarding(request, lines.append), lines


def test_check_mode_runs_only_check_scripts_and_lists_each_step(tmp_path: Path) -> None:
    onboarding, lines = planner(tmp_path, check=True)
    plan = steps.bootstrap_steps(user="frappe-ops", public_key="ssh-ed25519 AAAA k", name="app3",
                                 timezone="Etc/UTC", lock_timeout=60)
    host = FakeHost({"dpkg-query": steps.CHANGE, "/proc/1/comm": steps.SKIP})
    for step in plan:
        onboarding._step(host, step)
    assert host.ran == [step.check for step in plan]  # not one apply script
    assert lines[0] == "would change  packages (sudo, nftables, unattended-upgrades): dpkg-query: detail"
    assert "     skipped  swap when memory is small: /proc/1/comm: detail" in lines
    assert sum(line.lstrip().startswith("ok") for line in lines) == len(plan) - 2
    assert onboarding.summary.changed == [plan[0].name] and onboarding.summary.skipped == [plan[5].name]


def test_apply_runs_after_a_change_check_and_a_failure_names_the_step(tmp_path: Path) -> None:
    onboarding, lines = planner(tmp_path, check=False)
    step = steps.hostname_step("app3")
    host = FakeHost({"hostname $(hostname)": steps.CHANGE, "set -e": 1})
    with pytest.raises(TaskFailed, match="hostname app3: exit 1"):
        onboarding._step(host, step)
    assert host.ran == [step.check, step.apply]
    host = FakeHost({"hostname $(hostname)": steps.CHANGE})
    onboarding._step(host, step)
    assert lines[-1].startswith("     changed  hostname app3")


def test_host_vars_for_the_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    onboarding, _ = planner(tmp_path, check=True)
    assert onboarding.host_vars() == {"ssh_host": "10.0.0.3", "ssh_port": None, "ssh_user": "frappe-ops",
                                      "ssh_private_key_file": str((tmp_path / "key").resolve())}
    monkeypatch.chdir("/")
    assert onboarding.host_vars()["ssh_known_hosts_file"] == str(tmp_path.resolve() / "known_hosts")
