"""First contact against the session's real sshd on loopback: keys fetched without auth, prompt, pinning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provision.errors import HostKeyError
from provision.onboard import hostkey
from provision.onboard.flow import Onboarding, Request

from .conftest import SshServer

pytestmark = pytest.mark.integration


def openssh_fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def request(sshd: SshServer, tmp_path: Path, **kwargs: object) -> Request:
    return Request(address="127.0.0.1", port=sshd.port, name="node1", group="prod",
                   inventory=tmp_path / "inventory.yml", deploy_key=tmp_path / "key", **kwargs)  # type: ignore[arg-type]


def test_fetched_key_is_the_servers_and_no_login_is_attempted(sshd: SshServer) -> None:
    offset = len(sshd.log.read_text(errors="replace"))
    keys = hostkey.fetch_host_keys("127.0.0.1", sshd.port)
    assert openssh_fingerprint(Path(f"{sshd.host_key}.pub")) in [k.fingerprint for k in keys]
    log = sshd.log.read_text(errors="replace")[offset:]
    assert "Accepted" not in log and "Failed" not in log and "authenticating" not in log


def test_a_refused_prompt_pins_nothing_and_an_accepted_one_pins_atomically(sshd: SshServer, tmp_path: Path) -> None:
    questions: list[str] = []

    def refuse(question: str) -> bool:
        questions.append(question)
        return False

    onboarding = Onboarding(request(sshd, tmp_path, confirm=refuse), lambda line: None)
    with pytest.raises(HostKeyError, match="not confirmed; nothing was sent"):
        onboarding._first_contact()
    fingerprint = openssh_fingerprint(Path(f"{sshd.host_key}.pub"))
    assert fingerprint in questions[0]
    assert not (tmp_path / "known_hosts").exists()

    lines: list[str] = []
    Onboarding(request(sshd, tmp_path, confirm=lambda question: True), lines.append)._first_contact()
    pinned = hostkey.pinned_keys(tmp_path / "known_hosts", "127.0.0.1", sshd.port)
    assert [hostkey.fingerprint(key) for key in pinned.values()] == [fingerprint]
    assert questions[0].endswith(f"{fingerprint}?")
    assert lines[-1].startswith("     changed  host key: pin ")
    # Once pinned, nothing is asked and nothing changes.
    lines.clear()
    Onboarding(request(sshd, tmp_path, confirm=refuse), lines.append)._first_contact()
    assert lines == [f"          ok  host key: {fingerprint} pinned in {tmp_path / 'known_hosts'}"]
    assert len(questions) == 1


def test_check_mode_pins_nothing(sshd: SshServer, tmp_path: Path) -> None:
    fingerprint = openssh_fingerprint(Path(f"{sshd.host_key}.pub"))
    onboarding = Onboarding(request(sshd, tmp_path, check=True, accept_host_key=fingerprint), lambda line: None)
    onboarding._first_contact()
    assert not (tmp_path / "known_hosts").exists()
    assert onboarding.summary.changed == ["host key"]
