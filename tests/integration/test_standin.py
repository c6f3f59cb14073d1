"""The Frappe stand-in driven through the real `bench` CLI, real MariaDB, Redis, gunicorn and RQ."""

from __future__ import annotations

import gzip
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# tests/fixtures is not a package (and is outside mypy's checks): load the helper module by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
standin = importlib.import_module("standin")
services = importlib.import_module("local_services")
free_port, stop, wait_for = services.free_port, services.stop, services.wait_for
MariaDB = Any  # local_services.MariaDB

pytestmark = pytest.mark.integration

SITE = "s1.local"
BENCH = shutil.which("bench")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    with services.running_mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    with services.running_redis(tmp_path_factory.mktemp("redis")) as ports:
        yield ports


@dataclass
class Bench:
    path: Path
    web_port: int
    mariadb: MariaDB

    def run(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        assert BENCH, "bench (PyPI frappe-bench) is not on PATH"
        proc = subprocess.run([BENCH, *args], cwd=self.path, input=stdin or "", text=True, capture_output=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"bench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def site_db(self) -> str:
        return str(json.loads((self.path / "sites" / SITE / "site_config.json").read_text())["db_name"])

    def http(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}",
                                         headers={"X-Frappe-Site-Name": SITE})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def entries(self) -> list[dict[str, object]]:
        status, body = self.http("/api/method/ledger.api.entries")
        assert status == 200, body
        return list(json.loads(body)["message"])


@pytest.fixture(scope="session")
def pkg_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Downloaded wheels, shared by every bench env of the session."""
    path = tmp_path_factory.mktemp("pkg-cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB, redis_ports: dict[str, int],
          pkg_cache: Path) -> Iterator[Bench]:
    base = tmp_path_factory.mktemp("standin")
    repos = standin.make_app_repos(base / "repos")
    config = standin.common_site_config(
        frappe_user="root" if os.geteuid() == 0 else os.environ.get("USER", "root"),
        redis_cache=f"redis://127.0.0.1:{redis_ports['cache']}",
        redis_queue=f"redis://127.0.0.1:{redis_ports['queue']}",
        db_port=mariadb.port,
        webserver_port=free_port(),
        socketio_port=free_port(),
    )
    path = standin.make_bench(base / "frappe-bench", repos, config, refs={"ledger": "v1"})
    standin.create_env(path, cache_dir=pkg_cache)
    yield Bench(path, config["webserver_port"], mariadb)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def site(bench: Bench) -> str:
    # Root password, then the Administrator password twice: all on stdin, as Frappe prompts for them.
    admin = secrets.token_hex(8)
    bench.run("new-site", SITE, stdin=f"{bench.mariadb.root_password}\n{admin}\n{admin}\n")
    bench.run("--site", SITE, "install-app", "ledger")
    bench.run("use", SITE)
    return SITE


@pytest.fixture(scope="module")
def web(bench: Bench, site: str) -> Iterator[subprocess.Popen[bytes]]:
    log = open(bench.path / "logs" / "web.error.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(bench.path / "env" / "bin" / "gunicorn"), "-b", f"127.0.0.1:{bench.web_port}", "-w", "1",
         "-t", "30", "--graceful-timeout", "5", "frappe.app:application"],
        cwd=bench.path / "sites", stdout=log, stderr=log, start_new_session=True,
    )
    try:
        wait_for(lambda: _answers(bench), 30, "gunicorn")
        yield proc
    finally:
        stop(proc)
        log.close()


def _answers(bench: Bench) -> bool:
    try:
        return bench.http("/api/method/ping")[0] == 200
    except OSError:
        return False


def test_new_site_lays_out_a_frappe_site(bench: Bench, site: str) -> None:
    site_dir = bench.path / "sites" / site
    for sub in ("public/files", "private/files", "private/backups", "locks", "logs"):
        assert (site_dir / sub).is_dir(), sub
    config = json.loads((site_dir / "site_config.json").read_text())
    assert set(config) == {"db_name", "db_password", "db_type"}
    assert config["db_type"] == "mariadb" and re.fullmatch(r"_[0-9a-f]{16}", config["db_name"])
    assert bench.mariadb.root_password not in (site_dir / "site_config.json").read_text()
    hosts = bench.mariadb.sql(f"SELECT host FROM mysql.user WHERE user='{config['db_name']}'").split()
    assert hosts == ["localhost"]
    tables = bench.mariadb.sql(f"SHOW TABLES FROM `{config['db_name']}`")
    assert "tabLedger Entry" in tables and "__Auth" in tables
    listed = json.loads(bench.run("--site", site, "list-apps", "--format", "json").stdout)
    assert listed == {site: ["frappe", "ledger"]}
    text = bench.run("--site", site, "list-apps").stdout
    assert re.search(r"^frappe\s+15\.\d+\.\d+\s+version-15$", text, re.M), text
    assert "default_site" in (bench.path / "sites" / "common_site_config.json").read_text()
    assert re.search(r"^frappe 15\.50\.0$", bench.run("version").stdout, re.M)


def test_web_serves_ping_version_and_a_page_from_the_database(bench: Bench, web: object) -> None:
    assert bench.http("/api/method/ping") == (200, '{"message": "pong"}')
    status, body = bench.http("/api/method/version")
    assert status == 200 and json.loads(body)["message"].startswith("15.")
    assert bench.http("/api/method/ledger.api.add_entry?account=rent&amount=12")[0] == 200
    status, page = bench.http("/")
    assert status == 200 and "Ledger v1" in page and "<td>rent</td>" in page
    assert bench.http("/app")[0] == 200


def test_worker_runs_an_enqueued_job_and_ready_for_migration_waits_for_it(bench: Bench, site: str,
                                                                          web: object) -> None:
    status, body = bench.http("/api/method/ledger.api.enqueue_entry?account=from-worker")
    assert status == 200, body
    assert bench.run("--site", site, "ready-for-migration", check=False).returncode == 1
    bench.run("worker", "--queue", "short,default", "--burst", timeout=90)
    assert any(e["account"] == "from-worker" and e["source"] == "job" for e in bench.entries())
    assert bench.run("--site", site, "ready-for-migration").returncode == 0


def test_scheduler_enqueues_app_events_only_while_active(bench: Bench, site: str, web: object) -> None:
    assert "disabled" in bench.run("--site", site, "scheduler", "status").stdout
    bench.run("--site", site, "scheduler", "enable")
    bench.run("--site", site, "scheduler", "pause")
    bench.run("set-config", "-g", "-p", "scheduler_tick_interval", "1")
    schedule = subprocess.Popen([str(BENCH), "schedule"], cwd=bench.path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(3)  # three ticks while paused: nothing may be enqueued
        assert bench.run("--site", site, "ready-for-migration", check=False).returncode == 0
        bench.run("--site", site, "scheduler", "resume")
        wait_for(lambda: bench.run("--site", site, "ready-for-migration", check=False).returncode == 1, 30,
                 "the scheduler to enqueue ledger.tasks.record_tick")
    finally:
        stop(schedule)
        bench.run("--site", site, "scheduler", "disable")
    bench.run("worker", "--queue", "default", "--burst", timeout=90)
    assert any(e["source"] == "scheduler" for e in bench.entries())


def test_maintenance_mode_answers_503_until_switched_off(bench: Bench, site: str, web: object) -> None:
    bench.run("--site", site, "set-maintenance-mode", "on")
    config = json.loads((bench.path / "sites" / site / "site_config.json").read_text())
    assert config["maintenance_mode"] == 1
    status, page = bench.http("/")
    assert status == 503 and "Updating" in page
    bench.run("--site", site, "set-maintenance-mode", "off")
    assert bench.http("/")[0] == 200


def test_migrate_to_v2_applies_its_patch_once(bench: Bench, site: str, web: subprocess.Popen[bytes]) -> None:
    assert bench.http("/api/method/ledger.api.add_entry?account=rent&amount=12")[0] == 200
    standin.checkout_app(bench.path, "ledger", "v2")
    first = bench.run("--site", site, "migrate")
    assert "Executing ledger.patches.v2_add_memo" in first.stdout
    touched = json.loads((bench.path / "sites" / site / "touched_tables.json").read_text())
    assert "tabLedger Entry" in touched
    second = bench.run("--site", site, "migrate")
    assert "Executing" not in second.stdout
    assert re.search(r"^ledger\s+2\.0\.0", bench.run("--site", site, "list-apps").stdout, re.M)
    os.kill(web.pid, signal.SIGHUP)  # gunicorn reloads its workers, as a deploy restart does
    wait_for(lambda: "Ledger v2" in bench.http("/")[1], 30, "the v2 page")
    assert "migrated:rent" in bench.http("/")[1]


def test_backup_and_restore_bring_back_deleted_data_and_files(bench: Bench, site: str, web: object) -> None:
    site_dir = bench.path / "sites" / site
    assert bench.http("/api/method/ledger.api.add_entry?account=rent&amount=12")[0] == 200
    (site_dir / "public" / "files" / "hello.txt").write_text("public hello")
    (site_dir / "private" / "files" / "secret.txt").write_text("private hello")
    backups = site_dir / "private" / "backups"
    before = set(backups.iterdir())
    out = bench.run("--site", site, "backup", "--with-files").stdout
    assert "Backup for Site s1.local has been successfully completed with files" in out
    made = sorted(p.name for p in set(backups.iterdir()) - before)
    stamp = r"\d{8}_\d{6}-s1_local"
    patterns = [rf"{stamp}-database\.sql\.gz", rf"{stamp}-files\.tar", rf"{stamp}-private-files\.tar",
                rf"{stamp}-site_config_backup\.json"]
    assert len(made) == 4 and all(any(re.fullmatch(p, n) for n in made) for p in patterns), made
    by_kind = {re.sub(stamp, "", n): backups / n for n in made}
    with gzip.open(by_kind["-database.sql.gz"], "rt") as dump:
        text = dump.read()
    assert text.startswith("-- begin frappe metadata") and "-- version = 15.50.0" in text
    assert "CREATE TABLE `tabLedger Entry`" in text

    bench.mariadb.sql(f"DELETE FROM `{bench.site_db()}`.`tabLedger Entry`")
    (site_dir / "public" / "files" / "hello.txt").unlink()
    assert bench.entries() == []

    bench.run("--site", site, "restore", str(by_kind["-database.sql.gz"]),
              "--with-public-files", str(by_kind["-files.tar"]),
              "--with-private-files", str(by_kind["-private-files.tar"]),
              stdin=f"{bench.mariadb.root_password}\n")
    assert any(e["account"] == "rent" for e in bench.entries())
    assert (site_dir / "public" / "files" / "hello.txt").read_text() == "public hello"
    assert "<td>rent</td>" in bench.http("/")[1]

    compressed = bench.run("--site", site, "backup", "--with-files", "--compress",
                           "--backup-path", str(bench.path / "offsite")).stdout
    assert re.search(rf"{stamp}-files\.tgz", compressed)
    assert len(list((bench.path / "offsite").glob("*-private-files.tgz"))) == 1


def test_failed_backup_leaves_no_partial_files(bench: Bench, site: str, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("mariadb-dump", "mysqldump"):
        (fake / name).write_text("#!/bin/sh\necho 'dump: simulated failure' >&2\nexit 2\n")
        (fake / name).chmod(0o755)
    backups = bench.path / "sites" / site / "private" / "backups"
    before = set(backups.iterdir())
    failed = bench.run("--site", site, "backup", check=False, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert failed.returncode == 1 and f"Backup failed for Site {site}" in failed.stdout
    assert set(backups.iterdir()) == before


def test_migrate_exits_1_when_redis_cache_is_down(bench: Bench, site: str) -> None:
    bench.run("--site", site, "set-config", "redis_cache", f"redis://127.0.0.1:{free_port()}")
    try:
        failed = bench.run("--site", site, "migrate", check=False)
    finally:
        bench.run("--site", site, "set-config", "redis_cache", "None")
    assert failed.returncode == 1 and "redis_cache" in failed.stdout + failed.stderr
    assert "redis_cache" not in json.loads((bench.path / "sites" / site / "site_config.json").read_text())


def test_broken_migrate_fails_and_leaves_touched_tables(bench: Bench, site: str) -> None:
    touched_file = bench.path / "sites" / site / "touched_tables.json"
    touched_file.unlink(missing_ok=True)
    bench.mariadb.sql(f"INSERT INTO `{bench.site_db()}`.`tabLedger Entry` (account, amount) VALUES ('fee', 3)")
    amounts_before = bench.mariadb.sql(f"SELECT SUM(amount) FROM `{bench.site_db()}`.`tabLedger Entry`")
    standin.checkout_app(bench.path, "ledger", "v3-broken")
    try:
        failed = bench.run("--site", site, "migrate", check=False)
    finally:
        standin.checkout_app(bench.path, "ledger", "v2")
    assert failed.returncode != 0
    assert "v3 patch failed on purpose" in failed.stdout + failed.stderr
    assert "tabLedger Entry" in json.loads(touched_file.read_text())
    assert bench.mariadb.sql(f"SELECT SUM(amount) FROM `{bench.site_db()}`.`tabLedger Entry`") != amounts_before


def test_build_needs_the_apps_node_modules(bench: Bench) -> None:
    """As real Frappe's esbuild build does: without `yarn install` in apps/frappe, `bench build` fails."""
    modules = bench.path / "apps" / "frappe" / "node_modules"
    shutil.rmtree(modules, ignore_errors=True)
    failed = bench.run("build", check=False)
    assert failed.returncode != 0 and "Cannot find module 'is-number'" in failed.stdout + failed.stderr
    node_modules_as_yarn_leaves_them(bench)
    bench.run("build")


def node_modules_as_yarn_leaves_them(bench: Bench) -> None:
    """What `yarn install --frozen-lockfile` leaves in apps/frappe: a module node can require.

    The lab e2e deploys fetch the real package from npm; this test talks to no registry.
    """
    module = bench.path / "apps" / "frappe" / "node_modules" / "is-number"
    module.mkdir(parents=True, exist_ok=True)
    (module / "package.json").write_text('{"name": "is-number", "version": "7.0.0"}\n')
    (module / "index.js").write_text("module.exports = (n) => Number.isFinite(+n);\n")


def test_build_links_app_assets_and_writes_the_manifest(bench: Bench) -> None:
    node_modules_as_yarn_leaves_them(bench)
    bench.run("build")
    assets = bench.path / "sites" / "assets"
    for app in ("frappe", "ledger"):
        link = assets / app
        assert link.is_symlink() and link.resolve() == (bench.path / "apps" / app / app / "public").resolve()
    manifest = json.loads((assets / "assets.json").read_text())
    assert manifest["ledger.bundle.js"].startswith("/assets/ledger/dist/js/ledger.bundle.")


def test_set_config_coerces_values_like_frappe(bench: Bench, site: str) -> None:
    common = bench.path / "sites" / "common_site_config.json"
    bench.run("set-config", "-g", "flag_one", "1")
    bench.run("set-config", "-g", "flag_true", "true")
    bench.run("set-config", "-g", "-p", "a_list", "[1, 2]")
    values = json.loads(common.read_text())
    assert (values["flag_one"], values["flag_true"], values["a_list"]) == (1, True, [1, 2])
    bench.run("set-config", "-g", "flag_one", "None")
    assert "flag_one" not in json.loads(common.read_text())


def test_drop_site_backs_up_then_archives(bench: Bench, site: str) -> None:
    other = "s2.local"
    admin = secrets.token_hex(8)
    bench.run("new-site", other, "--no-mariadb-socket",
              stdin=f"{bench.mariadb.root_password}\n{admin}\n{admin}\n")
    db_name = json.loads((bench.path / "sites" / other / "site_config.json").read_text())["db_name"]
    assert bench.mariadb.sql(f"SELECT host FROM mysql.user WHERE user='{db_name}'").split() == ["%"]
    bench.run("drop-site", other, stdin=f"{bench.mariadb.root_password}\n")
    archived = bench.path / "archived" / "sites" / other
    assert list((archived / "private" / "backups").glob("*-s2_local-database.sql.gz"))
    assert not (bench.path / "sites" / other).exists()
    assert db_name not in bench.mariadb.sql("SHOW DATABASES")


def test_root_password_is_written_nowhere_in_the_bench(bench: Bench, site: str) -> None:
    secret = bench.mariadb.root_password.encode()
    for path in bench.path.rglob("*"):
        if path.is_file() and not path.is_symlink() and "env" not in path.relative_to(bench.path).parts[:1]:
            assert secret not in path.read_bytes(), path


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_socketio_listens_on_socketio_port(bench: Bench) -> None:
    port = json.loads((bench.path / "sites" / "common_site_config.json").read_text())["socketio_port"]
    node = subprocess.Popen(["node", "apps/frappe/socketio.js"], cwd=bench.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/socket.io/", timeout=2) as response:
                    return bool(json.loads(response.read())["status"] == "ok")
            except OSError:
                return False

        wait_for(answers, 20, "socketio.js")
    finally:
        stop(node)


def _started(bench: Bench, *args: str) -> subprocess.Popen[bytes]:
    """`bench ARGS` in the background, in its own process group, output to logs/<first arg>.log."""
    assert BENCH, "bench (PyPI frappe-bench) is not on PATH"
    with open(bench.path / "logs" / f"{args[0]}.log", "wb") as log:
        return subprocess.Popen([BENCH, *args], cwd=bench.path, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def test_serve_answers_through_the_real_bench_cli(bench: Bench, site: str) -> None:
    """The Procfile's `web: bench serve --port N`: bench passes it to frappe, which serves the site."""
    port = free_port()
    proc = _started(bench, "serve", "--port", str(port))
    try:
        def ping() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/method/ping", timeout=2) as response:
                    return bool(json.loads(response.read()) == {"message": "pong"})
            except OSError:
                return False

        wait_for(ping, 30, "bench serve")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": SITE})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "ledger" in response.read().decode()
    finally:
        stop(proc)


def test_watch_rebuilds_a_changed_bundle(bench: Bench) -> None:
    """The Procfile's `watch: bench watch`: a changed bundle source gets a new fingerprint in assets.json."""
    node_modules_as_yarn_leaves_them(bench)
    bench.run("build")
    manifest = bench.path / "sites" / "assets" / "assets.json"
    before = json.loads(manifest.read_text())["ledger.bundle.js"]
    source = bench.path / "apps" / "ledger" / "ledger" / "public" / "js" / "ledger.bundle.js"
    original = source.read_text()
    proc = _started(bench, "watch")
    log = bench.path / "logs" / "watch.log"
    try:
        wait_for(lambda: "Watching for changes" in log.read_text(errors="replace"), 30, "bench watch to start")
        source.write_text(original + "\n// changed while watched\n")
        wait_for(lambda: json.loads(manifest.read_text())["ledger.bundle.js"] != before, 20, "the rebuild")
        assert proc.poll() is None, log.read_text(errors="replace")
    finally:
        stop(proc)
        source.write_text(original)
        bench.run("build")
