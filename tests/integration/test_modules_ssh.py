"""Every module that is safe on the test machine itself, through the real sshd and the real runner.

One playbook, run in check mode (nothing may change), for real, then again (0 changed). Modules
that change the system as a whole (packages, services, users, crontabs) run on lab hosts instead
(tests/e2e/test_modules_lab.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TEST_USER, SshServer
from .test_engine_ssh import events, recap, tree_listing

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- hosts: all
  gather_facts: true
  vars:
    root: "{{ work }}"
  tasks:
    - name: a tree owned by the test user
      file: {path: "{{ root }}/{{ item }}", state: directory, owner: "{{ test_user }}", mode: "0755"}
      loop: [etc, repo, app]
    - name: a link
      file: {path: "{{ root }}/current", state: link, src: "{{ root }}/app"}
    - name: copy from files/
      copy: {src: motd.txt, dest: "{{ root }}/etc/motd", mode: "0644", backup: true}
    - name: template with facts
      template: {src: info.j2, dest: "{{ root }}/etc/info", validate: "grep -q os= %s"}
    - name: a line
      lineinfile: {path: "{{ root }}/etc/settings.ini", regexp: "^workers=", line: "workers=4", create: true}
    - name: a guarded command
      command: {cmd: "touch {{ root }}/marker", creates: "{{ root }}/marker"}
    - name: a clone as the test user
      git: {repo: "{{ origin }}", dest: "{{ root }}/repo/checkout", version: v1, remote: upstream}
      become: true
      become_user: "{{ test_user }}"
    - name: a virtualenv as the test user
      venv: {path: "{{ root }}/app/env"}
      become: true
      become_user: "{{ test_user }}"
    - name: fetch the rendered file back
      fetch: {src: "{{ root }}/etc/info", dest: "{{ fetched }}/", flat: true}
    - name: wait for the file
      wait_for: {path: "{{ root }}/etc/info", timeout: 5}
"""


def git(*args: str, cwd: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_modules_over_ssh_check_apply_converge(sshd: SshServer, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "files").mkdir(parents=True)
    (project / "templates").mkdir()
    (project / "files" / "motd.txt").write_text("welcome\n")
    (project / "templates" / "info.j2").write_text("host={{ inventory_hostname }}\nos={{ facts.os_id }}\n")
    (project / "site.yml").write_text(PLAYBOOK)
    work = Path(subprocess.run(["mktemp", "-d", "/tmp/provision-mod-XXXXXX"], capture_output=True, text=True,
                               check=True).stdout.strip())
    work.chmod(0o755)
    origin = work.parent / (work.name + "-origin")
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    (origin / "README").write_text("v1\n")
    git("add", ".", cwd=origin)
    git("commit", "-qm", "v1", cwd=origin)
    git("tag", "v1", cwd=origin)
    # git refuses to read a repository owned by someone else ("dubious ownership").
    subprocess.run(["chown", "-R", TEST_USER, str(origin)], check=True)
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    sshd.inventory(project / "inventory.yml",
                   extra=f"    work: {work}\n    origin: {origin}\n    fetched: {fetched}\n"
                         f"    test_user: {TEST_USER}\n")
    try:
        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "provision", "playbook", "site.yml", "--json", *extra],
                                  cwd=project, capture_output=True, text=True, timeout=300)

        before = tree_listing(work)
        check = run("--check", "--diff")
        assert check.returncode == 0, check.stdout + check.stderr
        assert tree_listing(work) == before

        first = run()
        failed = [e for e in events(first.stdout) if e["event"] == "task" and e["status"] == "failed"]
        assert first.returncode == 0, json.dumps(failed, indent=1) + first.stderr
        assert (work / "etc" / "info").read_text().startswith("host=node1\nos=")
        assert (fetched / "info").read_text() == (work / "etc" / "info").read_text()
        assert (work / "repo" / "checkout" / "README").owner() == TEST_USER
        assert (work / "app" / "env" / "bin" / "python").exists()

        second = run()
        assert second.returncode == 0, second.stderr
        changed = [(e["task"], e["msg"]) for e in events(second.stdout) if e["event"] == "task"
                   and e["status"] == "changed"]
        assert recap(second.stdout)["node1"]["changed"] == 0, changed
    finally:
        subprocess.run(["rm", "-rf", str(work), str(origin)], check=False)
