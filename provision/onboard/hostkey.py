"""First contact: fetch a server's host keys without authenticating, compare, pin.

pyinfra's keyscan trusts whatever key answers. Here a key is fetched with a bare paramiko
``Transport`` (key exchange only: no user name, no credential is ever sent), its SHA256
fingerprint is shown or compared with one the operator got out of band (a cloud console prints
it), and only a confirmed key is pinned in the project's ``known_hosts``. A pinned key that
differs from the one the server shows now is refused, never replaced.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..connection import fingerprint
from ..errors import ConnectError, HostKeyError, OptionsError
from ..localfiles import write_atomic

if TYPE_CHECKING:
    import paramiko

# The key types asked for, most preferred first (the first one the server has is shown at a prompt).
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")


@dataclass(frozen=True)
class HostKey:
    """One host key the server presented."""

    key_type: str
    key: paramiko.PKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def known_hosts_line(self, name: str) -> str:
        return f"{name} {self.key.get_name()} {self.key.get_base64()}\n"


def known_hosts_name(host: str, port: int) -> str:
    """How known_hosts names a host (``[host]:port`` off port 22), as OpenSSH and paramiko look it up."""
    return host if port == 22 else f"[{host}]:{port}"


def normalize_fingerprint(text: str) -> str:
    """``SHA256:<base64 without padding>`` from what an operator pastes; OptionsError if it is not one."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[len("SHA256:"):]
    value = value.rstrip("=")
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise OptionsError(
            f"--accept-host-key {text!r} is not a SHA256 host key fingerprint",
            hint="give it as OpenSSH prints it: SHA256:<43 characters> (`ssh-keygen -lf key.pub` on the server, "
                 "or the fingerprints cloud-init prints on the console)",
        )
    return "SHA256:" + value


def matching_key(keys: Sequence[HostKey], expected: str) -> HostKey | None:
    """The presented key whose fingerprint is ``expected`` (already normalized), if any."""
    return next((key for key in keys if key.fingerprint == expected), None)


def fetch_host_keys(host: str, port: int, *, timeout: float = 10.0,
                    key_types: Sequence[str] = KEY_TYPES) -> list[HostKey]:
    """Every host key of ``key_types`` the server has, one key exchange each; nothing is authenticated."""
    import paramiko

    _quiet_paramiko()
    found: list[HostKey] = []
    errors: list[str] = []
    for key_type in key_types:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise _unreachable(host, port, exc) from None
        transport = paramiko.Transport(sock)  # closing it closes the socket
        try:
            transport.get_security_options().key_types = [key_type]
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
            found.append(HostKey(key_type, key))
        except paramiko.SSHException as exc:  # the server has no key of this type
            errors.append(str(exc))
        except (OSError, EOFError) as exc:
            raise _unreachable(host, port, exc) from None
        finally:
            transport.close()
    if not found:
        raise HostKeyError(f"{host}:{port} offered no host key we can check: {'; '.join(errors)}")
    return found


def pinned_keys(path: Path, host: str, port: int) -> dict[str, paramiko.PKey]:
    """Key type → key pinned for the host in ``path`` (hashed names included); empty if none."""
    import paramiko

    if not path.exists():
        return {}
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except OSError as exc:
        raise OptionsError(f"cannot read {path}: {exc}") from None
    entry = keys.lookup(known_hosts_name(host, port))
    return dict(entry.items()) if entry is not None else {}


def check_pinned(path: Path, host: str, port: int, presented: Sequence[HostKey]) -> bool:
    """True if a presented key is pinned; False if nothing is pinned; HostKeyError if the pin differs."""
    pinned = pinned_keys(path, host, port)
    if not pinned:
        return False
    for key in presented:
        if key.key.get_name() in pinned:
            expected = pinned[key.key.get_name()]
            if expected.asbytes() == key.key.asbytes():
                return True
            raise HostKeyError(
                f"{host}:{port} presented a DIFFERENT {key.key.get_name()} host key than the one pinned in {path}: "
                f"got {key.fingerprint}, pinned {fingerprint(expected)}. Nothing was sent to it.",
                hint="if the server was really rebuilt, remove its old line with "
                     f"`ssh-keygen -f {path} -R {known_hosts_name(host, port)}` and onboard it again",
            )
    raise HostKeyError(
        f"{host}:{port} presented none of the key types pinned for it in {path} "
        f"({', '.join(sorted(pinned))}); it showed {', '.join(k.fingerprint for k in presented)}",
        hint="verify the server out of band; if it was rebuilt, remove the old line with "
             f"`ssh-keygen -f {path} -R {known_hosts_name(host, port)}`",
    )


def pin_host_key(path: Path, host: str, port: int, key: HostKey) -> None:
    """Append the key's line to ``path`` atomically (temp file beside it, fsync, rename)."""
    current = path.read_text() if path.exists() else ""
    if current and not current.endswith("\n"):
        current += "\n"
    write_atomic(path, current + key.known_hosts_line(known_hosts_name(host, port)), mode=0o644)


def _quiet_paramiko() -> None:
    """A refused key type is an expected answer here: keep paramiko's transport thread from printing it."""
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def _unreachable(host: str, port: int, exc: BaseException) -> ConnectError:
    return ConnectError(f"cannot reach {host}:{port}: {exc or type(exc).__name__}",
                        hint="check the address and --port, and that sshd runs there")
