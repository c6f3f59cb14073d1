"""Crontab entries for backups: rendering, idempotent install, removal, other lines untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.backup.cron import backup_entries, keep_last_logs, managed_entries, merge_entries, parse_at
from provision.errors import OptionsError

pytestmark = pytest.mark.unit


def entries(**kw: object) -> list:  # type: ignore[type-arg]
    options: dict = {"project_dir": Path("/srv/ops"), "inventory": Path("/srv/ops/inventory.yml"),  # type: ignore[type-arg]
                     "log_dir": Path("/srv/ops/backups/logs"), "keep_logs": 14, "verify_weekly": False,
                     "python": "/opt/provision/bin/python", **kw}
    return backup_entries("prod", "02:30", **options)


def test_the_entry_runs_the_backup_in_the_project_with_absolute_paths() -> None:
    [entry] = entries()
    assert entry.name == "backup:prod"
    assert entry.line == ("30 2 * * * cd /srv/ops && /opt/provision/bin/python -m provision backup prod "
                          "-i /srv/ops/inventory.yml --log-dir /srv/ops/backups/logs --keep-logs 14 "
                          ">/dev/null 2>>/srv/ops/backups/logs/cron-errors.log")
    weekly = entries(verify_weekly=True)[1]
    assert weekly.name == "backup-verify:prod"
    assert weekly.line.startswith("30 4 * * 0 cd /srv/ops && /opt/provision/bin/python -m provision backup "
                                  "verify prod ")


def test_install_is_idempotent_and_keeps_other_lines() -> None:
    current = "MAILTO=ops@example.com\n# nightly report\n5 6 * * * /usr/local/bin/report\n"
    once = merge_entries(current, entries())
    assert once.startswith(current)
    assert merge_entries(once, entries()) == once
    moved = merge_entries(once, backup_entries("prod", "03:15", project_dir=Path("/srv/ops"),
                                               inventory=Path("/srv/ops/inventory.yml"),
                                               log_dir=Path("/srv/ops/backups/logs"), keep_logs=14,
                                               verify_weekly=False, python="/opt/provision/bin/python"))
    assert moved.count("# provision:backup:prod") == 1 and "15 3 * * *" in moved and "30 2 * * *" not in moved
    assert [e.name for e in managed_entries(moved)] == ["backup:prod"]
    assert merge_entries(moved, entries(), remove=True) == current


def test_bad_times_are_refused() -> None:
    assert parse_at("7:05") == (7, 5)
    for bad in ("24:00", "2:60", "0230", "noon"):
        with pytest.raises(OptionsError, match="HH:MM"):
            parse_at(bad)


def test_only_the_last_logs_are_kept(tmp_path: Path) -> None:
    for day in range(1, 6):
        (tmp_path / f"backup-prod-2026120{day}T023000Z.log").write_text("x")
    (tmp_path / "verify-prod-20261201T023000Z.log").write_text("x")
    removed = keep_last_logs(tmp_path, "backup-prod", 3)
    assert [p.name for p in removed] == ["backup-prod-20261201T023000Z.log", "backup-prod-20261202T023000Z.log"]
    assert len(list(tmp_path.glob("*.log"))) == 4


def test_a_vaulted_inventory_names_its_password_file_on_the_entry() -> None:
    [entry] = entries(vault_password_file=Path("/srv/ops/.vault-pass"))
    assert " --keep-logs 14 --vault-password-file /srv/ops/.vault-pass >/dev/null" in entry.line
