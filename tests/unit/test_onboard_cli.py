"""``provision onboard`` options: bad input exits 4 before any host is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.cli import main

pytestmark = pytest.mark.unit

# TEST-NET-1: never routed, so a test that wrongly connected would fail loudly instead of reaching a host.
ADDRESS = "192.0.2.10"


def onboard(tmp_path: Path, *args: str) -> int:
    return main(["onboard", ADDRESS, "--group", "prod", "-i", str(tmp_path / "inventory.yml"), *args])


@pytest.mark.parametrize("args", [
    ["--name", "App_3"],
    ["--name", "app3", "--deploy-user", "Bad User"],
    ["--name", "app3", "--timezone", "../../etc/shadow"],
    ["--name", "app3", "--port", "0"],
    ["--name", "app3", "--revert-after", "3"],
    ["--name", "app3", "--password-file", "/nonexistent/pw"],
    ["--name", "app3", "--accept-host-key", "SHA256:short", "--password-file", "/nonexistent/pw"],
])
def test_bad_options_exit_4(tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert onboard(tmp_path, *args) == 4
    assert "Traceback" not in capsys.readouterr().err


def test_a_password_is_never_an_option(tmp_path: Path) -> None:
    # Not even as an abbreviation of --password-file (which would then be shown as a missing file's name).
    with pytest.raises(SystemExit) as caught:
        onboard(tmp_path, "--name", "app3", "--password", "hunter22")
    assert caught.value.code == 4


def test_an_empty_password_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("")
    assert onboard(tmp_path, "--name", "app3", "--password-file", str(tmp_path / "pw")) == 4
    assert "is empty" in capsys.readouterr().err


def test_a_malformed_fingerprint_is_refused_before_contact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("secret-password\n")
    assert onboard(tmp_path, "--name", "app3", "--password-file", str(tmp_path / "pw"),
                   "--accept-host-key", "SHA256:short", "--connect-timeout", "0.5") == 4
    assert "secret-password" not in capsys.readouterr().err
