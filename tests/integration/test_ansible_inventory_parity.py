"""``Inventory.to_ansible_list()`` prints what the real ``ansible-inventory --list`` prints.

Needs ansible-core (``pip install ansible-core``) so that ``ansible-inventory`` is on PATH; the
test skips otherwise. Nothing is installed or fetched here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.inventory import Inventory

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
ANSIBLE_INVENTORY = shutil.which("ansible-inventory")
TIMEOUT = 120

needs_ansible = pytest.mark.skipif(
    ANSIBLE_INVENTORY is None, reason="ansible-inventory not on PATH: pip install ansible-core to run this test"
)


def ansible_list(source: str, workdir: Path, *extra: str) -> Any:
    """Run the real ansible-inventory in a clean directory, with its state kept in ``workdir``."""
    assert ANSIBLE_INVENTORY is not None
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),  # absent: no user or system config
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ENABLED": "yaml,host_list",
        "ANSIBLE_NOCOLOR": "1",
    }
    done = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", source, *extra],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def normalized(listing: dict[str, Any]) -> dict[str, Any]:
    """Drop what is not inventory content, and sort children (older ansible-core sorts them)."""
    result: dict[str, Any] = json.loads(json.dumps(listing))
    result["_meta"].pop("profile", None)
    for name, group in result.items():
        if name != "_meta" and "children" in group:
            group["children"] = sorted(group["children"])
    return result


@needs_ansible
@pytest.mark.parametrize("name", ["nested", "precedence", "toplevel"])
def test_list_matches_ansible_inventory(name: str, tmp_path: Path) -> None:
    path = FIXTURES / name / "inventory.yml"
    ours = Inventory.load(path).to_ansible_list(show_secrets=True)
    theirs = ansible_list(str(path), tmp_path, "--list")
    assert normalized(ours) == normalized(theirs)
    # Same order of hosts within each group, and of children too for the version tested here.
    assert ours == {**theirs, "_meta": {"hostvars": theirs["_meta"]["hostvars"]}}


@needs_ansible
def test_host_vars_match_ansible_inventory_host(tmp_path: Path) -> None:
    path = FIXTURES / "precedence" / "inventory.yml"
    inventory = Inventory.load(path)
    for host in inventory.hosts:
        assert inventory.host_vars(host, show_secrets=True) == ansible_list(str(path), tmp_path, "--host", host)


@needs_ansible
def test_host_list_matches_ansible_inventory(tmp_path: Path) -> None:
    source = "web1,web2:2200,10.0.0.5,"
    assert normalized(Inventory.load(source).to_ansible_list()) == normalized(ansible_list(source, tmp_path, "--list"))
