"""The db host's steps of a multi-server update (update/dbhost.py) against a real MariaDB on loopback:
a consistent dump with every table's checksum, a restore into a NEW database proven equal to it and
granted to the site's user from each app host's address, the migrated database kept."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from provision.update import dbhost, hostops

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
services = importlib.import_module("local_services")

pytestmark = pytest.mark.integration

DB = "_0123abcd"
APP_ADDRESSES = ("10.213.9.11", "10.213.9.12")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with services.running_mariadb(tmp_path_factory.mktemp("mariadb")) as mariadb:
        yield mariadb


@pytest.fixture
def shim(server: Any, tmp_path: Path) -> dict[str, str]:
    """PATH where `mariadb` and `mariadb-dump` are root over the socket, as on a db host."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mariadb", "mariadb-dump"):
        real = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True, text=True).stdout.strip()
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\nexec {real} --defaults-extra-file={server.root_cnf} "$@"\n')
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)


def answer(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture
def site_db(server: Any) -> Iterator[None]:
    statements = [f"DROP DATABASE IF EXISTS `{DB}`", f"CREATE DATABASE `{DB}`",
                  f"CREATE TABLE `{DB}`.`tabLedger Entry` (name INT PRIMARY KEY, account VARCHAR(40), amount INT)",
                  f"INSERT INTO `{DB}`.`tabLedger Entry` VALUES (1, 'cash', 10), (2, 'bank', 25), (3, 'sales', 7)",
                  f"CREATE TABLE `{DB}`.`tabPatch Log` (patch VARCHAR(140))"]
    for address in APP_ADDRESSES:
        statements += [f"CREATE USER IF NOT EXISTS '{DB}'@'{address}' IDENTIFIED BY 'pw-not-used'",
                       f"GRANT ALL PRIVILEGES ON `{DB}`.* TO '{DB}'@'{address}'"]
    server.sql(";\n".join(statements) + ";")
    yield
    for name in server.sql(f"SHOW DATABASES LIKE '{DB}%'").split():
        server.sql(f"DROP DATABASE `{name}`")
    for address in APP_ADDRESSES:
        server.sql(f"DROP USER IF EXISTS '{DB}'@'{address}'")


def test_dump_then_restore_into_a_new_database_granted_to_every_app_host(server: Any, shim: dict[str, str],
                                                                         site_db: None, tmp_path: Path) -> None:
    backup = answer(run(dbhost.dump_script(str(tmp_path / "b"), DB), shim))
    assert backup["db_name"] == DB and backup["tables"]["tabLedger Entry"][0] == 3
    assert Path(backup["dump"]).exists() and (tmp_path / "b" / "checksums.json").exists()
    # what a failed migrate leaves behind
    server.sql(f"UPDATE `{DB}`.`tabLedger Entry` SET amount = amount * 100; "
               f"INSERT INTO `{DB}`.`tabPatch Log` VALUES ('ledger.patches.v3');")
    restored = answer(run(dbhost.restore_script(DB, DB, backup), shim))
    new_db = restored["new_db"]
    assert new_db != DB and restored["old_db"] == DB and sorted(restored["grants"]) == sorted(APP_ADDRESSES)
    assert server.sql(f"SELECT SUM(amount) FROM `{new_db}`.`tabLedger Entry`").strip() == "42"
    assert server.sql(f"SELECT COUNT(*) FROM `{new_db}`.`tabPatch Log`").strip() == "0"
    assert server.sql(f"SELECT SUM(amount) FROM `{DB}`.`tabLedger Entry`").strip() == "4200"  # kept
    hosts = server.sql(f"SELECT Host FROM mysql.db WHERE Db = '{new_db}' AND User = '{DB}'").split()
    assert sorted(hosts) == sorted(APP_ADDRESSES)


def test_a_site_without_db_user_gets_a_login_named_like_the_new_database(server: Any, shim: dict[str, str],
                                                                        site_db: None, tmp_path: Path) -> None:
    """Frappe logs in as a user named like the database when the config has no db_user (and bench backup
    always does): the restore makes that user, with the old one's password hash, from the same addresses."""
    backup = answer(run(dbhost.dump_script(str(tmp_path / "b"), DB), shim))
    restored = answer(run(dbhost.restore_script(DB, DB, backup, own_user=True), shim))
    new_db = restored["new_db"]
    assert restored["db_user"] == new_db and restored["config_user"] is None
    try:
        hosts = server.sql(f"SELECT Host FROM mysql.db WHERE Db = '{new_db}' AND User = '{new_db}'").split()
        assert sorted(hosts) == sorted(APP_ADDRESSES)
        for address in APP_ADDRESSES:
            old = server.sql(f"SHOW CREATE USER '{DB}'@'{address}'").split("IDENTIFIED", 1)[1]
            new = server.sql(f"SHOW CREATE USER '{new_db}'@'{address}'").split("IDENTIFIED", 1)[1]
            assert old == new  # the same password
        assert server.sql(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{new_db}' AND Host = '%'").strip() == "0"
    finally:
        for address in APP_ADDRESSES:
            server.sql(f"DROP USER IF EXISTS '{new_db}'@'{address}'")


def test_the_single_host_restore_points_the_site_at_a_login_named_like_the_new_database(
        server: Any, shim: dict[str, str], site_db: None, tmp_path: Path) -> None:
    """hostops' restore (one host) shares the db host's: after it, the site's config has the new database and no
    db_user, and a user named like that database has the old one's password, so bench backup can log in."""
    backup = answer(run(dbhost.dump_script(str(tmp_path / "b"), DB), shim))
    site_dir = tmp_path / "shared" / "sites" / "s1"
    site_dir.mkdir(parents=True)
    (site_dir / "site_config.json").write_text(json.dumps({"db_name": DB, "db_password": "pw-not-used"}))
    server.sql(f"UPDATE `{DB}`.`tabLedger Entry` SET amount = amount * 100")  # what a failed migrate leaves
    plan = SimpleNamespace(shared_path=str(tmp_path / "shared"))
    restored = answer(run(hostops.restore_script(plan, "s1", backup), shim))  # type: ignore[arg-type]
    new_db = restored["new_db"]
    try:
        config = json.loads((site_dir / "site_config.json").read_text())
        assert config == {"db_name": new_db, "db_password": "pw-not-used"}
        assert server.sql(f"SELECT SUM(amount) FROM `{new_db}`.`tabLedger Entry`").strip() == "42"
        hosts = server.sql(f"SELECT Host FROM mysql.db WHERE Db = '{new_db}' AND User = '{new_db}'").split()
        assert sorted(hosts) == sorted(APP_ADDRESSES)
        for address in APP_ADDRESSES:
            old = server.sql(f"SHOW CREATE USER '{DB}'@'{address}'").split("IDENTIFIED", 1)[1]
            assert server.sql(f"SHOW CREATE USER '{new_db}'@'{address}'").split("IDENTIFIED", 1)[1] == old
    finally:
        for address in APP_ADDRESSES:
            server.sql(f"DROP USER IF EXISTS '{new_db}'@'{address}'")


def test_a_restore_that_does_not_match_the_backup_leaves_no_database_behind(server: Any, shim: dict[str, str],
                                                                           site_db: None, tmp_path: Path) -> None:
    backup = answer(run(dbhost.dump_script(str(tmp_path / "b"), DB), shim))
    sums = tmp_path / "b" / "checksums.json"
    recorded = json.loads(sums.read_text())
    recorded["tables"]["tabLedger Entry"][0] = 4  # a backup that does not prove the dump
    sums.write_text(json.dumps(recorded))
    before = server.sql("SHOW DATABASES").split()
    result = run(dbhost.restore_script(DB, DB, backup), shim)
    assert result.returncode != 0 and "differs from the backup's checksums" in result.stderr
    assert server.sql("SHOW DATABASES").split() == before


def test_a_restore_for_a_user_that_does_not_exist_creates_nothing(server: Any, shim: dict[str, str],
                                                                 site_db: None, tmp_path: Path) -> None:
    backup = answer(run(dbhost.dump_script(str(tmp_path / "b"), DB), shim))
    before = server.sql("SHOW DATABASES").split()
    result = run(dbhost.restore_script(DB, "nobody", backup), shim)
    assert result.returncode != 0 and "no MariaDB account nobody" in result.stderr
    assert server.sql("SHOW DATABASES").split() == before
