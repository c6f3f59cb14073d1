"""The demo you can keep using: after scripts/demo.py, the project it printed deploys again, 0 changed.

The demo's app repositories are served by the lab (``serve_git``) as long as the lab is up, so the
re-deploy's ``git ls-remote`` finds them; ``lab down`` stops that server too. One lab host, one
first deploy (the demo's own) and one converged re-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.lab.gitserve import git_served, git_url, ls_remote_ok, record_file

from .conftest import LabHandle, claimed_lab

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_lab() -> Iterator[LabHandle]:
    with claimed_lab("demo", 1) as handle:
        yield handle


def test_demo_project_deploys_again_with_nothing_changed(demo_lab: LabHandle) -> None:
    settings = demo_lab.lab.settings
    env = {**os.environ, "PROVISION_LAB_DIR": str(settings.state_dir), "PROVISION_LAB_SUBNET": str(settings.subnet)}
    demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--hosts", "1"], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    inventory = settings.state_dir / "demo-project" / "inventory.yml"
    assert f"deploy again (converged: 0 changed): provision deploy prod -i {inventory}" in demo.stdout

    # The demo has exited; its repositories are still served from the lab's bridge.
    assert git_served(settings) and ls_remote_ok(f"{git_url(settings)}/frappe")
    again = subprocess.run([sys.executable, "-m", "provision", "deploy", "prod", "-i", str(inventory), "--json"],
                           capture_output=True, text=True, timeout=900, cwd=inventory.parent)
    assert again.returncode == 0, again.stderr[-3000:]
    events = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")]
    recap = next(event for event in events if event["event"] == "recap")
    assert {host: stats["changed"] for host, stats in recap["hosts"].items()} == {"lab1": 0}

    demo_lab.lab.down()
    assert not git_served(settings) and not record_file(settings).exists()
