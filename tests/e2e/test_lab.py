"""The lab itself: real SSH hosts in namespaces, isolated, reaching packages only through the lab proxy.

Most tests use a lab of their own (``claimed_lab``: its own state dir and /24) so the session's pristine hosts
stay untouched; the last test brings it down and checks that nothing is left.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from provision.errors import LabError
from provision.inventory import Inventory
from provision.lab import Lab, LabSettings
from provision.lab.launch import init_pid
from provision.lab.state import ProcessRef, load_state, save_state
from tests.e2e.conftest import LabHandle, claimed_lab

pytestmark = pytest.mark.e2e

PASSWORD_HOST = "fresh1"
_KTHREAD = 0x00200000  # PF_KTHREAD in /proc/PID/stat flags


@dataclass(frozen=True)
class MachineSnapshot:
    """What a lab could leave behind: links, namespaces, mounts and processes."""

    links: frozenset[str]
    netns: frozenset[str]
    mounts: frozenset[str]
    processes: frozenset[tuple[int, int]]


def snapshot() -> MachineSnapshot:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return MachineSnapshot(
        links=frozenset(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()),
        netns=frozenset(netns.split()),
        mounts=frozenset(Path("/proc/mounts").read_text().splitlines()),
        processes=frozenset(_user_processes()),
    )


def _user_processes() -> Iterator[tuple[int, int]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if not int(fields[6]) & _KTHREAD:
                yield int(entry.name), int(fields[19])


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True  # gone meanwhile


def _ours(pid: int, state_dir: Path) -> bool:
    """True if ``pid`` descends from this test process or names this lab's state dir (as its unshare does)."""
    try:
        if str(state_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        current = pid
        while current > 1:
            if current == os.getpid():
                return True
            current = int(Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False
    return False


def _describe(pid: int) -> str:
    try:
        stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return f"{pid} ({Path(f'/proc/{pid}/comm').read_text().strip()}, state {stat_fields[0]}): {cmdline[:120]}"
    except (FileNotFoundError, ProcessLookupError):
        return f"{pid} (gone)"


def ip(handle: LabHandle, last: int) -> str:
    """Address ``last`` of the lab's /24."""
    return str(handle.lab.settings.subnet.network_address + last)


@dataclass
class OwnLab:
    handle: LabHandle
    before: MachineSnapshot


@pytest.fixture(scope="module")
def own(lab: LabHandle) -> Iterator[OwnLab]:
    """A lab for this module: lab1, lab2 (key login) and fresh1 (root password only)."""
    del lab  # the session lab is up first, so the snapshot below already includes it
    before = snapshot()
    with claimed_lab("test_lab", 2, password_hosts=[PASSWORD_HOST]) as handle:
        yield OwnLab(handle, before)


def test_session_fixture_hosts_answer(lab: LabHandle) -> None:
    names = [h.name for h in lab.hosts]
    assert names == [f"lab{n}" for n in range(1, len(names) + 1)]
    for host in lab.hosts:
        assert lab.ssh(host.name, "cat /etc/hostname").stdout.strip() == host.name


def test_up_writes_inventory_ssh_config_known_hosts_and_hosts_tsv(own: OwnLab) -> None:
    handle = own.handle
    inventory = Inventory.load(handle.inventory)
    lab_hosts = inventory.select("lab")
    assert [h.name for h in lab_hosts] == ["lab1", "lab2"]
    spec = lab_hosts[0].connection()
    assert (spec.host, spec.port, spec.user) == (ip(handle, 11), 22, "root")
    assert (spec.private_key_file, spec.known_hosts_file) == (str(handle.key), str(handle.known_hosts))
    assert [h.name for h in inventory.select("lab_password")] == [PASSWORD_HOST]
    tsv = (handle.state_dir / "hosts.tsv").read_text().splitlines()
    assert tsv == [f"lab1\t{ip(handle, 11)}\t22", f"lab2\t{ip(handle, 12)}\t22",
                   f"{PASSWORD_HOST}\t{ip(handle, 200)}\t22"]
    known = handle.known_hosts.read_text()
    assert known.count(f"lab1,{ip(handle, 11)} ") == 2 and f"{PASSWORD_HOST},{ip(handle, 200)} ssh-ed25519" in known
    for secret in (handle.ops_password_file, handle.host(PASSWORD_HOST).root_password_file, handle.key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_plain_ssh_with_strict_host_keys(own: OwnLab) -> None:
    handle = own.handle
    for name in ("lab1", "lab2"):
        before = handle.sessions(name)
        assert handle.ssh(name, "hostname").stdout.strip() == name
        assert handle.sessions(name) == before + 1
    refused = handle.ssh("lab1", "true", check=False, options=["-o", "UserKnownHostsFile=/dev/null"])
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


def _client(handle: LabHandle) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(handle.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _run(client: paramiko.SSHClient, command: str, stdin_text: str = "") -> tuple[int, str]:
    stdin, stdout, _ = client.exec_command(command, timeout=30)
    if stdin_text:
        stdin.write(stdin_text)
        stdin.flush()
    stdin.channel.shutdown_write()
    if not stdout.channel.status_event.wait(30):
        raise AssertionError(f"{command!r} did not finish within 30 s")
    return stdout.channel.recv_exit_status(), stdout.read().decode()


def test_paramiko_reject_policy_for_every_user(own: OwnLab) -> None:
    handle = own.handle
    ops_password = handle.ops_password_file.read_text().strip()
    for user, command, stdin_text, expected in (
        ("root", "id -un", "", "root"),
        ("admin", "sudo -n id -un", "", "root"),
        ("ops", "sudo -S -p '' id -un", ops_password + "\n", "root"),
    ):
        client = _client(handle)
        try:
            client.connect(ip(handle, 12), username=user, key_filename=str(handle.key), look_for_keys=False,
                           allow_agent=False, timeout=10)
            assert _run(client, command, stdin_text) == (0, expected + "\n")
        finally:
            client.close()
    client = _client(handle)
    try:
        client.connect(ip(handle, 12), username="ops", key_filename=str(handle.key), look_for_keys=False,
                       allow_agent=False, timeout=10)
        assert _run(client, "sudo -n true")[0] != 0  # ops needs its password
    finally:
        client.close()
    stranger = paramiko.SSHClient()
    stranger.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        stranger.connect(ip(handle, 11), username="root", key_filename=str(handle.key), look_for_keys=False,
                         allow_agent=False, timeout=10)


def test_password_host_takes_only_a_password_for_root(own: OwnLab) -> None:
    handle = own.handle
    host = handle.host(PASSWORD_HOST)
    password = host.root_password_file.read_text().strip()
    for written in (handle.inventory, handle.ssh_config, handle.known_hosts, handle.lab.settings.state_file,
                    host.sshd_log):
        assert password not in written.read_text()
    client = _client(handle)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            client.connect(host.address, username="root", key_filename=str(handle.key), look_for_keys=False,
                           allow_agent=False, timeout=10)
    finally:
        client.close()
    client = _client(handle)
    try:
        client.connect(host.address, username="root", password=password, look_for_keys=False, allow_agent=False,
                       timeout=10)
        assert _run(client, "hostname") == (0, f"{PASSWORD_HOST}\n")
        # As on a cloud image: cloud-init's drop-in turns password login on, and sshd keeps that first value.
        assert _run(client, "cat /etc/ssh/sshd_config.d/50-cloud-init.conf") == (0, "PasswordAuthentication yes\n")
        assert "passwordauthentication yes" in _run(client, "sshd -T")[1].splitlines()
    finally:
        client.close()


def test_sshd_restart_reload_and_stop_keep_the_host(own: OwnLab) -> None:
    handle = own.handle
    handle.ssh("lab1", "service ssh restart && service ssh reload && service ssh stop", timeout=30)
    deadline = time.monotonic() + 10
    while handle.ssh("lab1", "true", check=False, timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "lab1 did not answer after `service ssh stop`"
        time.sleep(0.2)
    before = handle.sessions("lab1")
    assert handle.ssh("lab1", "hostname").stdout == "lab1\n"
    assert handle.sessions("lab1") == before + 1  # still logged outside the host


def test_hosts_are_isolated(own: OwnLab) -> None:
    handle = own.handle
    handle.ssh("lab1", "echo mine > /root/only-on-lab1")
    assert handle.ssh("lab2", "test -e /root/only-on-lab1", check=False).returncode == 1
    for name in ("lab1", "lab2"):
        out = handle.ssh(name, "cat /etc/hostname; cat /proc/1/comm; ip route; wc -l < /proc/mounts; "
                               "getent hosts lab1 lab2").stdout.splitlines()
        assert out[0] == name
        assert out[1] == "tini"
        assert not any(line.startswith("default") for line in out)  # nothing routed beyond the /24
        assert int(next(line for line in out if line.strip().isdigit())) < 20  # no machine mounts visible
        assert f"{ip(handle, 11)}   lab1" in out and f"{ip(handle, 12)}   lab2" in out
    assert handle.ssh("lab1", "ip route get 192.0.2.1", check=False).returncode != 0


def test_apt_through_the_proxy_and_two_nginx_on_port_80(own: OwnLab) -> None:
    handle = own.handle
    install = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx"
    # The slot's proxy (its log and cache) outlives one lab: an earlier lab of this /24 may have
    # fetched nginx already. Read only what this test adds to the log.
    log_path = handle.state_dir / "proxy" / "log" / "apt-cacher.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    for name in ("lab1", "lab2"):  # one after the other: the second install must come from the cache
        handle.ssh(name, install)
        handle.ssh(name, f"echo hello from {name} > /var/www/html/index.html && service nginx status")
    for name, address in (("lab1", ip(handle, 11)), ("lab2", ip(handle, 12))):
        page = subprocess.run(["curl", "-s", "--noproxy", "*", "-m", "5", f"http://{address}/"],
                              capture_output=True, text=True, timeout=10, check=True).stdout
        assert page == f"hello from {name}\n"
    assert handle.ssh("lab1", "curl -s -m 5 http://lab2/").stdout == "hello from lab2\n"
    with log_path.open("rb") as log:
        log.seek(start)
        added = log.read().decode(errors="replace")
    nginx_deb = [line.split("|") for line in added.splitlines() if re.search(r"/nginx_[^/]*\.deb$", line)]
    fetched = [f for f in nginx_deb if f[1] == "I"]
    served_to = {f[3] for f in nginx_deb if f[1] == "O"}
    assert len(fetched) <= 1, nginx_deb  # downloaded once at most (none when the slot's cache had it) …
    assert served_to == {ip(handle, 11), ip(handle, 12)}  # … served to both hosts


def test_mariadb_and_redis_run_on_both_hosts_without_systemd(own: OwnLab) -> None:
    handle = own.handle
    setup = (
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server redis-server >/dev/null && "
        "redis-server --port 11000 --daemonize yes --save '' && redis-server --port 13000 --daemonize yes --save ''"
    )
    installs = [subprocess.Popen(["ssh", "-F", str(handle.ssh_config), name, setup], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for name in ("lab1", "lab2")]
    for install in installs:
        output, _ = install.communicate(timeout=240)
        assert install.returncode == 0, output
    check = ("mariadb -N -e 'select @@port, @@hostname'; redis-cli -p 6379 ping; redis-cli -p 11000 ping; "
             "redis-cli -p 13000 ping")
    for name in ("lab1", "lab2"):
        assert handle.ssh(name, check).stdout.split() == ["3306", name, "PONG", "PONG", "PONG"]


def test_pip_through_the_https_passthrough(own: OwnLab) -> None:
    handle = own.handle
    handle.ssh("lab2", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv")
    out = handle.ssh("lab2", "python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q --no-cache-dir six && "
                             "/tmp/venv/bin/python -c 'import six; print(six.__name__)'").stdout
    assert out.strip().endswith("six")


def test_second_up_keeps_running_hosts_and_restarts_a_crashed_one(own: OwnLab) -> None:
    handle = own.handle
    state = load_state(handle.lab.settings.state_file, '')
    holders = {name: record.process for name, record in state.hosts.items()}
    hosts = handle.lab.up(2, password_hosts=[PASSWORD_HOST])
    assert [h.name for h in hosts] == ["lab1", "lab2", PASSWORD_HOST]
    assert {n: r.process for n, r in load_state(handle.lab.settings.state_file, '').hosts.items()} == holders
    crashed = holders["lab2"]
    assert crashed is not None
    pid = init_pid(crashed)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while crashed.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not next(s for s in handle.lab.status().hosts if s.host.name == "lab2").running
    handle.lab.up(2, password_hosts=[PASSWORD_HOST])
    assert handle.ssh("lab2", "cat /var/www/html/index.html").stdout == "hello from lab2\n"  # its layer survived
    assert all(s.running for s in handle.lab.status().hosts)


def test_another_lab_on_the_same_subnet_is_refused_and_cannot_remove_ours(own: OwnLab, tmp_path: Path) -> None:
    handle = own.handle
    settings = handle.lab.settings
    intruder = Lab(LabSettings(state_dir=tmp_path / "other", subnet=settings.subnet), log=lambda _: None)
    with pytest.raises(LabError, match="another lab"):
        intruder.up(1)
    # A stale record naming our bridge, veths and netns (but not our processes or namespace ids) …
    stale = load_state(settings.state_file, "")
    for record in stale.hosts.values():
        record.process = None
        record.netns_id = 1
    stale.proxy = None
    save_state(intruder.settings.state_file, stale)
    intruder.down()
    # … removes nothing of ours.
    assert handle.ssh("lab1", "ping -c 1 -W 2 lab2 >/dev/null && hostname").stdout == "lab1\n"


def test_down_leaves_nothing_behind(own: OwnLab) -> None:
    handle = own.handle
    state = load_state(handle.lab.settings.state_file, '')
    recorded = [r.process for r in state.hosts.values() if r.process] + ([state.proxy] if state.proxy else [])
    handle.lab.down()
    handle.lab.down()  # twice is fine
    after = snapshot()
    # Other labs (other state dirs) may come and go meanwhile: compare what could be this lab's.
    settings = handle.lab.settings
    marks = (f"-{settings.tag}-", str(settings.state_dir), str(settings.base_dir))

    def mine(items: frozenset[str]) -> set[str]:
        return {item for item in items if any(mark in item for mark in marks) or item == settings.bridge
                or item.split()[1:2] == ["/run/netns"]}

    assert mine(after.links) == mine(own.before.links)
    assert mine(after.netns) == mine(own.before.netns)
    assert mine(after.mounts) == mine(own.before.mounts)
    # A zombie holds nothing: this VM's pid 1 does not reap the daemons that re-parent to it.
    leftovers = [_describe(pid) for pid, _ in after.processes - own.before.processes
                 if _ours(pid, settings.state_dir) and not _zombie(pid)]
    assert leftovers == []
    assert not any(isinstance(ref, ProcessRef) and ref.alive() for ref in recorded)
    assert not (handle.state_dir / "hosts").exists()
    assert (handle.lab.settings.base_dir).is_dir()  # the base stays cached
