"""``provision onboard`` end to end, on lab hosts that look like fresh cloud servers.

``fresh1`` and ``fresh2`` accept only a root password, and carry a ``50-cloud-init.conf`` turning
password login on (as a cloud image does). The tests run in order: refusals first (wrong host key,
a host whose sshd config is already broken, check mode), then one full onboarding of fresh1 with
the deploy (the stand-in framework served over git, as in test_deploy.py), what it left, a second
run that changes nothing, and the two lockout guards (a bad sshd drop-in, a firewall that cuts SSH).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from provision.connection import SSHConnection
from provision.connspec import ConnectionSpec
from provision.onboard import sshd

from .conftest import LabHandle, claimed_lab
from .test_deploy import git_server  # noqa: F401  (the fixture, served on this module's lab)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "Admin-pw-for-onboard-51aa"
DB_ROOT_PASSWORD = "Root-pw-for-onboard-3b07"
INVENTORY = """\
# Production benches. Hand-written: keep these comments.
all:
  children:
    prod:   # the live group
      hosts:
        app1:
          ssh_host: 192.0.2.1  # placeholder, never contacted (--limit)
        # app2 was retired
      vars:
        ssh_user: root
        db_root_password: !secret {db}
        dns_multitenant: true
        gunicorn_workers: 2
        apps:
          - {{name: frappe, repo: '{git}/frappe', ref: version-15}}
          - {{name: ledger, repo: '{git}/ledger', ref: v1}}
        sites:
          - name: onboard.local
            admin_password: !secret {admin}
    staging:  # empty for now
      hosts:
"""
NO_AUTH_WORDS = ("Accepted", "Failed", "Invalid user", "authenticating", "Postponed", "publickey", "password")


@pytest.fixture(scope="module")
def deploy_lab() -> Iterator[LabHandle]:
    """This module's lab (named as test_deploy's git_server fixture expects)."""
    with claimed_lab("onboard", 0, password_hosts=["fresh1", "fresh2"]) as handle:
        yield handle


@pytest.fixture(scope="module")
def project(deploy_lab: LabHandle, git_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    directory = tmp_path_factory.mktemp("onboard-project")
    (directory / "inventory.yml").write_text(INVENTORY.format(db=DB_ROOT_PASSWORD, git=git_server,
                                                              admin=ADMIN_PASSWORD))
    for name in ("fresh1", "fresh2"):
        password = deploy_lab.host(name).root_password_file.read_text().strip()
        (directory / f"{name}.password").write_text(password + "\n")
        (directory / f"{name}.password").chmod(0o600)
    return directory


def fingerprint(handle: LabHandle, name: str) -> str:
    public = handle.host(name).upper_dir / "etc/ssh/ssh_host_ed25519_key.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def onboard(project: Path, address: str, *args: str, name: str = "app3",
            timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "provision", "onboard", address, "--name", name, "--group", "prod",
            "--deploy-key", str(project / "keys" / "deploy_ed25519"), *args]
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def password_login(address: str, user: str, password: str, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, username=user, password=password, look_for_keys=False, allow_agent=False, timeout=10)
    return client


def root_client(handle: LabHandle, name: str) -> paramiko.SSHClient:
    """Root on a fresh host by its password, the host key checked against the lab's own known_hosts."""
    host = handle.host(name)
    return password_login(host.address, "root", host.root_password_file.read_text().strip(), handle.known_hosts)


