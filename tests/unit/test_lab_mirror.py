"""Reading the Debian mirror from a machine's apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import LabError
from provision.lab.mirror import (
    AptSource,
    debian_sources,
    machine_sources,
    parse_deb822,
    parse_one_line,
    render_sources_list,
)

pytestmark = pytest.mark.unit

DEB822 = """\
Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://vendor.example/node
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/vendor.gpg

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm-backports
Components: main
Enabled: no
"""

ONE_LINE = """\
# a comment
deb http://mirror.example/debian bookworm main non-free-firmware
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m2.example/debian bookworm-updates main
deb [signed-by=/etc/apt/keyrings/docker.asc] https://docker.example/linux/debian bookworm stable
deb-src http://mirror.example/debian bookworm main
"""


def test_deb822_keeps_debian_entries_only() -> None:
    sources = parse_deb822(DEB822)
    assert AptSource("http://mirror.example/debian/", "bookworm", ("main", "contrib")) in sources
    assert AptSource("http://mirror.example/debian-security", "bookworm-security", ("main",)) in sources
    assert all("vendor" not in s.uri for s in sources)
    assert all(s.suite != "bookworm-backports" for s in sources)


def test_one_line_format() -> None:
    sources = parse_one_line(ONE_LINE)
    assert sources == [
        AptSource("http://mirror.example/debian", "bookworm", ("main", "non-free-firmware")),
        AptSource("http://m2.example/debian", "bookworm-updates", ("main",)),
    ]


def test_suites_move_to_the_wanted_codename_and_third_party_suites_drop() -> None:
    found = [
        AptSource("http://m.example/debian/", "trixie", ("main",)),
        AptSource("http://m.example/debian", "trixie-updates", ("main",)),
        AptSource("http://m.example/debian-security", "trixie-security", ("main",)),
        AptSource("http://m.example/debian", "trixie-backports", ("main",)),
        AptSource("https://docker.example", "bookworm", ("stable",)),
        AptSource("https://n.example", "nodistro", ("main",)),
    ]
    assert debian_sources(found, "bookworm") == [
        AptSource("http://m.example/debian", "bookworm", ("main",)),
        AptSource("http://m.example/debian", "bookworm-updates", ("main",)),
        AptSource("http://m.example/debian-security", "bookworm-security", ("main",)),
    ]


def test_machine_sources_reads_both_files(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text("deb http://nope.example/debian bookworm main\n")
    sources = machine_sources("bookworm", tmp_path)
    assert [s.suite for s in sources] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert render_sources_list(sources).splitlines()[0] == "deb http://mirror.example/debian bookworm main contrib"


def test_no_debian_mirror_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("# nothing\n")
    with pytest.raises(LabError, match="no Debian mirror"):
        machine_sources("bookworm", tmp_path)
