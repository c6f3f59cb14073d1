"""INI inventories: ``Inventory.load`` reads them as the real ansible-core's ``ini`` plugin does.

Runs the real ``ansible-inventory`` (ansible-core, in the test venv) on fixture INI files and
compares ``--list`` and ``--host`` with ours; skips when ansible-core is not installed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.errors import InventoryError
from provision.inventory import Inventory
from tests.integration.test_ansible_inventory_parity import (
    ANSIBLE_INVENTORY,
    FIXTURES,
    TIMEOUT,
    needs_ansible,
    normalized,
)

pytestmark = pytest.mark.integration

INI = FIXTURES / "ini"


def ansible(source: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_INVENTORY is not None
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ENABLED": "ini",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run([ANSIBLE_INVENTORY, "-i", str(source), *extra], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def ansible_json(source: Path, workdir: Path, *extra: str) -> object:
    import json

    done = ansible(source, workdir, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_ansible
@pytest.mark.parametrize("name", ["hosts.ini", "later_children"])
def test_ini_list_matches_ansible_inventory(name: str, tmp_path: Path) -> None:
    ours = Inventory.load(INI / name).to_ansible_list(show_secrets=True)
    theirs = ansible_json(INI / name, tmp_path, "--list")
    assert isinstance(theirs, dict)
    assert normalized(ours) == normalized(theirs)


@needs_ansible
def test_ini_host_vars_match_ansible_inventory_host(tmp_path: Path) -> None:
    inventory = Inventory.load(INI / "hosts.ini")
    for host in inventory.hosts:
        assert inventory.host_vars(host, show_secrets=True) == ansible_json(INI / "hosts.ini", tmp_path, "--host", host)


@needs_ansible
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[web:vars]\na=1\n", "never declared"),
        ("[prod:children]\nweb\n", "never declared"),
        ("[web:nope]\n", "unknown type"),
        ("[web]\nw1 novalue\n", "expected name=value"),
    ],
)
def test_what_ansible_refuses_we_refuse(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message) as caught:
        Inventory.load(path)
    assert caught.value.source is not None and caught.value.source.line is not None
    assert ansible(path, tmp_path, "--list").returncode != 0


SOURCES = [INI / "hosts.ini", FIXTURES / "nested" / "inventory.yml", FIXTURES / "precedence" / "inventory.yml"]


def ours(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from provision.cli import main

    assert main(["inventory", *argv]) == 0
    return capsys.readouterr().out


@needs_ansible
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.parent.name + "/" + p.name)
@pytest.mark.parametrize("argv", [["--graph"], ["--list", "--yaml"]], ids=" ".join)
def test_graph_and_yaml_match_ansible_inventory(source: Path, argv: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    env_formats = "ini" if source.suffix == ".ini" else "yaml"
    theirs = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(source), *argv], cwd=tmp_path, capture_output=True,
                            text=True, timeout=TIMEOUT, check=False,
                            env={**os.environ, "ANSIBLE_HOME": str(tmp_path / "h"),
                                 "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t"),
                                 "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
                                 "ANSIBLE_INVENTORY_ENABLED": env_formats})
    assert theirs.returncode == 0, theirs.stderr
    mine = ours(capsys, "-i", str(source), *argv, "--show-secrets")
    if "--yaml" in argv:  # ansible-inventory writes &id001 anchors for values groups share; we write them out
        import yaml

        assert yaml.safe_load(mine) == yaml.safe_load(theirs.stdout)
        assert "&id" not in mine
    else:
        assert mine == theirs.stdout


@needs_ansible
def test_list_with_limit_matches_ansible_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    theirs = ansible_json(INI / "hosts.ini", tmp_path, "--list", "--limit", "db1*:lonely*")
    assert isinstance(theirs, dict)
    mine = json.loads(ours(capsys, "-i", str(INI / "hosts.ini"), "--list", "--limit", "db1*:lonely*"))
    assert normalized(mine) == normalized(theirs)
