"""Batched changes leave the same end state and report the same per-task results as unbatched ones.

Every playbook runs twice over the real sshd on fresh trees: once as it is (changes batched) and
once with batching off (``--no-batch``, or ``PROVISION_NO_BATCH=1``); the trees (types, modes,
contents) and the task events (order, status, msg, item) must be equal, and the batched run
must open fewer channels wherever something batched.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SshServer

pytestmark = pytest.mark.integration


def provision(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})})


def snapshot(root: Path) -> dict[str, tuple[str, str, str]]:
    """Every path under ``root``: its type, mode and content digest (or link target)."""
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(root.rglob("*")):
        mode = oct(path.lstat().st_mode & 0o7777)
        if path.is_symlink():
            found[str(path.relative_to(root))] = ("link", mode, os.readlink(path))
        elif path.is_dir():
            found[str(path.relative_to(root))] = ("dir", mode, "")
        else:
            found[str(path.relative_to(root))] = ("file", mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def task_results(output: str, root: Path) -> list[tuple[str, str, str, str | None, bool]]:
    """(host, task, status, msg with the tree's root masked, item) of every task event, in order."""
    rows = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["event"] == "task":
            msg = (event.get("msg") or "").replace(str(root), "ROOT")
            rows.append((event["host"], event["task"], event["status"], msg, event.get("item"),
                         bool(event.get("ignored"))))
    return rows


def recap(output: str) -> dict[str, dict[str, int]]:
    for line in output.splitlines():
        if line.startswith("{") and json.loads(line)["event"] == "recap":
            return json.loads(line)["hosts"]
    raise AssertionError("no recap")


class Outcome:
    def __init__(self, result: subprocess.CompletedProcess[str], root: Path, sessions: int) -> None:
        self.rc = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.tasks = task_results(result.stdout, root)
        self.recap = {host: {k: v for k, v in stats.items() if k != "duration"}
                      for host, stats in recap(result.stdout).items()}
        self.state = snapshot(root)
        self.sessions = sessions


def run_once(sshd: SshServer, base: Path, playbook: str, *, batched: bool,
             env: dict[str, str] | None = None) -> Outcome:
    project = base / ("batched" if batched else "unbatched")
    root = project / "hosts"
    root.mkdir(parents=True)
    (project / "templates").mkdir()
    (project / "templates" / "app.conf.j2").write_text("name = {{ inventory_hostname }}\nn = {{ item }}\n")
    (project / "site.yml").write_text(playbook)
    sshd.inventory(project / "inventory.yml", hosts=1, extra=f"    work: {root}\n    secret_word: s3cr3t-Wd9\n")
    before = sshd.sessions()
    args = ["playbook", "site.yml", "--json"] + ([] if batched else ["--no-batch"])
    result = provision(*args, cwd=project, env=env)
    return Outcome(result, root, sshd.sessions() - before)


def both(sshd: SshServer, tmp_path: Path, playbook: str) -> tuple[Outcome, Outcome]:
    batched = run_once(sshd, tmp_path, playbook, batched=True)
    unbatched = run_once(sshd, tmp_path, playbook, batched=False)
    assert batched.tasks == unbatched.tasks
    assert batched.recap == unbatched.recap
    assert batched.state == unbatched.state
    assert batched.rc == unbatched.rc
    return batched, unbatched


CONVERGE = """\
- hosts: all
  gather_facts: true
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: dirs
      file: {path: "{{ root }}/d{{ item }}", state: directory, mode: "0750"}
      loop: [1, 2, 3]
    - name: files from a template
      template: {src: app.conf.j2, dest: "{{ root }}/d{{ item }}/app.conf", mode: "0640"}
      loop: [1, 2, 3]
      notify: note reload
    - name: lines in one file
      lineinfile: {path: "{{ root }}/app.ini", regexp: "^k{{ item }}=", line: "k{{ item }}=v{{ item }}",
                   create: true, mode: "0644"}
      loop: [1, 2, 3]
    - name: guarded commands
      shell: {cmd: "echo built-{{ item }} > {{ root }}/marker{{ item }}", creates: "{{ root }}/marker{{ item }}"}
      loop: [1, 2]
    - name: modes of what the commands made
      file: {path: "{{ root }}/marker{{ item }}", mode: "0600"}
      loop: [1, 2]
    - name: static content
      copy: {dest: "{{ root }}/motd", content: "hello\\n", mode: "0644"}
  handlers:
    - name: note reload
      shell: "echo reloaded >> {{ root }}/reloads"
"""


def test_converge_batched_equals_unbatched_cold_and_warm(sshd: SshServer, tmp_path: Path) -> None:
    batched, unbatched = both(sshd, tmp_path, CONVERGE)
    assert batched.rc == 0, batched.stderr
    assert batched.recap["node1"]["changed"] == 7  # tasks, handler included
    assert (tmp_path / "batched" / "hosts" / "node1" / "reloads").read_text() == "reloaded\n"
    assert ((tmp_path / "batched" / "hosts" / "node1" / "app.ini").read_text()
            == "k1=v1\nk2=v2\nk3=v3\n")
    assert batched.sessions < unbatched.sessions, (batched.sessions, unbatched.sessions)
    print("sessions batched/unbatched:", batched.sessions, unbatched.sessions)
    # Warm: the same trees again, converged, with the same results and no change.
    again = provision("playbook", "site.yml", "--json", cwd=tmp_path / "batched")
    assert again.returncode == 0 and recap(again.stdout)["node1"]["changed"] == 0, again.stderr


FAILURE = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: first dirs
      file: {path: "{{ root }}/a{{ item }}", state: directory}
      loop: [1, 2]
    - name: items of which the second fails
      shell: "test {{ item }} != 2 && echo {{ item }} > {{ root }}/a1/item{{ item }}"
      loop: [1, 2, 3]
    - name: never reached
      file: {path: "{{ root }}/late", state: directory}
    - name: nor this
      copy: {dest: "{{ root }}/late.txt", content: "late\\n"}
"""


def test_a_failure_in_the_middle_stops_there(sshd: SshServer, tmp_path: Path) -> None:
    batched, _ = both(sshd, tmp_path, FAILURE)
    assert batched.rc == 2
    statuses = [(task, status, item) for _, task, status, _, item, _ in batched.tasks]
    assert statuses == [("first dirs", "changed", 1), ("first dirs", "changed", 2),
                        ("items of which the second fails", "changed", 1),
                        ("items of which the second fails", "failed", 2),
                        ("items of which the second fails", "changed", 3)]
    assert "node1/a1/item3" in batched.state
    assert "node1/late" not in batched.state and "node1/late.txt" not in batched.state


IGNORED = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: before
      file: {path: "{{ root }}/before", state: directory}
    - name: fails, ignored
      shell: "echo partial > {{ root }}/partial; exit 3"
      ignore_errors: true
    - name: after
      copy: {dest: "{{ root }}/after.txt", content: "after\\n"}
"""


def test_ignore_errors_goes_on_after_the_failing_part(sshd: SshServer, tmp_path: Path) -> None:
    batched, _ = both(sshd, tmp_path, IGNORED)
    assert batched.rc == 0
    assert [(t, s, ignored) for _, t, s, _, _, ignored in batched.tasks] == [
        ("before", "changed", False), ("fails, ignored", "failed", True), ("after", "changed", False)]
    assert "node1/after.txt" in batched.state and "node1/partial" in batched.state


REGISTERED = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: base
      file: {path: "{{ root }}", state: directory}
    - name: say
      shell: "echo yes > {{ root }}/said; echo yes"
      register: said
    - name: only when it said yes
      copy: {dest: "{{ root }}/heard", content: "{{ said.stdout }}\\n"}
      when: said.stdout == 'yes'
    - name: only when it said no
      copy: {dest: "{{ root }}/not-heard", content: "no\\n"}
      when: said.stdout == 'no'
    - name: changed_when reads the registered result
      shell: "echo again >> {{ root }}/said"
      changed_when: said.rc == 0
"""


def test_register_and_when_break_the_batch(sshd: SshServer, tmp_path: Path) -> None:
    batched, _ = both(sshd, tmp_path, REGISTERED)
    assert batched.rc == 0, batched.stderr
    assert [(t, s) for _, t, s, _, _, _ in batched.tasks] == [
        ("base", "changed"), ("say", "changed"), ("only when it said yes", "changed"),
        ("only when it said no", "skipped"), ("changed_when reads the registered result", "changed")]
    assert (tmp_path / "batched" / "hosts" / "node1" / "heard").read_text().strip() == "yes"


SECRET = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: base
      file: {path: "{{ root }}", state: directory, mode: "0700"}
    - name: a secret over stdin
      shell: {cmd: "cat > {{ root }}/secret; chmod 600 {{ root }}/secret", stdin: "{{ secret_word }}"}
    - name: a second one, right after
      shell: {cmd: "cat > {{ root }}/secret2", stdin: "{{ secret_word }}-2"}
    - name: and a file that follows
      copy: {dest: "{{ root }}/plain", content: "plain\\n"}
"""


def test_stdin_secrets_reach_only_their_own_part(sshd: SshServer, tmp_path: Path) -> None:
    batched, unbatched = both(sshd, tmp_path, SECRET)
    assert batched.rc == 0, batched.stderr
    root = tmp_path / "batched" / "hosts" / "node1"
    assert (root / "secret").read_text() == "s3cr3t-Wd9\n"
    assert (root / "secret2").read_text() == "s3cr3t-Wd9-2\n"
    assert "s3cr3t-Wd9" not in batched.stdout + batched.stderr
    assert batched.sessions < unbatched.sessions


def test_the_environment_turns_batching_off(sshd: SshServer, tmp_path: Path) -> None:
    off = run_once(sshd, tmp_path / "env", SECRET, batched=True, env={"PROVISION_NO_BATCH": "1"})
    on = run_once(sshd, tmp_path / "flag", SECRET, batched=True)
    assert off.tasks and [t[1:4] for t in off.tasks] == [t[1:4] for t in on.tasks]
    assert off.sessions > on.sessions


BOUNDED = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: base
      file: {path: "{{ root }}", state: directory}
    - name: quick, with its own bound
      shell: {cmd: "echo quick > {{ root }}/quick", timeout: 30}
    - name: too slow for its bound
      shell: "sleep 20; echo late > {{ root }}/slow"
      timeout: 2
    - name: not reached
      copy: {dest: "{{ root }}/after", content: "after\\n"}
"""


def test_each_part_keeps_its_own_timeout(sshd: SshServer, tmp_path: Path) -> None:
    batched, _ = both(sshd, tmp_path, BOUNDED)
    assert batched.rc == 2
    assert [(t, s) for _, t, s, _, _, _ in batched.tasks] == [
        ("base", "changed"), ("quick, with its own bound", "changed"), ("too slow for its bound", "failed")]
    assert "timed out" in batched.tasks[-1][3]
    assert "node1/slow" not in batched.state and "node1/after" not in batched.state


def test_check_and_diff_mode_report_the_same_with_and_without_batching(sshd: SshServer, tmp_path: Path) -> None:
    reports = []
    for flag in ([], ["--no-batch"]):
        project = tmp_path / ("on" if not flag else "off")
        root = project / "hosts"
        root.mkdir(parents=True)
        (project / "templates").mkdir()
        (project / "templates" / "app.conf.j2").write_text("n = {{ item }}\n")
        (project / "site.yml").write_text(CONVERGE)
        sshd.inventory(project / "inventory.yml", hosts=1, extra=f"    work: {root}\n")
        result = provision("playbook", "site.yml", "--check", "--diff", "--json", *flag, cwd=project)
        rows = [result.returncode] + [(t, s, m) for _, t, s, m, _, _ in task_results(result.stdout, root)]
        diffs = [json.loads(line).get("diff") for line in result.stdout.splitlines()
                 if line.startswith("{") and json.loads(line)["event"] == "task"]
        reports.append((rows, [(d or "").replace(str(root), "ROOT") for d in diffs], snapshot(root)))
    assert reports[0] == reports[1]
    assert reports[0][2] == {}, "check mode changed the tree"


APPEARS = """\
- hosts: all
  gather_facts: true
  vars:
    root: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - name: base
      file: {path: "{{ root }}", state: directory}
    - name: a command makes what the next tasks were planned as absent
      shell: "echo other > {{ root }}/copied; echo other > {{ root }}/lines; mkdir {{ root }}/dir;
              echo other > {{ root }}/rendered; ln -s copied {{ root }}/link"
    - name: copy over it
      copy: {dest: "{{ root }}/copied", content: "mine\\n", mode: "0640"}
    - name: a line in it
      lineinfile: {path: "{{ root }}/lines", line: "k=v", create: true}
    - name: the directory
      file: {path: "{{ root }}/dir", state: directory, mode: "0700"}
    - name: a template over it
      template: {src: app.conf.j2, dest: "{{ root }}/rendered"}
      vars: {item: 1}
    - name: a link where one appeared
      file: {path: "{{ root }}/link", state: link, src: motd, force: true}
    - name: still absent
      copy: {dest: "{{ root }}/motd", content: "hello\\n"}
"""


def test_parts_planned_from_absent_see_what_an_earlier_part_made(sshd: SshServer, tmp_path: Path) -> None:
    # The host checks "still absent" with the shell's tests alone; a path that appeared is read
    # again and its task planned from what is there, as without batching.
    batched, unbatched = both(sshd, tmp_path, APPEARS)
    assert batched.rc == 0, batched.stdout + batched.stderr
    root = tmp_path / "batched" / "hosts" / "node1"
    assert (root / "copied").read_text() == "mine\n" and (root / "lines").read_text() == "other\nk=v\n"
    assert batched.sessions < unbatched.sessions


BIG_AFTER_FAILURE = """\
- hosts: all
  gather_facts: false
  vars:
    root: "{{{{ work }}}}/{{{{ inventory_hostname }}}}"
  tasks:
    - name: base
      file: {{path: "{{{{ root }}}}", state: directory}}
    - name: fails before the big files
      shell: "exit 3"
    - name: a big file
      copy: {{src: {big}, dest: "{{{{ root }}}}/big1"}}
    - name: another
      copy: {{src: {big}, dest: "{{{{ root }}}}/big2"}}
"""


def test_a_batch_that_stops_before_its_big_files_fails_as_unbatched(sshd: SshServer, tmp_path: Path) -> None:
    # The batch's script ends at the failing part without reading the files' bytes (more than
    # sshd's window): the failure is the task's, never a lost connection.
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * (3 * 1024 * 1024))
    batched, _ = both(sshd, tmp_path, BIG_AFTER_FAILURE.format(big=big))
    assert batched.rc == 2, batched.stdout + batched.stderr
    assert batched.recap["node1"]["unreachable"] == 0 and batched.recap["node1"]["failed"] == 1
    assert "node1/big1" not in batched.state
