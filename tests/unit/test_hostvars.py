"""``hostvars`` in a run: inventory variables plus what register/set_fact recorded on that host."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.inventory import Inventory
from provision.runner import HostVars

pytestmark = pytest.mark.unit


class _State:
    def __init__(self, runtime: dict[str, object]) -> None:
        self.runtime = runtime


def test_hostvars_add_each_hosts_registered_values(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    a: {ssh_host: 10.0.0.1}\n    b: {}\n")
    inventory = Inventory.load(tmp_path / "inventory.yml")
    states = {"a": _State({"site_configs": {"results": []}})}
    hostvars = HostVars(inventory, states)  # type: ignore[arg-type]
    assert hostvars["a"]["ssh_host"] == "10.0.0.1" and hostvars["a"]["site_configs"] == {"results": []}
    assert "site_configs" not in hostvars["b"]
    assert sorted(hostvars) == ["a", "b"] and len(hostvars) == 2
    states["b"] = _State({"late": 1})  # recorded later in the run: seen from then on
    assert hostvars["b"]["late"] == 1
