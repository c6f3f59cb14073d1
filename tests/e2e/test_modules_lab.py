"""The modules that change a whole system, on a throwaway lab host: packages, service, user, group, cron,
supervisor, become with a sudo password. Check mode first (nothing changes), then for real, then
converged (0 changed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabHandle, claimed_lab

pytestmark = pytest.mark.e2e

PLAYBOOK = """\
- hosts: lab
  become: true
  tasks:
    - name: a package through the lab proxy
      packages: {name: [jq, cron], update_cache: true, cache_valid_time: 3600}
    - name: a group
      group: {name: deployers}
    - name: a user with a key
      user:
        name: deployer
        group: deployers
        shell: /bin/bash
        authorized_keys: ["{{ pubkey }}"]
    - name: cron of that user
      cron: {name: nightly, user: deployer, minute: "30", hour: "2", job: "/usr/bin/true"}
    - name: supervisor installed
      packages: {name: [supervisor]}
    - name: supervisor running (no systemd here)
      service: {name: supervisor, state: started, enabled: true}
    - name: a program for supervisor
      copy:
        dest: /etc/supervisor/conf.d/sleeper.conf
        content: "[program:sleeper]\\ncommand=/bin/sleep 3600\\nautostart=true\\n"
      notify: reread supervisor
    - meta: flush_handlers
    - name: the program runs
      supervisor: {name: sleeper, state: started}
  handlers:
    - name: reread supervisor
      supervisor: {name: sleeper, state: present, reread: true}
"""


@pytest.fixture(scope="module")
def host() -> Iterator[LabHandle]:
    with claimed_lab("modules", 1) as handle:
        yield handle


def provision(project: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run([sys.executable, "-m", "provision", args[0], "--json", *args[1:]], cwd=project,
                            capture_output=True, text=True, timeout=900)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, events, result.stderr


def changed(events: list[dict[str, Any]]) -> int:
    return sum(s["changed"] for s in next(e for e in events if e["event"] == "recap")["hosts"].values())


def test_system_modules_check_apply_converge(host: LabHandle, tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    pubkey = Path(str(host.key) + ".pub").read_text().strip()
    (tmp_path / "inventory.yml").write_text(host.inventory.read_text())
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(json.dumps({"pubkey": pubkey}))
    code, events, err = provision(tmp_path, "playbook", "site.yml", "--check")
    assert code == 0, err
    assert host.ssh("lab1", "id deployer", check=False).returncode != 0, "check mode created the user"

    code, events, err = provision(tmp_path, "playbook", "site.yml")
    failed = [(e["task"], e["msg"]) for e in events if e["event"] == "task" and e["status"] == "failed"]
    assert code == 0, failed or err
    assert host.ssh("lab1", "jq --version").returncode == 0
    assert host.ssh("lab1", "true", user="deployer").returncode == 0
    assert "/usr/bin/true" in host.ssh("lab1", "crontab -u deployer -l").stdout
    assert "RUNNING" in host.ssh("lab1", "supervisorctl status sleeper", check=False).stdout

    code, events, err = provision(tmp_path, "playbook", "site.yml")
    assert code == 0, err
    assert changed(events) == 0, [(e["task"], e["msg"]) for e in events
                                  if e["event"] == "task" and e["status"] == "changed"]


def test_become_with_a_sudo_password(host: LabHandle, tmp_path: Path) -> None:
    password = host.ops_password_file.read_text().strip()
    (tmp_path / "inventory.yml").write_text(host.inventory.read_text())
    (tmp_path / "secrets.yml").write_text(json.dumps({"ssh_user": "ops", "become_password": password}))
    code, events, err = provision(tmp_path, "run", "lab", "-b", "-e", "@secrets.yml", "--", "id", "-un")
    assert code == 0, err
    assert any(e.get("event") == "task" and e["status"] == "changed" for e in events)
    assert password not in json.dumps(events) + err
    code, events, err = provision(tmp_path, "run", "lab", "-b", "-e", "ssh_user=ops", "-e",
                                  "become_password=wrong-one-123", "--", "id")
    assert code != 0
    assert "wrong-one-123" not in json.dumps(events) + err
