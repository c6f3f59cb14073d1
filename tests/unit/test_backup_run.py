"""The control host's side of a run: its lock, its hooks, and needs_migrate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provision.backup.hooks import hook_commands, run_hook
from provision.backup.restore import needs_migrate
from provision.backup.run import control_lock
from provision.errors import BackupError, InventoryError

pytestmark = pytest.mark.unit


def test_two_runs_never_overlap(tmp_path: Path) -> None:
    with control_lock(tmp_path):
        with pytest.raises(BackupError, match=r"another backup run holds .*pid"), control_lock(tmp_path):
            pass
        # Another process is refused too (flock is per open file, so this is what cron would meet).
        other = subprocess.run([sys.executable, "-c", (
            "import sys; from pathlib import Path; from provision.backup.run import control_lock\n"
            "try:\n    with control_lock(Path(sys.argv[1])): pass\nexcept Exception as e: print(e); sys.exit(2)"),
            str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert other.returncode == 2 and "another backup run holds" in other.stdout
    with control_lock(tmp_path):  # free again once the holder is done
        pass


def test_hooks_get_the_summary_on_stdin(tmp_path: Path) -> None:
    hooks = hook_commands({"backup_hooks": {"post_backup": "cat > got.json; echo $PROVISION_HOOK"}})
    outcome = run_hook("post_backup", hooks["post_backup"], {"ok": 3, "failed": 0}, cwd=tmp_path,
                       backup_dir=tmp_path)
    assert (outcome.returncode, outcome.output) == (0, "post_backup")
    assert json.loads((tmp_path / "got.json").read_text()) == {"ok": 3, "failed": 0}
    slow = run_hook("pre_backup", "sleep 5", {}, cwd=tmp_path, backup_dir=tmp_path, timeout=0.2)
    assert slow.returncode == -1 and "timed out" in slow.output


def test_bad_hook_settings_are_bad_input() -> None:
    with pytest.raises(InventoryError, match="unknown hook 'post'"):
        hook_commands({"backup_hooks": {"post": "true"}})
    with pytest.raises(InventoryError, match="must be a mapping"):
        hook_commands({"backup_hooks": "true"})
    assert hook_commands({}) == {}


def test_migrate_only_when_the_code_differs_from_the_backup() -> None:
    apps = [{"name": "frappe", "commit": "a" * 40, "version": "15.50.0"}, {"name": "ledger", "commit": "b" * 40}]
    assert not needs_migrate({"apps": apps}, apps)
    assert needs_migrate({"apps": apps}, [apps[0], {"name": "ledger", "commit": "c" * 40}])
    assert needs_migrate({"apps": apps[:1]}, apps)


def test_row_counts_are_compared_with_the_manifest_by_table() -> None:
    from provision.backup.remote_restore import compare_counts, new_db_name

    expected = {"tabNote": [3, 3], "tabLedger Entry": [10, 12]}
    assert compare_counts({"tabNote": 3, "tabLedger Entry": 11}, expected) == []
    assert compare_counts({"tabLedger Entry": 9, "tabExtra": 1}, expected) == [
        "table tabLedger Entry has 9 rows, the manifest says 10-12", "table tabNote is missing",
        "table tabExtra is not in the manifest"]
    assert new_db_name({"mode": "switch", "suffix": "261201023000"}, "_0123456789abcdef") == \
        "_0123456789abcdef_r261201023000"
    assert new_db_name({"mode": "switch", "suffix": "261202023000"}, "_0123456789abcdef_r261201023000") == \
        "_0123456789abcdef_r261202023000"  # a second restore does not grow the name
    assert new_db_name({"mode": "scratch", "suffix": "261201023000"}, "_abc").startswith("_abc_v")
