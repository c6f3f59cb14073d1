"""The fixed command line that starts every script's session on a host, and its sudo handshake.

The command line never carries the script: it is a bootstrap that reads the frame
(``connframing.frame``) from stdin and evaluates it, leaving the rest of stdin to the script:

    sh -c 'IFS= read -r n; s=$(head -c "$n"); eval "$s"'

Before that it names the shell's pid on stderr (``connframing.PID_MARK``). Become wraps it in
``sudo -H -u USER`` and starts in that user's home. A become password is typed only when sudo
shows our prompt (``-p``); without one, the bootstrap prints ``READY`` first, so passwordless sudo
and cached credentials work the same way (``answer_sudo``).
"""

from __future__ import annotations

import select
import shlex
import threading
import time
from typing import Any

from .connframing import PRINT_PID
from .errors import AuthError

BOOTSTRAP = 'IFS= read -r n; s=$(head -c "$n"); case "$s" in *"#pv-end") eval "$s";; *) exit 125;; esac'
SUDO_PROMPT = "[provision-sudo-password]"
READY = b"\x06provision-ready\n"


def become_prefix(become_user: str | None, login_user: str | None, *, password: bool) -> str:
    """The sudo words before the bootstrap, or nothing when no user switch is needed."""
    if become_user is None or become_user == login_user:
        return ""
    mode = f"-S -p {shlex.quote(SUDO_PROMPT)}" if password else "-n"
    user = "" if become_user == "root" else f"-u {shlex.quote(become_user)} "
    return f"sudo -H {mode} {user}-- "


def remote_command(become_user: str | None, login_user: str | None, *, password: bool) -> str:
    """The full command line sent to the host for one script."""
    prefix = become_prefix(become_user, login_user, password=password)
    ready = "printf '\\006provision-ready\\n'; " if prefix and password else ""
    # The login user's directory may be closed to the become user (pip, git and bench then fail
    # on a relative path): start in the become user's home, as a login would.
    home = 'cd "$HOME" 2>/dev/null || cd /; ' if prefix else ""
    return f"{prefix}sh -c {shlex.quote(ready + home + PRINT_PID + BOOTSTRAP)}"


def answer_sudo(channel: Any, password: str, out: list[bytes], err: list[bytes], *, host: str,
                cancel: threading.Event, wait: float) -> None:
    """On a channel running ``remote_command`` with a password: wait (``wait`` seconds at most) for
    sudo's prompt (type the password) or the ready mark (no password needed); what came after the
    mark goes to ``out``, sudo's other words to ``err``. A refused password raises ``AuthError``.
    """
    deadline = time.monotonic() + wait
    seen_out = b""
    seen_err = b""
    while time.monotonic() < deadline and not cancel.is_set():
        select.select([channel], [], [], 0.2)
        if channel.recv_stderr_ready():
            seen_err += channel.recv_stderr(4096)
            if SUDO_PROMPT.encode() in seen_err:
                seen_err = seen_err.replace(SUDO_PROMPT.encode(), b"", 1)
                channel.sendall(password.encode() + b"\n")
        if channel.recv_ready():
            seen_out += channel.recv(4096)
            if READY in seen_out:
                _, _, after = seen_out.partition(READY)
                out.append(after)
                err.append(seen_err)
                return
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
    err.append(seen_err)
    if cancel.is_set():  # Ctrl-C while sudo asked: an interrupt, not a refused password
        return
    raise AuthError(
        f"host {host}: sudo did not accept the become password: {seen_err.decode(errors='replace').strip()}",
        hint="check become_password (or --ask-become-pass) for this host",
    )
