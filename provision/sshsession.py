"""Opening a host's SSH session: Fabric over our own TCP socket, host keys pinned, failures named.

Host keys are checked against known_hosts files and refused when unknown or changed, with the
fingerprint in the error; Fabric's accept-anything default is replaced on every gateway hop too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .connfailure import connect_failure, silence_paramiko
from .errors import HostKeyError

if TYPE_CHECKING:
    import paramiko

    from .inventory import ConnectionSpec


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def open_ssh(spec: ConnectionSpec, *, known_hosts: list[Path], ssh_config: Path | None,
             connect_timeout: float) -> Any:
    """The host's Fabric connection, open and authenticated (host keys pinned), or raise
    ConnectError/AuthError/HostKeyError naming the fix."""
    import paramiko
    from fabric import Config
    from fabric import Connection as FabricConnection

    silence_paramiko()
    config = Config(runtime_ssh_path=str(ssh_config)) if ssh_config else Config()
    # Without it a port that accepts and stays silent holds the host for paramiko's own 15 s.
    connect_kwargs: dict[str, Any] = {"banner_timeout": connect_timeout}
    if spec.private_key_file:
        connect_kwargs.update(
            key_filename=[os.path.expanduser(spec.private_key_file)], look_for_keys=False, allow_agent=False
        )
    if spec.password:
        connect_kwargs["password"] = spec.password
    conn = FabricConnection(
        spec.host,
        user=spec.user,
        port=spec.port,
        config=config,
        connect_timeout=int(connect_timeout),
        connect_kwargs=connect_kwargs,
    )
    _pin_host_keys(conn, spec.name, known_hosts)
    target = f"{conn.user}@{conn.host}:{conn.port}"
    try:
        _open(conn, connect_timeout)
    except HostKeyError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise HostKeyError(
            f"host {spec.name} ({target}) presented a DIFFERENT host key than the one pinned: "
            f"got {exc.key.get_name()} {fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}. "
            "This can mean the server was rebuilt, or that someone is in the middle "
            "(fix: if the server was really rebuilt, remove its old line with "
            f"`ssh-keygen -R {_known_hosts_name(conn.host, conn.port)}` and pin the new key)",
        ) from None
    except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:  # auth failures included
        raise connect_failure(exc, host=spec.name, target=target, timeout=connect_timeout) from None
    return conn


def _open(conn: Any, connect_timeout: float) -> None:
    """Open ``conn`` (over our own socket unless a gateway carries it); nothing stays open on failure."""
    sock = None
    try:
        if not conn.gateway:
            sock = _tcp_socket(conn.host, int(conn.port), connect_timeout)
            conn.connect_kwargs["sock"] = sock
        conn.open()
        for hop in _hops(conn):  # gateway hops' sockets were made by paramiko, with Nagle on
            _no_delay(getattr(hop.transport, "sock", None))
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        if sock is not None:
            sock.close()
        raise


def _tcp_socket(host: str, port: int, connect_timeout: float) -> socket.socket:
    """A connected TCP socket with Nagle's algorithm off.

    SSH sends small messages back to back (channel open, exec, data, EOF). With Nagle on, the
    second waits for the host's delayed ACK, about 40 ms: every script cost ~48 ms instead of
    ~6, and the handshake ~70 ms instead of ~25. OpenSSH sets TCP_NODELAY too; paramiko,
    making its own socket, does not.
    """
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    _no_delay(sock)
    return sock


def _pin_host_keys(conn: Any, name: str, known_hosts: list[Path]) -> None:
    """Replace Fabric's AutoAddPolicy by a refusal, on this hop and every gateway hop."""
    for hop in _hops(conn):
        hop.client.set_missing_host_key_policy(_reject_unknown(name))
        default = Path.home() / ".ssh" / "known_hosts"
        if default.exists():
            hop.client.load_host_keys(str(default))
        for path in known_hosts:
            try:
                hop.client.load_host_keys(str(path))
            except OSError as exc:
                raise HostKeyError(f"host {name}: cannot read known_hosts file {path}: "
                                   f"{exc.strerror or exc}", hint="fix ssh_known_hosts_file") from None


def _hops(conn: Any) -> Iterator[Any]:
    """A Fabric connection, then each gateway connection it goes through (a ProxyCommand string ends it)."""
    hop = conn
    while hop is not None and hasattr(hop, "client"):
        yield hop
        gateway = getattr(hop, "gateway", None)
        hop = gateway if gateway is not None and not isinstance(gateway, str) else None


def _no_delay(sock: object) -> None:
    """Nagle off on a TCP socket (see ``_tcp_socket``); a channel-backed hop is left alone."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _reject_unknown(name: str) -> Any:
    """A paramiko policy that refuses an unknown host key, showing its fingerprint."""
    import paramiko

    class RejectUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise HostKeyError(
                f"host {name} ({hostname}) is not in known_hosts; its {key.get_name()} key is {fingerprint(key)} "
                "(fix: verify that fingerprint out of band, then pin it: `provision onboard` does this, or add "
                "the host's key (`ssh-keyscan`) to ~/.ssh/known_hosts or the project's known_hosts)",
            )

    return RejectUnknown()
