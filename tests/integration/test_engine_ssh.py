"""The engine over a real sshd: connections, become, check mode, idempotency, host keys, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TEST_USER, SshServer

pytestmark = pytest.mark.integration


def provision(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def recap(output: str) -> dict:
    return next(e for e in events(output) if e["event"] == "recap")["hosts"]


def test_ping_answers(sshd: SshServer, tmp_path: Path) -> None:
    sshd.inventory(tmp_path / "inventory.yml", hosts=2)
    result = provision("ping", "all", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tasks = [e for e in events(result.stdout) if e["event"] == "task"]
    assert {(t["host"], t["status"]) for t in tasks} == {("node1", "ok"), ("node2", "ok")}
    # A task without a loop has no item (not the engine's internal placeholder).
    assert {(t["item"], t["label"]) for t in tasks} == {(None, None)}


def test_run_prints_command_output_per_host(sshd: SshServer, tmp_path: Path) -> None:
    sshd.inventory(tmp_path / "inventory.yml")
    result = provision("run", "all", "--", "echo", "hello-$(id -un)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hello-root" in result.stdout


def test_become_to_another_user_and_from_non_root(sshd: SshServer, tmp_path: Path) -> None:
    sshd.inventory(tmp_path / "inventory.yml")
    result = provision("run", "all", "--become-user", "nobody", "--", "id", "-un", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nobody" in result.stdout
    sshd.inventory(tmp_path / "inventory.yml", user=TEST_USER)
    result = provision("run", "all", "-b", "--", "id", "-un", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "root" in result.stdout


SITE = """\
- hosts: all
  gather_facts: true
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: tree
      file: {path: "{{ root }}/etc", state: directory, mode: "0755"}
    - name: config from a template
      template: {src: app.conf.j2, dest: "{{ root }}/etc/app.conf", mode: "0640"}
      notify: note reload
    - name: a line in a file
      lineinfile: {path: "{{ root }}/etc/app.ini", line: "port={{ port }}", regexp: "^port=", create: true}
    - name: static content
      copy: {dest: "{{ root }}/motd", content: "hello {{ facts.os_id }}\\n"}
    - name: guarded command
      command:
        cmd: "touch {{ root }}/built"
        creates: "{{ root }}/built"
  handlers:
    - name: note reload
      shell: "echo reloaded >> {{ root }}/reloads"
