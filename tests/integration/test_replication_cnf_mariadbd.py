"""61-provision-replication.cnf as rendered for a primary and a replica: the real mariadbd reads every
option of it (an unknown or misspelt one is refused) and reports the values we meant."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_replication import replication_vars
from tests.unit.test_templates import render

pytestmark = pytest.mark.integration

MARIADBD = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")


@pytest.mark.skipif(MARIADBD is None, reason="mariadbd is not installed")
@pytest.mark.parametrize(("host", "expected"), [
    ("db1", {"log-bin": "mariadb-bin", "gtid-strict-mode": "TRUE", "read-only": "FALSE"}),
    ("db2", {"read-only": "TRUE", "log-slave-updates": "TRUE", "bind-address": "127.0.0.1,10.0.0.5",
             "relay-log": "relay-bin"}),
])
def test_mariadbd_reads_the_replication_cnf(host: str, expected: dict[str, str], tmp_path: Path) -> None:
    assert MARIADBD is not None
    cnf = tmp_path / "61-provision-replication.cnf"
    cnf.write_text(render("replication.cnf.j2", replication_vars(host)))
    done = subprocess.run([MARIADBD, f"--defaults-file={cnf}", "--datadir", str(tmp_path), "--help", "--verbose"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    values = dict(line.split(None, 1) for line in done.stdout.splitlines() if len(line.split(None, 1)) == 2)
    for option, value in expected.items():
        assert values.get(option) == value, (option, values.get(option))
