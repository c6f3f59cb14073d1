"""The multi-server deployment's db replica (``store`` is also in ``db_replica``): the sites' databases
were seeded onto it, a row written on the primary appears there, and the lag is reported.

Runs on the shared five-host deploy (tests/e2e/multiserver.py); the probe database it writes is
dropped on the primary at the end (the drop replicates), so the system is left as it was found.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from .multiserver import MultiServer

pytestmark = pytest.mark.e2e

USER_SCHEMAS = "schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"


def sql(system: MultiServer, name: str, query: str) -> str:
    return system.ssh(name, f"mariadb -N -B <<'SQL'\n{query}\nSQL").stdout.strip()


def wait_for(system: MultiServer, name: str, query: str, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = system.ssh(name, f"mariadb -N -B <<'SQL'\n{query}\nSQL", check=False).stdout.strip()
        if seen == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: {query!r} gave {seen!r}, not {expected!r}, within {timeout}s")


@pytest.fixture
def probe_db(multiserver: MultiServer) -> Iterator[MultiServer]:
    yield multiserver
    sql(multiserver, "db", "DROP DATABASE IF EXISTS replica_probe")
    wait_for(multiserver, "store", "SELECT COUNT(*) FROM information_schema.schemata "
                                   "WHERE schema_name = 'replica_probe'", "0")


def test_the_sites_databases_are_on_the_replica(multiserver: MultiServer) -> None:
    listing = f"SELECT schema_name FROM information_schema.schemata WHERE {USER_SCHEMAS} ORDER BY 1"
    on_primary = sql(multiserver, "db", listing).split()
    assert len(on_primary) >= 2, "the two sites' databases"
    wait_for(multiserver, "store", listing, "\n".join(on_primary))
    tables = f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{on_primary[0]}'"
    wait_for(multiserver, "store", tables, sql(multiserver, "db", tables))
    assert sql(multiserver, "store", "SELECT @@read_only") == "1"


def test_a_row_written_on_the_primary_appears_on_the_replica(probe_db: MultiServer) -> None:
    system = probe_db
    sql(system, "db", "CREATE DATABASE IF NOT EXISTS replica_probe; "
                      "CREATE TABLE IF NOT EXISTS replica_probe.t (id INT PRIMARY KEY, v VARCHAR(40)); "
                      "REPLACE INTO replica_probe.t VALUES (1, 'from-the-primary-4e1c');")
    wait_for(system, "store", "SELECT v FROM replica_probe.t WHERE id = 1", "from-the-primary-4e1c")
    result = system.provision("replication", "status", timeout=300)
    assert result.returncode == 0, system.failures(result)
    [state] = [json.loads(line) for line in result.stdout.splitlines() if '"event": "replication"' in line]
    assert state["host"] == "store" and state["verdict"] == "ok"
    assert state["master_host"] == system.address("db") and isinstance(state["seconds_behind_master"], int)