"""


def tree_listing(path: Path) -> str:
    result = subprocess.run(["find", str(path), "-printf", "%p %m %s %T@\\n"], capture_output=True, text=True)
    return "\n".join(sorted(result.stdout.splitlines()))


def make_project(sshd: SshServer, tmp_path: Path, *, hosts: int = 2) -> Path:
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True)
    (project / "templates" / "app.conf.j2").write_text("name = {{ inventory_hostname }}\nport = {{ port }}\n")
    (project / "site.yml").write_text(SITE)
    work = tmp_path / "hosts"
    work.mkdir()
    sshd.inventory(project / "inventory.yml", hosts=hosts, extra=f"    work: {work}\n    port: 8000\n")
    return project


def test_check_then_apply_then_converged(sshd: SshServer, tmp_path: Path) -> None:
    project = make_project(sshd, tmp_path)
    work = tmp_path / "hosts"
    before = tree_listing(work)
    check = provision("playbook", "site.yml", "--check", "--diff", "--json", cwd=project)
    assert check.returncode == 0, check.stderr
    assert tree_listing(work) == before, "check mode changed the target tree"
    changed = [e for e in events(check.stdout) if e["event"] == "task" and e["status"] == "changed"]
    assert {e["task"] for e in changed} >= {"tree", "config from a template", "a line in a file", "static content"}
    assert any("+port=8000" in (e["diff"] or "") for e in changed)

    first = provision("playbook", "site.yml", "--json", cwd=project)
    assert first.returncode == 0, first.stderr
    assert all(stats["changed"] >= 5 for stats in recap(first.stdout).values())
    assert (work / "node1" / "etc" / "app.conf").read_text() == "name = node1\nport = 8000\n"
    assert oct((work / "node1" / "etc" / "app.conf").stat().st_mode & 0o777) == "0o640"
    assert (work / "node2" / "reloads").read_text() == "reloaded\n"

    second = provision("playbook", "site.yml", "--json", cwd=project)
    assert second.returncode == 0, second.stderr
    assert {h: s["changed"] for h, s in recap(second.stdout).items()} == {"node1": 0, "node2": 0}
    assert (work / "node2" / "reloads").read_text() == "reloaded\n", "handler ran without a change"

    # A variable changes: exactly the tasks that use it report a change, in check mode, and nothing moves.
    before = tree_listing(work)
    check = provision("playbook", "site.yml", "--check", "--json", "-e", "port=9000", cwd=project)
    assert tree_listing(work) == before
    changed = {(e["host"], e["task"]) for e in events(check.stdout) if e["event"] == "task"
               and e["status"] == "changed"}
    assert changed == {(h, t) for h in ("node1", "node2")
                       for t in ("config from a template", "a line in a file")}


def test_converged_run_uses_few_sessions(sshd: SshServer, tmp_path: Path) -> None:
    project = make_project(sshd, tmp_path, hosts=1)
    assert provision("playbook", "site.yml", cwd=project).returncode == 0
    before = sshd.sessions()
    assert provision("playbook", "site.yml", cwd=project).returncode == 0
    # facts with the first checks, then the checks from the task that reads a fact on: never a
    # channel per task.
    assert sshd.sessions() - before == 2


def test_checks_that_need_no_fact_travel_with_the_facts(sshd: SshServer, tmp_path: Path) -> None:
    project = make_project(sshd, tmp_path, hosts=1)
    (project / "site.yml").write_text(SITE.replace("{{ facts.os_id }}", "debian"))
    assert provision("playbook", "site.yml", cwd=project).returncode == 0
    before = sshd.sessions()
    second = provision("playbook", "site.yml", "--json", cwd=project)
    assert second.returncode == 0, second.stderr
    assert {h: s["changed"] for h, s in recap(second.stdout).items()} == {"node1": 0}
    # One session: the facts and every task's check in one script.
    assert sshd.sessions() - before == 1


def test_unknown_and_changed_host_keys_are_refused(sshd: SshServer, tmp_path: Path) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.yml")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    text = inventory.read_text().replace(str(sshd.known_hosts), str(empty))
    inventory.write_text(text)
    result = provision("ping", "all", cwd=tmp_path)
    assert result.returncode == 3
    output = " ".join((result.stdout + result.stderr).split())
    assert "not in known_hosts" in output and "SHA256:" in output

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key_data = other.with_suffix(".pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_data}\n")
    inventory.write_text(text.replace(str(empty), str(wrong)))
    result = provision("ping", "all", cwd=tmp_path)
    assert result.returncode == 3
    output = " ".join((result.stdout + result.stderr).split())
    assert "DIFFERENT host key" in output and "ssh-keygen -R" in output


def test_ssh_config_proxyjump_reaches_the_host_through_a_gateway(sshd: SshServer, tmp_path: Path) -> None:
    """An ssh_config ProxyJump is honoured: both hops are checked against known_hosts."""
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {sshd.key}\n"
        f"  UserKnownHostsFile {sshd.known_hosts}\n"
        f"Host behind\n  HostName 127.0.0.1\n  ProxyJump jump\n"
    )
    inventory = sshd.inventory(tmp_path / "inventory.yml")
    inventory.write_text(inventory.read_text().replace("ssh_host: 127.0.0.1", "ssh_host: behind"))
    logins = sshd.log.read_text(errors="replace").count("Accepted publickey")
    result = provision("run", "all", "--ssh-config", str(config), "--", "echo", "via-$(id -un)", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "via-root" in result.stdout
    # Two logins: the jump hop, then the host through the jump hop's forwarded channel.
    assert sshd.log.read_text(errors="replace").count("Accepted publickey") - logins == 2


def test_unreachable_host_is_reported_and_others_finish(sshd: SshServer, tmp_path: Path) -> None:
    from .conftest import free_port

    inventory = sshd.inventory(tmp_path / "inventory.yml", hosts=1)
    dead = f"    node1:\n    dead:\n      ssh_port: {free_port()}\n"
    inventory.write_text(inventory.read_text().replace("    node1:\n", dead))
    result = provision("run", "all", "--json", "--", "echo", "alive", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    stats = recap(result.stdout)
    assert stats["dead"]["unreachable"] == 1 and stats["node1"]["ok"] == 1
    assert any(e["event"] == "host_unreachable" and e["host"] == "dead" for e in events(result.stdout))


def test_secrets_never_reach_output_or_ps(sshd: SshServer, tmp_path: Path) -> None:
    secret = "s3cr3t-Hunter-2-xyzzy"
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  vars:
    db_password: {secret}
  tasks:
    - name: use the secret
      shell: "sleep 2; echo {{{{ db_password }}}} > {tmp_path}/pw; echo done {{{{ db_password }}}}"
""")
    sshd.inventory(tmp_path / "inventory.yml")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml", "--json", "-vv"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_in_ps = False
    for _ in range(30):
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        seen_in_ps = seen_in_ps or secret in listing
        if proc.poll() is not None:
            break
        subprocess.run(["sleep", "0.1"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (tmp_path / "pw").read_text().strip() == secret
    assert secret not in out and secret not in err
    assert not seen_in_ps, "the secret was visible in the process table"


def test_ctrl_c_mid_upload_leaves_no_partial_file(sshd: SshServer, tmp_path: Path) -> None:
    import os
    import signal
    import time

    project = tmp_path / "project"
    (project / "files").mkdir(parents=True)
    (project / "files" / "big.bin").write_bytes(os.urandom(1024 * 1024) * 256)
    target = tmp_path / "target"
    target.mkdir()
    (project / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: a big upload
      copy: {{src: big.bin, dest: {target}/big.bin}}
""")
    sshd.inventory(project / "inventory.yml")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml", "--json"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".big.bin.provision-") for p in target.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert next(e for e in events(out) if e["event"] == "recap")["interrupted"] is True
    deadline = time.monotonic() + 30
    while list(target.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the host side notices the cut and removes its temp file
    assert list(target.iterdir()) == [], "a partial or temp file was left behind"
