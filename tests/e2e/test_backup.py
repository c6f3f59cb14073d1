"""``provision backup`` / ``restore`` / ``cron`` end to end: 2 lab hosts, 3 sites, one deploy for the module.

The tests run in order on the same benches (each leaves the sites serving): back up everything
with files, restore deleted rows and a file, a truncated dump that must not reach the live site,
a failing site among good ones, a full disk then a flipped byte in the resumed pull, the cron
entry run as cron runs it, verify by restore (a dump that lost a table), and no secret anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabHandle
from .test_deploy import (  # noqa: F401  (fixtures are found by name)
    ADMIN_PASSWORD,
    DB_ROOT_PASSWORD,
    SITES,
    deploy,
    deploy_lab,
    failures,
    git_server,
    http,
    project,
)

pytestmark = pytest.mark.e2e

OUTPUTS: list[str] = []  # everything the commands printed, for the secrets check at the end
ENCRYPTION_KEY = "5e0f" * 16


@pytest.fixture(scope="module")
def bench(deploy_lab: LabHandle, project: Path) -> Path:  # noqa: F811
    """The deployed benches, with backup variables added to the inventory."""
    with open(project / "inventory.yml", "a") as inventory:
        inventory.write("        keep_last: 50\n"
                        "        backup_hooks:\n"
                        "          post_backup: cat > last-summary.json\n"
                        "          on_backup_failure: cat > last-failure.json\n")
    result = deploy(project)
    assert result.returncode == 0, failures(result)
    return project


VAULT_PASSWORD_FILE = ".vault-pass"  # where the deploy fixture puts the password of a vaulted inventory


def provision(directory: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if (directory / VAULT_PASSWORD_FILE).exists():
        env["PROVISION_VAULT_PASSWORD_FILE"] = str(directory / VAULT_PASSWORD_FILE)
    result = subprocess.run([sys.executable, "-m", "provision", *args], cwd=directory, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def site_events(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] == "backup_site":
                found[event["site"]] = event
    return found


def site_config(lab: LabHandle, host: str, site: str) -> dict[str, Any]:
    text = lab.ssh(host, f"cat /home/frappe/shared/sites/{site}/site_config.json").stdout
    return dict(json.loads(text))


def sql(lab: LabHandle, host: str, site: str, query: str) -> str:
    database = site_config(lab, host, site)["db_name"]
    return lab.ssh(host, f"mariadb -N -e {shlex.quote(query)} {database}").stdout.strip()


def entries(lab: LabHandle, host: str, site: str) -> list[dict[str, Any]]:
    status, body = http(lab.host(host).address, "/api/method/ledger.api.entries", site)
    assert status == 200, body
    return list(json.loads(body)["message"])


def latest(directory: Path, host: str, site: str, root: Path | None = None) -> Path:
    site_path = (root or directory / "backups") / "prod" / host / site
    names = sorted(p for p in site_path.iterdir() if re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", p.name))
    return names[-1]


def rewrite_manifest_entry(backup: Path, name: str) -> None:
    """Make the manifest describe the file as it now is (a backup damaged at its source, not in transit)."""
    manifest = json.loads((backup / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == name:
            data = (backup / name).read_bytes()
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (backup / "manifest.json").write_text(json.dumps(manifest))


def test_backup_of_every_site_with_files_matches_its_manifests(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    lab = deploy_lab
    for account in ("alpha", "beta", "gamma"):
        status, _ = http(lab.host("lab1").address, f"/api/method/ledger.api.add_entry?account={account}&amount=5",
                         "site1.local")
        assert status == 200
    lab.ssh("lab1", "cd /home/frappe/shared/sites/site1.local && echo 'hello from site1' > public/files/note.txt && "
                    "echo private > private/files/secret-plan.txt && chown -R frappe: public private")
    result = provision(bench, "backup", "prod", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    events = site_events(result)
    assert sorted(events) == ["site1.local", "site2.local", "site3.local"]
    assert all(e["status"] == "ok" for e in events.values()), events
    for host, sites in SITES.items():
        for site in sites:
            backup = latest(bench, host, site)
            manifest = json.loads((backup / "manifest.json").read_text())
            assert manifest["verified"] and manifest["site"] == site and manifest["host"] == host
            names = sorted(p.name for p in backup.iterdir() if p.name != "manifest.json")
            assert names == sorted(f["name"] for f in manifest["files"])
            assert any(n.endswith("-files.tar") for n in names) and any(n.endswith("-private-files.tar") for n in names)
            for entry in manifest["files"]:
                data = (backup / entry["name"]).read_bytes()
                assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
            assert {a["name"] for a in manifest["apps"]} == {"frappe", "ledger"}
            assert all(len(a["commit"]) == 40 for a in manifest["apps"])
            assert "tabLedger Entry" in manifest["tables"]
            assert "db_password" not in manifest["site_config"] and "db_name" in manifest["site_config"]
            leftover = lab.ssh(host, f"ls -A /home/frappe/provision-backups/{site}").stdout.strip()
            assert leftover == "", f"the host kept its copy of {site}: {leftover}"
    summary = json.loads((bench / "last-summary.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == 0 and not (bench / "last-failure.json").exists()
    counts = json.loads((latest(bench, "lab1", "site1.local") / "manifest.json").read_text())["tables"]
    assert counts["tabLedger Entry"][0] >= 3


def test_restore_from_latest_brings_back_deleted_rows_and_files(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    lab = deploy_lab
    before_rows = entries(lab, "lab1", "site1.local")
    before_db = site_config(lab, "lab1", "site1.local")["db_name"]
    sql(lab, "lab1", "site1.local", "DELETE FROM `tabLedger Entry` WHERE account IN ('alpha', 'beta')")
    lab.ssh("lab1", "rm /home/frappe/shared/sites/site1.local/public/files/note.txt")
    assert len(entries(lab, "lab1", "site1.local")) == len(before_rows) - 2
    assert http(lab.host("lab1").address, "/files/note.txt", "site1.local")[0] == 404

    refused = provision(bench, "restore", "lab1", "site1.local", "--from", "latest")
    assert refused.returncode == 4 and "--force" in refused.stderr

    commands: list[str] = []
    stop = threading.Event()

    def watch_ps() -> None:  # every process on this machine, the lab hosts' included (their PID namespaces nest)
        while not stop.is_set():
            commands.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_ps)
    watcher.start()
    try:
        result = provision(bench, "restore", "lab1", "site1.local", "--from", "latest", "--force")
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stdout + result.stderr
    OUTPUTS.extend(commands)
    assert entries(lab, "lab1", "site1.local") == before_rows
    assert sql(lab, "lab1", "site1.local", "SELECT COUNT(*) FROM `tabLedger Entry` WHERE account IN ('alpha','beta')") \
        == "2"
    assert http(lab.host("lab1").address, "/files/note.txt", "site1.local") == (200, "hello from site1\n")
    assert lab.ssh("lab1", "cat /home/frappe/shared/sites/site1.local/private/files/secret-plan.txt").stdout \
        == "private\n"
    after_db = site_config(lab, "lab1", "site1.local")["db_name"]
    assert after_db != before_db
    databases = lab.ssh("lab1", "mariadb -N -e 'SHOW DATABASES'").stdout.split()
    assert after_db in databases and before_db not in databases  # the old one dropped once the switch was proven
    kinds = [json.loads((p / "manifest.json").read_text()).get("kind")
             for p in (bench / "backups/prod/lab1/site1.local").iterdir() if (p / "manifest.json").exists()]
    assert "safety" in kinds
    assert http(lab.host("lab1").address, "/api/method/ping", "site2.local")[0] == 200


def test_a_truncated_dump_is_refused_and_the_site_keeps_its_data(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    lab = deploy_lab
    backup = latest(bench, "lab1", "site2.local")
    dump = next(backup.glob("*-database.sql.gz"))
    original = dump.read_bytes()
    rows_before = sql(lab, "lab1", "site2.local", "SELECT COUNT(*) FROM `tabLedger Entry`")
    status, _ = http(lab.host("lab1").address, "/api/method/ledger.api.add_entry?account=after-backup", "site2.local")
    assert status == 200
    try:
        dump.write_bytes(original[: len(original) // 2])
        cut = provision(bench, "restore", "lab1", "site2.local", "--force")
        assert cut.returncode == 2 and "damaged, nothing was restored" in cut.stderr + cut.stdout
        # Damaged at its source (the manifest agrees with the file): the dump's own end is checked too.
        dump.write_bytes(gzip.compress(gzip.decompress(original).rsplit(b"-- Dump completed", 1)[0]))
        rewrite_manifest_entry(backup, dump.name)
        unfinished = provision(bench, "restore", "lab1", "site2.local", "--force")
        assert unfinished.returncode == 2 and "no completion line" in unfinished.stderr + unfinished.stdout
    finally:
        dump.write_bytes(original)
        rewrite_manifest_entry(backup, dump.name)
    assert sql(lab, "lab1", "site2.local", "SELECT COUNT(*) FROM `tabLedger Entry`") == str(int(rows_before) + 1)
    assert any(e["account"] == "after-backup" for e in entries(lab, "lab1", "site2.local"))
    assert not re.search(r"_r\d{12}", lab.ssh("lab1", "mariadb -N -e 'SHOW DATABASES'").stdout.replace(
        site_config(lab, "lab1", "site1.local")["db_name"], ""))


def test_a_failing_site_is_reported_and_the_others_are_backed_up(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    lab = deploy_lab
    lab.ssh("lab2", "chmod 000 /usr/bin/mariadb-dump")
    try:
        result = provision(bench, "backup", "prod", "--json", "--db-only")
    finally:
        lab.ssh("lab2", "chmod 755 /usr/bin/mariadb-dump")
    assert result.returncode == 2
    events = site_events(result)
    assert events["site3.local"]["status"] == "failed" and "bench backup exited" in events["site3.local"]["msg"]
    assert events["site1.local"]["status"] == events["site2.local"]["status"] == "ok"
    assert re.search(r"FAILED\s+prod/lab2/site3.local", result.stderr)
    failure = json.loads((bench / "last-failure.json").read_text())
    assert failure["failed"] == 1 and failure["ok"] == 2


def test_prune_dry_run_says_what_would_go_and_deletes_nothing(bench: Path) -> None:
    stored = sorted(str(p) for p in (bench / "backups" / "prod").glob("*/*/*"))
    result = provision(bench, "backup", "prune", "prod", "--dry-run", "-e", "keep_last=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(re.findall(r"^keep\s+prod/lab\d/site\d.local/\S+\s+\(newest verified", result.stdout, re.M)) == 3
    assert re.search(r"^would prune prod/lab1/site1.local/\S+\s+\(not one of the 1 newest", result.stdout, re.M)
    assert sorted(str(p) for p in (bench / "backups" / "prod").glob("*/*/*")) == stored


@pytest.fixture
def small_disk() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="provision-backup-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        directory.rmdir()


def test_disk_full_then_a_flipped_byte_in_the_resumed_pull(deploy_lab: LabHandle, bench: Path,  # noqa: F811
                                                           small_disk: Path) -> None:
    lab = deploy_lab
    site = ["--site", "site1.local", "--backup-dir", str(small_disk), "--json"]
    first = provision(bench, "backup", "prod", *site, "--db-only")
    assert first.returncode == 0, first.stdout + first.stderr
    earlier = latest(bench, "lab1", "site1.local", small_disk)
    earlier_files = {p.name: p.read_bytes() for p in earlier.iterdir()}
    lab.ssh("lab1", "head -c 3000000 /dev/urandom > /home/frappe/shared/sites/site1.local/public/files/big.bin && "
                    "chown frappe: /home/frappe/shared/sites/site1.local/public/files/big.bin")
    try:
        full = provision(bench, "backup", "prod", *site, "--with-files")
        assert full.returncode == 2
        message = site_events(full)["site1.local"]["msg"]
        assert "site1.local" in message and "no space left on the control host" in message
        assert str(small_disk) in message and "nothing pruned" in message
        assert {p.name: p.read_bytes() for p in earlier.iterdir()} == earlier_files
        partial = next(small_disk.glob("prod/lab1/site1.local/*.partial"))
        pulled = max(partial.glob("*-files.tar"), key=lambda p: p.stat().st_size)
        assert pulled.stat().st_size > 1000
        with open(pulled, "r+b") as f:  # a byte flipped in what was already pulled
            f.seek(700)
            byte = f.read(1)
            f.seek(700)
            f.write(bytes([byte[0] ^ 0xFF]))
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        again = provision(bench, "backup", "prod", *site, "--with-files")
        assert again.returncode == 0, again.stdout + again.stderr
        event = site_events(again)["site1.local"]
        assert pulled.name in event["repulled"] and "completed the earlier" in event["msg"]
        completed = small_disk / "prod/lab1/site1.local" / partial.name.removesuffix(".partial")
        manifest = json.loads((completed / "manifest.json").read_text())
        for entry in manifest["files"]:
            assert hashlib.sha256((completed / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
        assert not list(small_disk.glob("prod/lab1/site1.local/*.partial"))
        assert lab.ssh("lab1", "ls -A /home/frappe/provision-backups/site1.local").stdout.strip() == ""
    finally:
        lab.ssh("lab1", "rm -f /home/frappe/shared/sites/site1.local/public/files/big.bin")


def test_the_cron_entry_runs_as_cron_runs_it(bench: Path) -> None:
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    original = saved.stdout if saved.returncode == 0 else None
    vault = [f"--vault-password-file={bench / VAULT_PASSWORD_FILE}"] if (bench / VAULT_PASSWORD_FILE).exists() \
        else []
    try:
        install = provision(bench, "cron", "install", "backup", "prod", "--at", "03:17", "--keep-logs", "2",
                            "-i", "inventory.yml", *vault)
        assert install.returncode == 0 and "crontab changed" in install.stdout, install.stdout + install.stderr
        table = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=True).stdout
        again = provision(bench, "cron", "install", "backup", "prod", "--at", "03:17", "--keep-logs", "2",
                          "-i", "inventory.yml", *vault)
        assert again.returncode == 0 and "crontab unchanged" in again.stdout
        assert subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout == table
        line = table.splitlines()[table.splitlines().index("# provision:backup:prod") + 1]
        assert line.startswith("17 3 * * * ")
        command = line.split(None, 5)[5]
        env = {"HOME": "/root", "LOGNAME": "root", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}  # cron's own
        for _ in range(3):
            ran = subprocess.run(["/bin/sh", "-c", command], cwd="/root", env=env, capture_output=True, text=True,
                                 timeout=600)
            assert ran.returncode == 0, ran.stdout + ran.stderr
        logs = sorted((bench / "backups" / "logs").glob("backup-prod-*.log"))
        assert len(logs) == 2  # one log per run, the last 2 kept
        text = logs[-1].read_text()
        OUTPUTS.append(text)
        assert len(re.findall(r"^ok\s+prod/lab\d/site\d.local", text, re.M)) == 3
        listed = provision(bench, "cron", "list")
        assert "backup:prod: 17 3 * * *" in listed.stdout
        removed = provision(bench, "cron", "remove", "backup", "prod")
        assert removed.returncode == 0
        assert "provision:backup:prod" not in subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout
    finally:
        if original is None:
            subprocess.run(["crontab", "-r"], capture_output=True)
        else:
            subprocess.run(["crontab", "-"], input=original, text=True, check=True)


def test_verify_restores_into_a_scratch_database_and_names_a_lost_table(deploy_lab: LabHandle,  # noqa: F811
                                                                         bench: Path) -> None:
    lab = deploy_lab
    good = provision(bench, "backup", "verify", "prod")
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(re.findall(r"^ok\s+prod/lab\d/site\d.local/", good.stdout, re.M)) == 3
    backup = latest(bench, "lab2", "site3.local")
    dump = next(backup.glob("*-database.sql.gz"))
    original = dump.read_bytes()
    text = gzip.decompress(original).decode()
    lost = re.sub(r"(?ms)^-- Table structure for table `tabLedger Entry`.*?(?=^-- Table structure|^/\*!40103 SET TIME)",
                  "", text)
    assert lost != text
    try:
        dump.write_bytes(gzip.compress(lost.encode()))
        rewrite_manifest_entry(backup, dump.name)
        bad = provision(bench, "backup", "verify", "prod", "--site", "site3.local")
        assert bad.returncode == 2
        assert "table tabLedger Entry is missing" in bad.stdout, bad.stdout + bad.stderr
    finally:
        dump.write_bytes(original)
        rewrite_manifest_entry(backup, dump.name)
    leftovers = lab.ssh("lab2", "mariadb -N -e 'SHOW DATABASES'").stdout
    assert not re.search(r"_v\d{12}", leftovers)


def test_restore_to_a_new_site_beside_the_old_one(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    lab = deploy_lab
    new = "site3-copy.local"
    result = provision(bench, "restore", "lab2", "site3.local", "--to-site", new)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        config = site_config(lab, "lab2", new)
        assert config["db_name"] != site_config(lab, "lab2", "site3.local")["db_name"]
        manifest = json.loads((latest(bench, "lab2", "site3.local") / "manifest.json").read_text())
        low, high = manifest["tables"]["tabLedger Entry"]
        assert low <= int(sql(lab, "lab2", new, "SELECT COUNT(*) FROM `tabLedger Entry`")) <= high
        listed = lab.ssh("lab2", f"su - frappe -c 'cd ~/frappe-bench && bench --site {new} list-apps'")
        assert "ledger" in listed.stdout
        assert http(lab.host("lab2").address, "/api/method/ping", "site3.local")[0] == 200
        again = provision(bench, "restore", "lab2", "site3.local", "--to-site", new)
        assert again.returncode == 4 and "already exists" in again.stderr
    finally:
        database = site_config(lab, "lab2", new)["db_name"] if result.returncode == 0 else None
        if database:
            lab.ssh("lab2", f"mariadb -e 'DROP DATABASE IF EXISTS `{database}`; DROP USER IF EXISTS "
                            f"`{database}`@`localhost`'")
        lab.ssh("lab2", f"rm -rf /home/frappe/shared/sites/{new} /home/frappe/frappe-bench/sites/{new}")


def test_restore_migrates_when_the_code_differs_from_the_backup(deploy_lab: LabHandle,  # noqa: F811
                                                               bench: Path) -> None:
    backup = latest(bench, "lab2", "site3.local")
    manifest_path = backup / "manifest.json"
    original = manifest_path.read_text()
    manifest = json.loads(original)
    for app in manifest["apps"]:
        if app["name"] == "ledger":
            app["commit"] = "0" * 40  # as if the backup had been taken on older code
    manifest_path.write_text(json.dumps(manifest))
    try:
        result = provision(bench, "restore", "lab2", "site3.local", "--from", backup.name, "--force")
    finally:
        manifest_path.write_text(original)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migrated (the apps differ from the backup's)" in result.stdout
    assert http(deploy_lab.host("lab2").address, "/api/method/ping", "site3.local")[0] == 200


def test_encrypted_backups_hold_no_plaintext_and_restore_with_the_key(deploy_lab: LabHandle,  # noqa: F811
                                                                        bench: Path) -> None:
    lab = deploy_lab
    key_file = bench / "backup.key"
    key_file.write_text(ENCRYPTION_KEY + "\n")
    key_file.chmod(0o600)
    encrypt = ["-e", "backup_encrypt=true", "-e", f"backup_encrypt_key_file={key_file}"]
    result = provision(bench, "backup", "prod", "--site", "site2.local", *encrypt)
    assert result.returncode == 0, result.stdout + result.stderr
    backup = latest(bench, "lab1", "site2.local")
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    assert {p.name for p in backup.iterdir()} == {"manifest.json"} | {f"{f['name']}.enc" for f in manifest["files"]}
    for sealed in backup.glob("*.enc"):
        data = sealed.read_bytes()
        assert not data.startswith(b"\x1f\x8b") and b"CREATE TABLE" not in data and b"site2.local" not in data
    without_key = provision(bench, "restore", "lab1", "site2.local", "--force")
    assert without_key.returncode == 2 and "is encrypted" in without_key.stderr + without_key.stdout
    rows = entries(lab, "lab1", "site2.local")
    sql(lab, "lab1", "site2.local", "DELETE FROM `tabLedger Entry`")
    restored = provision(bench, "restore", "lab1", "site2.local", "--force", *encrypt)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert entries(lab, "lab1", "site2.local") == rows


def test_no_secret_in_any_output_manifest_or_log(deploy_lab: LabHandle, bench: Path) -> None:  # noqa: F811
    secrets = [DB_ROOT_PASSWORD, ADMIN_PASSWORD, ENCRYPTION_KEY]
    if (bench / VAULT_PASSWORD_FILE).exists():
        secrets.append((bench / VAULT_PASSWORD_FILE).read_text().strip())
    for host, sites in SITES.items():
        secrets += [str(site_config(deploy_lab, host, site)["db_password"]) for site in sites]
    texts = list(OUTPUTS)
    for path in (bench / "backups").rglob("*"):
        if path.is_file() and (path.name.endswith((".json", ".log")) and not path.name.endswith("_backup.json")):
            texts.append(path.read_text())
    texts += [(bench / name).read_text() for name in ("last-summary.json", "last-failure.json")
              if (bench / name).exists()]
    assert len(texts) > 20
    for secret in secrets:
        assert len(secret) >= 8
        for text in texts:
            assert secret not in text
