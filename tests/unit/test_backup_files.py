"""Backup files on the control host: secrets out of the manifest, damaged files caught, encryption round trip."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from provision.backup.checks import check_file, check_gzip_dump, check_tar, sha256_file
from provision.backup.encrypt import decrypt_file, encrypt_file, load_key
from provision.backup.manifest import find_backup, parse_stamp, stamp, strip_secrets, write_json
from provision.errors import BackupError, InventoryError

pytestmark = pytest.mark.unit

DUMP = b"-- begin frappe metadata\nCREATE TABLE `tabNote` (x int);\nINSERT INTO `tabNote` VALUES (1);\n" \
       b"-- Dump completed on 2026-12-01  2:30:01\n"


def test_manifest_site_config_loses_every_secret() -> None:
    config = {
        "db_name": "_a1b2", "db_password": "s3cret-db", "db_type": "mariadb", "encryption_key": "k3y",
        "backup_encryption_key": "bk", "admin_password": "adm", "root_password": "r00t", "api_secret": "x",
        "s3_access_key_id": "AKIA", "mail_login": "ops", "limits": {"space": 5, "smtp_password": "pw"},
        "redis_cache": "redis://user:hunter22@cache:6379", "host_name": "https://erp.example.com",
        "developer_mode": 0, "github_token": "ghp_x", "keep_backups_for_hours": 24,
    }
    clean = strip_secrets(config)
    assert clean == {"db_name": "_a1b2", "db_type": "mariadb", "mail_login": "ops", "limits": {"space": 5},
                     "host_name": "https://erp.example.com", "developer_mode": 0, "keep_backups_for_hours": 24}
    text = json.dumps(clean)
    for secret in ("s3cret-db", "k3y", "adm", "r00t", "AKIA", "hunter22", "ghp_x", "pw"):
        assert secret not in text


def test_stamps_round_trip_and_reject_other_names() -> None:
    name = stamp(parse_stamp("20261201T023000Z"))  # type: ignore[arg-type]
    assert name == "20261201T023000Z"
    assert parse_stamp("20261201T023000Z-2") is not None
    assert parse_stamp("20261201T023000Z.partial") is None
    assert parse_stamp("notes") is None


def _dump(path: Path, content: bytes = DUMP) -> Path:
    path.write_bytes(gzip.compress(content))
    return path


def test_a_whole_dump_passes_and_damaged_ones_are_named(tmp_path: Path) -> None:
    good = _dump(tmp_path / "20261201_023000-site-database.sql.gz")
    assert check_gzip_dump(good) is None
    assert check_file(good, size=good.stat().st_size, sha256=sha256_file(good)) is None

    cut = tmp_path / "cut-database.sql.gz"
    cut.write_bytes(good.read_bytes()[:-12])
    assert "not a whole gzip file" in (check_gzip_dump(cut) or "")

    unfinished = _dump(tmp_path / "unfinished-database.sql.gz", DUMP.rsplit(b"-- Dump", 1)[0])
    assert "no completion line" in (check_gzip_dump(unfinished) or "")

    corrupt = tmp_path / "corrupt-database.sql.gz"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    corrupt.write_bytes(bytes(data))
    assert "sha256 differs" in (check_file(corrupt, size=len(data), sha256=sha256_file(good)) or "")
    assert check_gzip_dump(corrupt) is not None  # the gzip CRC catches it too

    assert "bytes, the host had" in (check_file(cut, size=good.stat().st_size, sha256=sha256_file(good)) or "")
    assert "missing" in (check_file(tmp_path / "nope.sql.gz", size=1, sha256="0") or "")


def test_tar_archives_are_listed_to_the_end(tmp_path: Path) -> None:
    archive = tmp_path / "files.tar"
    with tarfile.open(archive, "w") as tar:
        for index in range(3):
            payload = bytes(range(256)) * 40
            info = tarfile.TarInfo(f"./site/public/files/f{index}.bin")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    assert check_tar(archive) is None
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:15000])
    assert "not a whole tar archive" in (check_tar(cut) or "")


def test_encryption_round_trip_and_tamper_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32 + "\n")
    key = load_key({"backup_encrypt": True, "backup_encrypt_key_file": str(key_file)})
    assert key is not None and len(key) == 32
    assert load_key({"backup_encrypt": False}) is None
    assert load_key({"backup_encrypt": "false", "backup_encrypt_key_file": str(key_file)}) is None
    assert load_key({"backup_encrypt": "true", "backup_encrypt_key_file": str(key_file)}) == key
    monkeypatch.setenv("PROVISION_BACKUP_KEY", "cd" * 32)
    assert load_key({"backup_encrypt": True}) == bytes.fromhex("cd" * 32)
    monkeypatch.delenv("PROVISION_BACKUP_KEY")
    with pytest.raises(InventoryError, match="no key was given"):
        load_key({"backup_encrypt": True})

    plain = tmp_path / "big.bin"
    plain.write_bytes(bytes(range(256)) * 9000)  # > 2 pieces of 1 MiB
    sealed, back = tmp_path / "big.bin.enc", tmp_path / "back.bin"
    encrypt_file(plain, sealed, key)
    assert plain.read_bytes()[:4096] not in sealed.read_bytes()
    decrypt_file(sealed, back, key)
    assert back.read_bytes() == plain.read_bytes()
    cut = tmp_path / "cut.enc"
    cut.write_bytes(sealed.read_bytes()[: 1 << 20])  # a cut at a piece boundary must not pass as whole
    with pytest.raises(BackupError, match="does not decrypt"):
        decrypt_file(cut, tmp_path / "x", key)
    with pytest.raises(BackupError, match="does not decrypt"):
        decrypt_file(sealed, tmp_path / "y", bytes(32))


def test_find_backup_picks_the_newest_verified_or_a_named_one(tmp_path: Path) -> None:
    site = tmp_path / "prod" / "app1" / "erp.local"
    for name, verified in (("20261129T023000Z", True), ("20261130T023000Z", True), ("20261201T023000Z", False)):
        (site / name).mkdir(parents=True)
        write_json(site / name / "manifest.json", {"verified": verified})
    (site / "20261202T023000Z.partial").mkdir()
    assert find_backup(tmp_path, "app1", "erp.local", "latest").name == "20261130T023000Z"  # type: ignore[union-attr]
    assert find_backup(tmp_path, "app1", "erp.local", "20261129").name == "20261129T023000Z"  # type: ignore[union-attr]
    assert find_backup(tmp_path, "app1", "erp.local", "20261201T023000Z") is None
    assert find_backup(tmp_path, "app2", "erp.local", "latest") is None
