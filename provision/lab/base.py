"""The cached Debian base root filesystem every lab host is an overlay of; rebuilt only when its recipe changes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from provision.errors import LabError
from provision.lab.mirror import AptSource
from provision.lab.system import run, tail

CODENAME = "bookworm"
BUILD_TRIES = 3
BUILD_TIMEOUT = 900.0
# Users every host has (created in the base; their keys and passwords are written per host).
SUDO_USER = "admin"
PASSWORD_SUDO_USER = "ops"

# Shell run by mmdebstrap with the new root as $1: what turns a minbase chroot into an SSH-managed server.
_CUSTOMIZE = (
    # Lab users: admin (passwordless sudo), ops (sudo with its password, set per host).
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {SUDO_USER}',
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {PASSWORD_SUDO_USER}',
    f'echo "{SUDO_USER} ALL=(ALL:ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/lab-{SUDO_USER}"',
    f'chmod 440 "$1/etc/sudoers.d/lab-{SUDO_USER}"',
    # Fresh host keys per host; none shared through the base.
    'rm -f "$1"/etc/ssh/ssh_host_*',
    # No audit subsystem in a namespace: a failing pam_loginuid must not refuse logins.
    'sed -i "s/^session\\s\\+required\\s\\+pam_loginuid.so/session optional pam_loginuid.so/" "$1/etc/pam.d/sshd"',
    # mmdebstrap copies the build machine's resolver and name; hosts have neither.
    ': > "$1/etc/resolv.conf"',
    'echo lab > "$1/etc/hostname"',
    'chmod 644 "$1/etc/resolv.conf" "$1/etc/hostname"',
    'mkdir -p "$1/lab-oldroot"',
)


@dataclass(frozen=True)
class BaseRecipe:
    """What goes into a base image; its hash names the cached directory."""

    name: str
    packages: tuple[str, ...]
    customize: tuple[str, ...] = _CUSTOMIZE
    codename: str = CODENAME
    variant: str = "minbase"

    def digest(self) -> str:
        data = json.dumps([self.codename, self.variant, sorted(self.packages), list(self.customize)])
        return hashlib.sha256(data.encode()).hexdigest()[:12]

    def directory(self, base_dir: Path) -> Path:
        return base_dir / f"{self.codename}-{self.name}-{self.digest()}"


FRESH = BaseRecipe(
    name="fresh",
    packages=(
        "openssh-server", "sudo", "python3", "ca-certificates", "tini", "iproute2", "procps", "less",
        "curl", "iputils-ping", "netbase", "openssl",
    ),
)
RECIPES = {FRESH.name: FRESH}


def build_argv(recipe: BaseRecipe, target: Path, sources: Sequence[AptSource]) -> list[str]:
    """The mmdebstrap command line that builds ``recipe`` into ``target``."""
    argv = [
        "mmdebstrap", "--mode=root", f"--variant={recipe.variant}", "--format=directory",
        f"--include={','.join(recipe.packages)}", '--aptopt=Acquire::Retries "3"',
    ]
    argv += [f"--customize-hook={step}" for step in recipe.customize]
    argv += [recipe.codename, str(target)]
    argv += [source.line() for source in sources]
    return argv


def ensure_base(
    recipe: BaseRecipe,
    base_dir: Path,
    sources: Sequence[AptSource],
    *,
    log: Callable[[str], None] = lambda _: None,
    tries: int = BUILD_TRIES,
) -> Path:
    """The base directory for ``recipe``, built first if it is not cached yet."""
    target = recipe.directory(base_dir)
    if (target / "etc" / "debian_version").is_file():
        return target
    base_dir.mkdir(parents=True, exist_ok=True)
    # Labs with other state dirs may share this base dir: one builds, the others wait for it.
    with open(base_dir / f"{target.name}.lock", "a") as lock:
        wait_for_lock(lock, timeout=BUILD_TIMEOUT * tries, what=f"building base image {target.name}")
        if (target / "etc" / "debian_version").is_file():
            return target
        return _build(recipe, target, sources, log=log, tries=tries)


def _build(recipe: BaseRecipe, target: Path, sources: Sequence[AptSource], *, log: Callable[[str], None],
           tries: int) -> Path:
    base_dir = target.parent
    building = target.with_name(target.name + ".building")
    log_file = base_dir / f"{target.name}.log"
    output = ""
    for attempt in range(1, tries + 1):
        shutil.rmtree(building, ignore_errors=True)
        log(f"building base image {target.name} (try {attempt}/{tries}) …")
        result = run(build_argv(recipe, building, sources), what="building the lab base image",
                     timeout=BUILD_TIMEOUT, check=False,
                     hint="check this machine's apt sources and network, then retry `provision lab up`")
        output = result.stdout + result.stderr
        log_file.write_text(output)
        if result.returncode == 0:
            building.rename(target)
            return target
        time.sleep(2 * attempt)
    shutil.rmtree(building, ignore_errors=True)
    raise LabError(
        f"building the lab base image failed {tries} times (mmdebstrap): {tail(output)}",
        hint=f"full log in {log_file}; check the Debian mirror in /etc/apt/sources.list* and the network",
    )


def wait_for_lock(handle: IO[str], *, timeout: float, what: str) -> None:
    """Take an exclusive flock on ``handle``, waiting at most ``timeout`` seconds for its holder."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LabError(f"{what}: another process held the lock for {timeout:.0f} s",
                               hint=f"find it with `fuser -v {handle.name}`") from None
            time.sleep(0.5)


def remove_stale_bases(base_dir: Path, keep: set[Path]) -> list[Path]:
    """Delete base builds not in ``keep`` (older recipes, partial builds); the ones removed."""
    removed = []
    if base_dir.is_dir():
        kept_logs = {path.with_name(path.name + ".log") for path in keep}
        for path in sorted(base_dir.iterdir()):
            # A ".building" dir or ".lock" file may belong to a build running for another lab right now.
            if path in keep or path in kept_logs or not path.name.startswith(f"{CODENAME}-") or \
                    path.suffix in (".building", ".lock"):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
