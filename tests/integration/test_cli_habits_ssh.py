"""CLI habits over a real sshd: ``facts --json`` prints the facts, ``-u`` fills in the login user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision.cli import main
from tests.integration.conftest import SshServer

pytestmark = pytest.mark.integration


def test_facts_json_prints_one_facts_event_per_host(sshd: SshServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.yml", hosts=2)
    assert main(["facts", "all", "--json", "-i", str(inventory)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    facts = {e["host"]: e["facts"] for e in events if e["event"] == "facts"}
    assert sorted(facts) == ["node1", "node2"] and facts["node1"]["os_family"]


def test_user_option_fills_in_an_unset_login_user(sshd: SshServer, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.yml")
    inventory.write_text(inventory.read_text().replace("    ssh_user: root\n", ""))
    assert main(["ping", "-i", str(inventory), "-u", "root", "--json"]) == 0
    assert main(["ping", "-i", str(inventory), "-u", "nosuchuser-xyz"]) == 3
    capsys.readouterr()
