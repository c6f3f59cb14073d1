"""Faults over a real sshd: a connection cut mid-run, Ctrl-C and a bound in a remote command, a full disk.

Each test cleans up after itself: an extra sshd is killed with every process it forked, a
tmpfs is unmounted, and no remote command may be left running (checked in the process table,
the test sshd being on this machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SSHD, SshServer, _wait_port, free_port

pytestmark = pytest.mark.integration


def provision(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def recap(output: str) -> dict:
    return next(e for e in events(output) if e["event"] == "recap")["hosts"]


def running(token: str) -> list[str]:
    """Command lines in the process table that contain ``token`` (the test sshd runs on this machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if token in line:
                found.append(f"{entry.name} {line}")
    return found


def wait_gone(token: str, seconds: float = 15) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := running(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ExtraSshd:
    """A second sshd with the session server's keys and settings, on its own port, that a test may kill."""

    def __init__(self, base: SshServer) -> None:
        self.port = free_port()
        config = (base.workdir / "sshd_config").read_text()
        workdir = base.workdir / f"extra-{self.port}"
        workdir.mkdir()
        config = config.replace(f"Port {base.port}\n", f"Port {self.port}\n").replace(
            f"PidFile {base.workdir}/sshd.pid", f"PidFile {workdir}/sshd.pid")
        (workdir / "sshd_config").write_text(config)
        self.known_hosts = workdir / "known_hosts"
        host_key = base.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(workdir / "sshd_config")],
                                     stderr=(workdir / "sshd.log").open("wb"))
        _wait_port(self.port, self.proc)

    def kill(self) -> None:
        """SIGKILL the listener and every process it forked: the host's connections drop at once."""
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def extra_sshd(sshd: SshServer) -> Iterator[ExtraSshd]:
    server = ExtraSshd(sshd)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.kill()


def inventory_with(sshd: SshServer, path: Path, extra_hosts: str) -> Path:
    inventory = sshd.inventory(path, hosts=2)
    inventory.write_text(inventory.read_text().replace("  vars:\n", extra_hosts + "  vars:\n", 1))
    return inventory


def test_connection_cut_mid_run_marks_that_host_unreachable(sshd: SshServer, extra_sshd: ExtraSshd,
                                                            tmp_path: Path) -> None:
    token = f"pv-cut-{uuid.uuid4().hex[:8]}"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name in ("node1", "node2", "victim"):
        (out_dir / name).mkdir()
        (out_dir / name / "app.conf").write_text("old\n")
    victim = f"    victim:\n      ssh_port: {extra_sshd.port}\n      ssh_known_hosts_file: {extra_sshd.known_hosts}\n"
    inventory_with(sshd, tmp_path / "inventory.yml", victim)
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: a slow step
      shell: "python3 -c 'import time; time.sleep(8)' {token}"
    - name: the config
      copy: {{content: "new\\n", dest: "{out_dir}/{{{{ inventory_hostname }}}}/app.conf"}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len([line for line in running(token) if "python3 -c" in line]) < 3:  # all in the slow step
            assert proc.poll() is None and time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.05)
        extra_sshd.kill()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    stats = recap(out)
    assert stats["victim"]["unreachable"] == 1 and stats["victim"]["failed"] == 0
    assert stats["node1"]["changed"] == 2 and stats["node2"]["changed"] == 2
    lost = [e for e in events(out) if e["event"] == "host_unreachable"]
    assert [e["host"] for e in lost] == ["victim"]
    assert "\n" not in lost[0]["msg"] and "connection was lost" in lost[0]["msg"]
    assert (out_dir / "node1" / "app.conf").read_text() == "new\n"
    assert (out_dir / "victim" / "app.conf").read_text() == "old\n"  # never touched, never half-written
    assert [p.name for p in (out_dir / "victim").iterdir()] == ["app.conf"]
    assert "Traceback" not in err and "paramiko" not in err


