"""Lab hosts for end-to-end tests: real Debian SSH hosts in namespaces on this machine (Linux, root).

``claimed_lab(name, count)`` starts a lab of its own for a module: it claims the first free /24 of
10.213.100.0-10.213.199.0 (a lock file per /24 under ``$PROVISION_LAB_TEST_DIR``, default
/var/lib/provision-lab-test, so concurrent test sessions and a user's lab never share one), uses the state
dir ``$PROVISION_LAB_TEST_DIR/lab-OCTET``, and brings everything down at the end. The session fixture
``lab`` is such a lab with ``PROVISION_LAB_TEST_HOSTS`` (default 3) pristine hosts lab1..labN shared by the
whole session. Every test lab shares one cached base image (``$PROVISION_LAB_TEST_DIR/base``); that and the
proxy caches (``*/proxy/cache``) are the only things CI should cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from provision.errors import LabError
from provision.lab import Lab, LabHost, LabSettings
from provision.lab.network import check_subnet_free
from provision.lab.system import CLEAN_ENV, REQUIRED_TOOLS

TEST_ROOT = Path(os.environ.get("PROVISION_LAB_TEST_DIR", "/var/lib/provision-lab-test"))
SESSION_HOSTS = int(os.environ.get("PROVISION_LAB_TEST_HOSTS", "3"))
TEST_OCTETS = range(100, 200)  # third octet of the 10.213.X.0/24 subnets test labs may claim


def lab_unavailable() -> str | None:
    """Why lab hosts cannot run here, or None."""
    if platform.system() != "Linux":
        return "lab hosts need Linux namespaces"
    if os.geteuid() != 0:
        return "lab hosts need root (namespaces, bridge, mounts)"
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool, path=CLEAN_ENV["PATH"])})
    if missing:
        return f"lab hosts need these packages: {', '.join(missing)}"
    return None


def lab_settings(name: str, subnet: str) -> LabSettings:
    """Settings for a test lab named ``name``; every test lab shares one cached base image."""
    return LabSettings.create(TEST_ROOT / name, subnet=subnet, base_dir=TEST_ROOT / "base", environ={})


@dataclass
class LabHandle:
    """A running lab and the files to reach it."""

    lab: Lab
    hosts: list[LabHost]

    @property
    def state_dir(self) -> Path:
        return self.lab.settings.state_dir

    @property
    def inventory(self) -> Path:
        return self.lab.inventory

    @property
    def ssh_config(self) -> Path:
        return self.lab.ssh_config

    @property
    def known_hosts(self) -> Path:
        return self.lab.known_hosts

    @property
    def key(self) -> Path:
        return self.lab.key

    @property
    def ops_password_file(self) -> Path:
        """Password of ``ops`` (sudo with a password), mode 600."""
        return self.lab.ops_password_file

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def ssh(self, host: str, command: str, *, user: str = "root", timeout: float = 180,
            check: bool = True, options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on ``host`` with plain ``ssh -F <state>/ssh_config`` (strict host keys)."""
        argv = ["ssh", "-F", str(self.ssh_config), *options, "-l", user, host, command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {host} {command!r} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result

    def sessions(self, host: str) -> int:
        """Sessions sshd of ``host`` started so far ("Starting session:" lines of its VERBOSE log)."""
        return self.host(host).sshd_log.read_text(errors="replace").count("Starting session:")


def start_lab(settings: LabSettings, count: int, *, password_hosts: Sequence[str] = ()) -> LabHandle:
    """Bring a test lab up from scratch (a crashed earlier run is cleaned first)."""
    lab = Lab(settings, log=lambda message: print(f"[lab] {message}"))
    lab.down()
    try:
        hosts = lab.up(count, password_hosts=password_hosts)
    except BaseException:
        lab.down()
        raise
    return LabHandle(lab, hosts)


@contextlib.contextmanager
def claimed_lab(name: str, count: int, *, password_hosts: Sequence[str] = ()) -> Iterator[LabHandle]:
    """A lab on the first /24 no other test session holds; down (and the /24 released) on exit.

    ``name`` says what the lab is for (it appears in log lines only).
    """
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    for octet in TEST_OCTETS:
        with open(TEST_ROOT / f"subnet-{octet}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            # The state dir belongs to the slot, not the name: whoever claims it next cleans up after a crash.
            settings = lab_settings(f"lab-{octet}", f"10.213.{octet}.0/24")
            print(f"[lab] {name}: claiming {settings.subnet} ({settings.state_dir})")
            Lab(settings, log=print).down()  # what a crashed session left in this slot
            try:
                check_subnet_free(settings.subnet, "")
            except LabError:
                continue  # used by a lab outside these locks (e.g. a user's)
            handle = start_lab(settings, count, password_hosts=password_hosts)
            try:
                yield handle
            finally:
                handle.lab.down()
            return
    raise LabError(f"every test subnet 10.213.{TEST_OCTETS[0]}-{TEST_OCTETS[-1]}.0/24 is in use")


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """Pristine lab hosts lab1..labN for the whole session (shared: tests must not break them)."""
    with claimed_lab("session", SESSION_HOSTS) as handle:
        yield handle


# The shared five-host deploy of the multi-server modules, registered here once so that every
# module using it gets the same session-scoped instance.
from .multiserver import multiserver  # noqa: E402, F401
