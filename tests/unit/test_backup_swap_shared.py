"""Restoring files into a folder that cannot be renamed (a multi-server bench's bind mount or link to the shared
store): the contents are swapped inside it, and put back when the restore fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provision.backup.remote_restore import drop_work, swap_files, undo_files

pytestmark = pytest.mark.unit


def tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def setup(tmp_path: Path) -> tuple[Path, Path, str]:
    share = tmp_path / "share" / "s1" / "public" / "files"
    share.mkdir(parents=True)
    (share / "old.txt").write_text("old")
    site = tmp_path / "sites" / "s1"
    (site / "public").mkdir(parents=True)
    (site / "public" / "files").symlink_to(share)
    source = tmp_path / "tarsrc" / "s1" / "public" / "files"
    source.mkdir(parents=True)
    (source / "restored.txt").write_text("restored")
    tar = tmp_path / "files.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", str(tmp_path / "tarsrc"), "./s1/public/files"], check=True)
    return share, site, str(tar)


def test_contents_swap_inside_the_shared_folder_and_the_link_stays(tmp_path: Path) -> None:
    share, site, tar = setup(tmp_path)
    stage = site / ".provision-restore-x"
    stage.mkdir()
    swapped = swap_files(str(site), [tar], str(stage))
    assert (site / "public" / "files").is_symlink()
    assert {k: v for k, v in tree(share).items() if not k.startswith(".provision")} == {"restored.txt": "restored"}
    drop_work(swapped)
    assert tree(share) == {"restored.txt": "restored"}


def test_a_failed_restore_puts_the_shared_files_back(tmp_path: Path) -> None:
    share, site, tar = setup(tmp_path)
    stage = site / ".provision-restore-y"
    stage.mkdir()
    swapped = swap_files(str(site), [tar], str(stage))
    undo_files(swapped)
    assert tree(share) == {"old.txt": "old"} and (site / "public" / "files").is_symlink()
