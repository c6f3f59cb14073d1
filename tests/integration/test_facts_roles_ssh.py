"""``provision facts`` over a real sshd shows each host's server roles (role_groups) with its facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision.cli import main
from tests.integration.conftest import SshServer

pytestmark = pytest.mark.integration


def test_facts_show_roles(sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    extra = "  children:\n    db:\n      hosts:\n        node1:\n    db_replica:\n      hosts:\n        node2:\n"
    inventory = sshd.inventory(tmp_path / "inventory.yml", hosts=3, extra=extra)
    assert main(["facts", "all", "--json", "-i", str(inventory)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    facts = {e["host"]: e["facts"] for e in events if e["event"] == "facts"}
    assert {name: values["roles"] for name, values in facts.items()} == {
        "node1": ["db"], "node2": ["db_replica"], "node3": []}
    assert facts["node1"]["os_family"]
    assert main(["facts", "node2", "-i", str(inventory), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("\n{") + 1:])["node2"]["roles"] == ["db_replica"]
