"""The base image recipe: its hash names the cache, its command line builds it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from provision.lab.base import FRESH, build_argv, remove_stale_bases
from provision.lab.mirror import AptSource

pytestmark = pytest.mark.unit

SOURCES = [AptSource("http://m.example/debian", "bookworm", ("main",)),
           AptSource("http://m.example/debian-security", "bookworm-security", ("main",))]


def test_digest_changes_with_the_recipe_only() -> None:
    assert FRESH.digest() == dataclasses.replace(FRESH).digest()
    assert FRESH.digest() != dataclasses.replace(FRESH, packages=(*FRESH.packages, "git")).digest()
    assert FRESH.directory(Path("/b")).name == f"bookworm-fresh-{FRESH.digest()}"


def test_fresh_has_what_an_ssh_managed_server_has() -> None:
    for package in ("openssh-server", "sudo", "python3", "ca-certificates", "tini"):
        assert package in FRESH.packages


def test_build_argv_uses_mmdebstrap_and_the_given_mirror() -> None:
    argv = build_argv(FRESH, Path("/b/x.building"), SOURCES)
    assert argv[0] == "mmdebstrap"
    assert "--variant=minbase" in argv
    index = argv.index("bookworm")
    assert argv[index + 1:] == ["/b/x.building", "deb http://m.example/debian bookworm main",
                                "deb http://m.example/debian-security bookworm-security main"]
    assert any(a.startswith("--customize-hook=") and "useradd" in a for a in argv)


def test_remove_stale_bases_keeps_the_ones_in_use(tmp_path: Path) -> None:
    for name in ("bookworm-fresh-aaa", "bookworm-fresh-bbb", "bookworm-fresh-ccc.building"):
        (tmp_path / name).mkdir()
    (tmp_path / "bookworm-fresh-aaa.log").write_text("log")
    (tmp_path / "bookworm-fresh-bbb.log").write_text("log")
    removed = remove_stale_bases(tmp_path, {tmp_path / "bookworm-fresh-aaa"})
    assert [p.name for p in removed] == ["bookworm-fresh-bbb", "bookworm-fresh-bbb.log"]
    # a build in progress (maybe for another lab) is left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-fresh-aaa", "bookworm-fresh-aaa.log",
                                                          "bookworm-fresh-ccc.building"]
