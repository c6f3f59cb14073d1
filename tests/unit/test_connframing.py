"""The command line and the frame every script is sent with, pinned byte for byte (connframing, connbootstrap).

The host-side bootstrap parses exactly these bytes; a change here changes what every host runs.
"""

from __future__ import annotations

import shlex

import pytest

from provision import connection
from provision.connbootstrap import BOOTSTRAP, remote_command
from provision.connframing import END_MARK, frame, split_pid_mark

pytestmark = pytest.mark.unit

# The shell's words, as the old single-module connection.py wrote them.
PRINT_PID = "printf '\\036pv-pid %s\\n' \"$$\" >&2; "
READ_FRAME = 'IFS= read -r n; s=$(head -c "$n"); case "$s" in *"#pv-end") eval "$s";; *) exit 125;; esac'
READY = "printf '\\006provision-ready\\n'; "
HOME = 'cd "$HOME" 2>/dev/null || cd /; '
PROMPT = "-S -p '[provision-sudo-password]'"
COMMAND_LINES = [
    ((None, "root", False), "sh -c " + shlex.quote(PRINT_PID + READ_FRAME)),
    (("root", "root", False), "sh -c " + shlex.quote(PRINT_PID + READ_FRAME)),
    (("root", "admin", False), "sudo -H -n -- sh -c " + shlex.quote(HOME + PRINT_PID + READ_FRAME)),
    (("root", "ops", True), f"sudo -H {PROMPT} -- sh -c " + shlex.quote(READY + HOME + PRINT_PID + READ_FRAME)),
    (("frappe", "root", False), "sudo -H -n -u frappe -- sh -c " + shlex.quote(HOME + PRINT_PID + READ_FRAME)),
    (("frappe", "ops", True),
     f"sudo -H {PROMPT} -u frappe -- sh -c " + shlex.quote(READY + HOME + PRINT_PID + READ_FRAME)),
]


@pytest.mark.parametrize(("case", "expected"), COMMAND_LINES)
def test_command_line_is_unchanged(case: tuple[str | None, str, bool], expected: str) -> None:
    become_user, login_user, password = case
    assert remote_command(become_user, login_user, password=password) == expected


def test_frame_is_length_script_end_mark_then_stdin() -> None:
    assert frame("echo hi", b"in") == b'15\necho hi\n#pv-endin'
    assert frame("x", None) == b"9\nx" + END_MARK.encode()
    assert END_MARK.lstrip("\n") in BOOTSTRAP


def test_pid_mark_is_taken_out_of_stderr() -> None:
    assert split_pid_mark(b"a\n\036pv-pid 42\nb") == (42, b"a\nb")
    assert split_pid_mark(b"plain") == (None, b"plain")


def test_connection_still_exports_what_other_modules_import() -> None:
    for name in ("BOOTSTRAP", "END_MARK", "PID_MARK", "READY", "RC_CUT", "SUDO_PROMPT", "Connection",
                 "LocalConnection", "RemoteProcess", "SSHConnection", "become_prefix", "fingerprint", "frame",
                 "remote_command", "split_pid_mark", "start_remote", "tcp_reachable"):
        assert hasattr(connection, name), name
