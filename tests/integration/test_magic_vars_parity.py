"""Magic variables as tasks see them are the real ansible-core's (IP-named hosts, ``ungrouped``).

Runs the real ``ansible`` ad hoc with ``connection: local`` on this machine (nothing is reached
over the network) and the same inventory through provision's runner, then compares. Skips when
ansible-core is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from provision.inventory import Inventory
from provision.playbook import load_playbook
from provision.runner import Runner, RunOptions
from tests.unit.test_runner_local import Recorder

pytestmark = pytest.mark.integration

ANSIBLE = shutil.which("ansible") or str(Path(sys.executable).with_name("ansible"))
MAGIC = ("inventory_hostname", "inventory_hostname_short", "group_names")
INVENTORY = """\
all:
  hosts:
    192.0.2.11:
    web1.example.com:
  children:
    web:
      hosts:
        192.0.2.12:
        app.example.com:
      children:
        front:
          hosts:
            "2001:db8::7":
"""


def ansible_magic(inventory: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),  # absent: no user or system config
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
    }
    expression = "{{ {" + ", ".join(f"'{name}': {name}" for name in MAGIC) + "} }}"
    done = subprocess.run([ANSIBLE, "-i", str(inventory), "all", "-c", "local", "-m", "debug", "-a",
                           f"msg={expression}"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    # The ad-hoc "minimal" output: "HOST | SUCCESS => {" then the result as indented JSON up to "}".
    results: dict[str, dict[str, Any]] = {}
    for block in re.split(r"^(?=\S+ \| \w+ => \{$)", done.stdout, flags=re.M):
        head, _, body = block.partition(" => ")
        if body:
            results[head.split(" | ")[0]] = json.loads(body)["msg"]
    return results


def provision_magic(inventory: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    book = workdir / "magic.yml"
    book.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars: {connection: local}
          tasks:
            - set_fact:
                seen: "{{ {%s} }}"
        """) % ", ".join(f"'{name}': {name}" for name in MAGIC))
    runner = Runner(Inventory.load(inventory), RunOptions(project_dir=workdir), Recorder())
    outcome = runner.run(load_playbook(book))
    assert outcome.exit_code == 0
    return {name: state.runtime["seen"] for name, state in runner.hosts.items()}


@pytest.mark.skipif(not Path(ANSIBLE).exists(), reason="ansible-core not installed")
def test_magic_variables_match_ansible_core(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY.replace("all:\n", "all:\n  vars: {connection: local}\n", 1))
    ours = provision_magic(inventory, tmp_path)
    theirs = ansible_magic(inventory, tmp_path)
    assert ours == theirs
    assert ours["192.0.2.11"] == {"inventory_hostname": "192.0.2.11", "inventory_hostname_short": "192.0.2.11",
                                  "group_names": ["ungrouped"]}
