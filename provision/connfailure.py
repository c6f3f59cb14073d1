"""Why an SSH connection failed, as one line a person can act on.

Paramiko reports the same few failures in many shapes (an ``SSHException`` whose context is an
``EOFError`` or a socket timeout, an ``OSError`` errno, a dead transport's "No existing session").
``connect_failure`` maps them to the contract's kinds, each an error whose text is ONE line with
its fix, so the recap and the ``host_unreachable`` event carry one clean line per host:

    refused               nothing listens on that port
    timed out             no TCP answer within --connect-timeout
    closed in handshake   the peer closed before the SSH handshake finished (not sshd, MaxStartups)
    banner timeout        the peer accepted but sent no SSH banner
    auth failed           every credential refused (``AuthError``)
    host key unknown/changed  (``HostKeyError``, raised by connection.py itself)

Paramiko's own logger is silenced here as well: its transport thread logs every failure with a
traceback on stderr ("Exception (client): Error reading SSH protocol banner", "Socket exception:
Bad file descriptor"), which is noise next to our line.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from .errors import AuthError, ConnectError


def silence_paramiko() -> None:
    """Keep paramiko's log records (tracebacks from its transport thread) off stderr."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def _one_line(host: str, target: str, what: str, fix: str) -> str:
    return f"host {host}: cannot connect to {target}: {what} (fix: {fix})"


def connect_failure(exc: BaseException, *, host: str, target: str, timeout: float) -> ConnectError:
    """The ``ConnectError`` (or ``AuthError``) that says in one line why ``exc`` ended the connection."""
    import paramiko

    causes = _chain(exc)
    if isinstance(exc, paramiko.AuthenticationException):
        allowed = getattr(exc, "allowed_types", None)
        detail = f"; the server accepts only {', '.join(allowed)}" if allowed else ""
        return AuthError(_one_line(
            host, target, f"authentication failed ({exc or 'no credential accepted'}{detail})",
            "check ssh_user and ssh_private_key_file for this host, and that the key is in that user's "
            "authorized_keys"))
    refused = _find(causes, ConnectionRefusedError) or _errno_in(causes, errno.ECONNREFUSED)
    if refused:
        what, fix = "connection refused", "check the address and port (ssh_host, ssh_port) and that sshd runs there"
    elif "banner" in str(exc).lower():
        if _find(causes, EOFError) or _find(causes, ConnectionResetError):
            what = "the connection was closed before the SSH banner (not an SSH server, or sshd refused it)"
            fix = "check the port is sshd's; sshd's MaxStartups or a firewall may be dropping connections"
        else:
            what = f"no SSH banner within {timeout:g}s (banner timeout)"
            fix = "the port answers but does not speak SSH quickly; check the port, or raise --connect-timeout"
    elif _find(causes, socket.timeout) or _find(causes, TimeoutError):
        what = f"timed out after {timeout:g}s"
        fix = "check the address is right and reachable (firewall, host down), or raise --connect-timeout"
    elif _find(causes, EOFError) or _find(causes, ConnectionResetError) or "session" in str(exc).lower():
        what = "the connection was closed during the SSH handshake"
        fix = "check sshd's logs on the host (MaxStartups, AllowUsers, a key exchange it refuses)"
    elif isinstance(exc, socket.gaierror):
        what = f"cannot resolve the address ({exc.strerror or exc})"
        fix = "check ssh_host (or ansible_host) for this host"
    elif isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        fix = "check the address and port and that the host is up"
    else:
        what = str(exc) or type(exc).__name__
        fix = "check that the address and port are right and that sshd runs there"
    return ConnectError(_one_line(host, target, what, fix))


def connection_lost(host: str, exc: BaseException | None = None, *, why: str = "") -> ConnectError:
    """The error for a connection that died after it was open (sshd killed, network cut).

    ``why``: what the client saw besides ``exc`` (which step, whether the transport was still up),
    so a loss nobody can reproduce still says where it happened.
    """
    words = [w for w in (str(exc) if exc is not None else "", why) if w]
    detail = f" ({'; '.join(words)})" if words else ""
    return ConnectError(f"host {host}: the SSH connection was lost{detail}; the host is treated as "
                        "unreachable for the rest of the run")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _find(causes: list[BaseException], kind: type[BaseException]) -> Any:
    return next((cause for cause in causes if isinstance(cause, kind)), None)


def _errno_in(causes: list[BaseException], number: int) -> bool:
    for cause in causes:
        if isinstance(cause, OSError) and cause.errno == number:
            return True
        errors = getattr(cause, "errors", None)  # paramiko's NoValidConnectionsError: {addr: error}
        if isinstance(errors, dict) and any(getattr(e, "errno", None) == number for e in errors.values()):
            return True
    return False