def run_as_root(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, _ = client.exec_command(command, timeout=30)
    return str(stdout.read().decode())


def deploy_connection(project: Path, address: str) -> SSHConnection:
    spec = ConnectionSpec(name="app3", host=address, user="frappe-ops",
                          private_key_file=str(project / "keys" / "deploy_ed25519"))
    return SSHConnection(spec, known_hosts=[project / "known_hosts"])


def log_since(handle: LabHandle, name: str, offset: int) -> str:
    return handle.host(name).sshd_log.read_text(errors="replace")[offset:]


def test_wrong_host_key_is_refused_before_any_credential(deploy_lab: LabHandle, project: Path) -> None:
    host = deploy_lab.host("fresh1")
    offset = len(host.sshd_log.read_text(errors="replace"))
    result = onboard(project, host.address, "--password-file", "fresh1.password", "--no-deploy",
                     "--accept-host-key", "SHA256:" + "A" * 43)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not the expected" in result.stderr and fingerprint(deploy_lab, "fresh1") in result.stderr
    time.sleep(0.5)  # sshd writes its last lines as the connection closes
    log = log_since(deploy_lab, "fresh1", offset)
    assert "Connection from" in log
    assert not [word for word in NO_AUTH_WORDS if word in log], log
    assert not (project / "known_hosts").exists()


def test_check_mode_lists_every_step_and_changes_nothing(deploy_lab: LabHandle, project: Path) -> None:
    host = deploy_lab.host("fresh2")
    before = (project / "inventory.yml").read_text()
    result = onboard(project, host.address, "--password-file", "fresh2.password", "--check", "--name", "app4",
                     "--accept-host-key", fingerprint(deploy_lab, "fresh2"), name="app4")
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("host key", "deploy key", "packages", "deploy user frappe-ops", "passwordless sudo",
                 "hostname app4", "time zone", "swap", "unattended security upgrades", "firewall", "sshd hardening",
                 "inventory"):
        assert re.search(rf"(would change|ok|skipped)  {re.escape(step)}", result.stdout), (step, result.stdout)
    assert "+        app4:" in result.stdout  # the diff is shown
    assert (project / "inventory.yml").read_text() == before
    assert not (project / "known_hosts").exists() and not (project / "keys").exists()
    password = deploy_lab.host("fresh2").root_password_file.read_text().strip()
    assert password not in result.stdout + result.stderr
    with root_client(deploy_lab, "fresh2") as client:
        assert run_as_root(client, "id frappe-ops >/dev/null 2>&1 || echo absent; hostname") == "absent\nfresh2\n"


def test_broken_sshd_config_is_refused_before_any_change(deploy_lab: LabHandle, project: Path) -> None:
    host = deploy_lab.host("fresh2")
    with root_client(deploy_lab, "fresh2") as client:
        run_as_root(client, "echo 'NoSuchKeyword yes' > /etc/ssh/sshd_config.d/10-injected.conf")
        try:
            result = onboard(project, host.address, "--password-file", "fresh2.password", "--no-deploy",
                             "--name", "app4", "--accept-host-key", fingerprint(deploy_lab, "fresh2"), name="app4")
        finally:
            run_as_root(client, "rm -f /etc/ssh/sshd_config.d/10-injected.conf")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "sshd preflight" in result.stderr and "NoSuchKeyword" in result.stderr
        assert run_as_root(client, "id frappe-ops >/dev/null 2>&1 || echo absent; "
                                   "ls /etc/ssh/sshd_config.d") == "absent\n50-cloud-init.conf\n90-lab.conf\n"
    assert "app4" not in (project / "inventory.yml").read_text()
    (project / "known_hosts").unlink()  # pinned by that run; the next tests start from first contact


@pytest.fixture(scope="module")
def onboarded(deploy_lab: LabHandle, project: Path) -> subprocess.CompletedProcess[str]:
    """fresh1 onboarded as app3 into prod, and deployed: the one full run of this module."""
    started = time.monotonic()
    result = onboard(project, deploy_lab.host("fresh1").address, "--password-file", "fresh1.password",
                     "--accept-host-key", fingerprint(deploy_lab, "fresh1"), "--revert-after", "30")
    print(f"onboard with deploy took {time.monotonic() - started:.0f} s")
    return result


@pytest.mark.timeout(1800)  # its fixture runs the one deploy: 2-8 minutes here, depending on the machine's load
def test_onboard_hardens_inventories_and_deploys(deploy_lab: LabHandle, project: Path,
                                                 onboarded: subprocess.CompletedProcess[str]) -> None:
    output = onboarded.stdout + onboarded.stderr
    assert onboarded.returncode == 0, output[-5000:]
    for secret in (deploy_lab.host("fresh1").root_password_file.read_text().strip(), DB_ROOT_PASSWORD,
                   ADMIN_PASSWORD):
        assert secret not in output
    address = deploy_lab.host("fresh1").address
    # The inventory: the host under prod, every comment and the rest of the file as they were.
    text = (project / "inventory.yml").read_text()
    for line in INVENTORY.splitlines():
        assert line.split("{")[0].rstrip() in text
    assert "        # app2 was retired\n" in text
    assert f"        app3:\n          ssh_host: {address}\n          ssh_user: frappe-ops\n" in text
    assert f"ssh_private_key_file: {project / 'keys' / 'deploy_ed25519'}" in text
    # Root and password logins are refused; the deploy user's key works, with sudo.
    password = deploy_lab.host("fresh1").root_password_file.read_text().strip()
    with pytest.raises(paramiko.AuthenticationException):
        password_login(address, "root", password, project / "known_hosts")
    conn = deploy_connection(project, address)
    try:
        effective = conn.run("sshd -T", become_user="root")
        assert effective.rc == 0, effective.stderr
        values = dict(line.split(" ", 1) for line in effective.stdout.splitlines() if " " in line)
        assert (values["passwordauthentication"], values["permitrootlogin"], values["kbdinteractiveauthentication"]) \
            == ("no", "no", "no")
        assert conn.run("hostname").stdout.strip() == "app3"
        assert "tcp dport { 22, 80, 443 } accept" in conn.run("nft list table inet provision",
                                                               become_user="root").stdout
        assert conn.run("pgrep -f provision-firewall || echo none").stdout.strip() == "none"
        # provision deploy ran on it: the site answers through nginx.
        ping = conn.run("curl -s -H 'Host: onboard.local' http://127.0.0.1/api/method/ping")
        assert json.loads(ping.stdout) == {"message": "pong"}, ping.stdout + ping.stderr
    finally:
        conn.close()
    assert "recap" in output or "deploying app3" in output


def test_second_onboard_changes_nothing(deploy_lab: LabHandle, project: Path,
                                        onboarded: subprocess.CompletedProcess[str]) -> None:
    assert onboarded.returncode == 0
    before = (project / "inventory.yml").read_text(), (project / "known_hosts").read_text()
    result = onboard(project, deploy_lab.host("fresh1").address, "--password-file", "fresh1.password",
                     "--no-deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app3 is already onboarded: nothing changed" in result.stdout
    assert "changed " not in result.stdout.replace("nothing changed", "")
    assert ((project / "inventory.yml").read_text(), (project / "known_hosts").read_text()) == before


def test_sshd_dropin_that_fails_sshd_t_leaves_the_old_config(deploy_lab: LabHandle, project: Path,
                                                             onboarded: subprocess.CompletedProcess[str]) -> None:
    assert onboarded.returncode == 0
    conn = deploy_connection(project, deploy_lab.host("fresh1").address)
    try:
        before = conn.run(f"cat {sshd.DROPIN}", become_user="root").stdout
        result = conn.run(sshd.install_script(), stdin=b"PasswordAuthentication no\nNoSuchKeyword yes\n",
                          become_user="root")
        assert result.rc == 3 and "sshd -t rejected" in result.stderr, result.stdout + result.stderr
        assert conn.run(f"cat {sshd.DROPIN}", become_user="root").stdout == before
        assert "NoSuchKeyword" not in conn.run("cat /etc/ssh/sshd_config.d/*", become_user="root").stdout
    finally:
        conn.close()
    fresh = deploy_connection(project, deploy_lab.host("fresh1").address)  # the host still takes a new login
    try:
        assert fresh.run("sshd -T | grep -c '^passwordauthentication no'", become_user="root").stdout.strip() == "1"
    finally:
        fresh.close()


def test_firewall_that_cuts_ssh_is_reverted_by_the_timer(deploy_lab: LabHandle, project: Path,
                                                         onboarded: subprocess.CompletedProcess[str]) -> None:
    assert onboarded.returncode == 0
    rules = project / "cut.nft"
    rules.write_text("table inet provision\ndelete table inet provision\ntable inet provision {\n"
                     "    chain input {\n        type filter hook input priority filter; policy drop;\n"
                     '        iif "lo" accept\n    }\n}\n')
    started = time.monotonic()
    result = onboard(project, deploy_lab.host("fresh1").address, "--no-deploy", "--firewall-rules", str(rules),
                     "--revert-after", "12")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "revert timer restored the previous one" in result.stderr or "revert timer fired" in result.stderr
    assert time.monotonic() - started < 90
    conn = deploy_connection(project, deploy_lab.host("fresh1").address)
    try:
        assert "tcp dport { 22, 80, 443 } accept" in conn.run("nft list table inet provision",
                                                               become_user="root").stdout
        assert conn.run("cat /var/lib/provision/firewall/status", become_user="root").stdout.strip() == "reverted"
    finally:
        conn.close()