def test_host_down_before_the_run_is_one_line(sshd: SshServer, tmp_path: Path) -> None:
    inventory_with(sshd, tmp_path / "inventory.yml", f"    down:\n      ssh_port: {free_port()}\n")
    result = provision("ping", "all", "--json", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    stats = recap(result.stdout)
    assert stats["down"]["unreachable"] == 1 and stats["node1"]["ok"] == 1 and stats["node2"]["ok"] == 1
    (message,) = [e["msg"] for e in events(result.stdout) if e["event"] == "host_unreachable"]
    assert "connection refused" in message and "\n" not in message
    assert "Traceback" not in result.stderr


def test_port_that_accepts_and_closes_is_one_clean_line(sshd: SshServer, tmp_path: Path) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        inventory_with(sshd, tmp_path / "inventory.yml", f"    closer:\n      ssh_port: {port}\n")
        result = provision("ping", "all", "--json", cwd=tmp_path)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert result.returncode == 3
    (message,) = [e["msg"] for e in events(result.stdout) if e["event"] == "host_unreachable"]
    assert "closed before the SSH banner" in message
    assert "Traceback" not in result.stderr
    assert "Exception (client)" not in result.stderr


def test_unknown_and_changed_host_keys_are_one_line_without_noise(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key_data = other.with_suffix(".pub").read_text().split()[:2]
    (tmp_path / "wrong").write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_data}\n")
    (tmp_path / "empty").write_text("")
    for known, says in (("empty", "is not in known_hosts"), ("wrong", "DIFFERENT host key")):
        inventory = sshd.inventory(tmp_path / "inventory.yml")
        inventory.write_text(inventory.read_text().replace(str(sshd.known_hosts), str(tmp_path / known)))
        result = provision("ping", "all", "--json", cwd=tmp_path)
        assert result.returncode == 3
        (message,) = [e["msg"] for e in events(result.stdout) if e["event"] == "host_unreachable"]
        assert says in message and "SHA256:" in message and "\n" not in message
        assert "Socket exception" not in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_in_a_handler_exits_130_and_ends_it(sshd: SshServer, tmp_path: Path) -> None:
    token = f"pv-hdl-{uuid.uuid4().hex[:8]}"
    sshd.inventory(tmp_path / "inventory.yml")
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: a change
      command: "true"
      notify: slow restart
  handlers:
    - name: slow restart
      shell: "python3 -c 'import time; time.sleep(60)' {token}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not [line for line in running(token) if "python3 -c" in line]:
            assert proc.poll() is None and time.monotonic() < deadline, "the handler never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert wait_gone(token) == [], "the handler's command was left running on the host"


def test_ctrl_c_in_a_remote_command_exits_130_and_ends_it(sshd: SshServer, tmp_path: Path) -> None:
    token = f"pv-int-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "finished"
    sshd.inventory(tmp_path / "inventory.yml", hosts=2)
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: a long remote command
      shell: "python3 -c 'import time; time.sleep(60)' {token}; touch {marker}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len([line for line in running(token) if "python3 -c" in line]) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the remote command never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert next(e for e in events(out) if e["event"] == "recap")["interrupted"] is True
    assert wait_gone(token) == [], "the remote command was left running on the host"
    assert not marker.exists()


def test_a_command_past_its_timeout_is_ended_with_a_clear_error(sshd: SshServer, tmp_path: Path) -> None:
    token = f"pv-to-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "finished"
    sshd.inventory(tmp_path / "inventory.yml")
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: never returns
      shell: "python3 -c 'import time; time.sleep(300)' {token}; touch {marker}"
      become_user: nobody
      become: true
      timeout: 2
    - name: after it
      command: echo next
""")
    started = time.monotonic()
    result = provision("playbook", "site.yml", "--json", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 45
    task = next(e for e in events(result.stdout) if e["event"] == "task" and e["task"] == "never returns")
    assert task["status"] == "failed" and task["host"] == "node1"
    assert "timed out" in task["msg"] and "timeout: 2" in task["msg"]
    assert wait_gone(token) == [], "the remote process group outlived its timeout"
    assert not marker.exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_a_template_write_keeps_the_old_file(sshd: SshServer, tmp_path: Path,
                                                              tiny_disk: Path) -> None:
    target = tiny_disk / "app.conf"
    target.write_text("old config\n")
    filler = tiny_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=1000"], capture_output=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.conf.j2").write_text("{% for i in range(20000) %}line {{ i }}\n{% endfor %}")
    sshd.inventory(tmp_path / "inventory.yml")
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: render the config
      template: {{src: app.conf.j2, dest: {target}}}
""")
    result = provision("playbook", "site.yml", "--json", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    task = next(e for e in events(result.stdout) if e["event"] == "task")
    assert task["status"] == "failed" and "No space left on device" in task["msg"], task["msg"]
    assert target.read_text() == "old config\n"
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["app.conf", "filler"], "a temp file was left"
    assert "Traceback" not in result.stderr
