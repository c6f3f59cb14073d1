"""``provision backup`` and ``provision restore`` on the shared multi-server deployment (tests/e2e/multiserver.py).

The sites live once: their database on the db host, their files on the shared store. A backup of
the group takes each site once, from the first app host (the dump against the db host, the files
from the shared mount); a restore puts the rows and the files back, into a new database granted to
the site's user from both app hosts, and both app hosts use it before the old one is dropped.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from .multiserver import APP_HOSTS, SITES, MultiServer

pytestmark = pytest.mark.e2e

SITE = SITES[0]
FILE = "multi-backup-check.txt"
FILE_TEXT = "kept on the shared store\n"


def site_config(ms: MultiServer, host: str, site: str) -> dict[str, Any]:
    config = json.loads(ms.ssh(host, f"cat /home/frappe/frappe-bench/sites/{site}/site_config.json").stdout)
    config.pop("db_password", None)
    return dict(config)


def entries(ms: MultiServer, site: str, host: str | None = None) -> list[tuple[str, float]]:
    path = "/api/method/ledger.api.entries"
    status, body = ms.direct(host, path, site) if host else ms.lb(path, site)
    assert status == 200, body
    return [(e["account"], float(e["amount"])) for e in json.loads(body)["message"]]


def sql_on_db(ms: MultiServer, query: str) -> str:
    return ms.ssh("db", f"mariadb -N -B <<'EOF'\n{query}\nEOF").stdout.strip()


def ledger_checksum(ms: MultiServer, db: str) -> str:
    return sql_on_db(ms, f"CHECKSUM TABLE `{db}`.`tabLedger Entry` EXTENDED").split()[-1]


def public_file(ms: MultiServer, host: str) -> str:
    path = f"/home/frappe/frappe-bench/sites/{SITE}/public/files/{FILE}"
    return ms.ssh(host, f"cat {path} 2>/dev/null || true").stdout


def test_backup_takes_each_site_once_and_restore_brings_rows_and_files_back(multiserver: MultiServer) -> None:
    ms = multiserver
    files_dir = f"/home/frappe/frappe-bench/sites/{SITE}/public/files"
    # echo adds the newline: as_frappe's quoting would pass a newline on as a backslash and an n
    ms.as_frappe("app1", f"echo {shlex.quote(FILE_TEXT.rstrip())} > {files_dir}/{FILE}")
    assert public_file(ms, "app2") == FILE_TEXT  # the shared store
    status, body = ms.lb("/api/method/ledger.api.add_entry?account=multi-backup&amount=5", SITE)
    assert status == 200, body
    before_rows = entries(ms, SITE)
    old_db = site_config(ms, "app1", SITE)["db_name"]
    before_sum = ledger_checksum(ms, old_db)

    backup = ms.provision("backup", "prod", "--with-files")
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
    done = [e for e in ms.events(backup) if e["event"] == "backup_site"]
    assert sorted((e["host"], e["site"], e["status"]) for e in done) == [("app1", s, "ok") for s in sorted(SITES)]
    manifest_dir = next(e["path"] for e in done if e["site"] == SITE)
    manifest = json.loads((Path(manifest_dir) / "manifest.json").read_text())
    names = [f["name"] for f in manifest["files"]]
    assert any(n.endswith("-files.tar") and "private" not in n for n in names), names
    assert manifest["db_name"] == old_db and manifest["tables"]["tabLedger Entry"][0] == len(before_rows)

    # what the restore must undo: a row more, the file gone
    status, body = ms.lb("/api/method/ledger.api.add_entry?account=after-backup&amount=99", SITE)
    assert status == 200, body
    ms.as_frappe("app1", f"rm -f {files_dir}/{FILE}")
    assert public_file(ms, "app2") == ""

    restore = ms.provision("restore", "app1", SITE, "--force")
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-3000:]
    new_db = site_config(ms, "app1", SITE)["db_name"]
    assert new_db != old_db and site_config(ms, "app2", SITE)["db_name"] == new_db
    assert ledger_checksum(ms, new_db) == before_sum
    for host in APP_HOSTS:
        assert entries(ms, SITE, host) == before_rows, host
        assert public_file(ms, host) == FILE_TEXT, host
    grants = sql_on_db(ms, f"SELECT Host FROM mysql.db WHERE Db='{new_db}'").split()
    assert {ms.address(h) for h in APP_HOSTS} <= set(grants) and "%" not in grants, grants
    assert sql_on_db(ms, f"SHOW DATABASES LIKE '{old_db}'") == ""  # dropped only once both hosts use the new one
    ms.as_frappe("app1", f"rm -f {files_dir}/{FILE}")  # as the other tests found it
