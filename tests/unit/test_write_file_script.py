"""The atomic file write every module shares (``tasks.shell.write_file_script``), run by the real sh.

A cut transfer, a failed step or a failed validation leaves the target as it was and no temp
file behind, with the script's status saying so; several writes can share one stdin.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.tasks.shell import quote, reads_exactly_first, write_file_script, write_input


def run_sh(script: str, stdin: bytes, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, timeout=30, check=False,
                          env={**os.environ, **(env or {})})


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".provision-" in p.name)


def failing(tmp_path: Path, command: str) -> dict[str, str]:
    """PATH with ``command`` replaced by one that fails."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / command).write_text("#!/bin/sh\necho \"$0 refused\" >&2\nexit 7\n")
    (shim / command).chmod(0o755)
    return {"PATH": f"{shim}:{os.environ['PATH']}"}


def test_it_writes_the_bytes_with_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    done = run_sh(write_file_script(str(target), mode="640", size=5), write_input(b"hello"))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"hello" and oct(target.stat().st_mode & 0o777) == "0o640"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("stdin", [b"hel", b"hello", b"hello@@pv-e"], ids=["short", "no end line", "end line cut"])
def test_a_cut_transfer_leaves_the_target_as_it_was(tmp_path: Path, stdin: bytes) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    done = run_sh(write_file_script(str(target), size=5), stdin)
    assert done.returncode == 4 and b"short input for" in done.stderr
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["mv", "chmod"])
def test_a_failed_step_is_the_scripts_status_and_the_target_is_kept(tmp_path: Path, command: str) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    done = run_sh(write_file_script(str(target), mode="644", size=3), write_input(b"new"),
                  env=failing(tmp_path, command))
    assert done.returncode == 7 and b"refused" in done.stderr
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_a_failed_chown_is_not_reported_as_written(tmp_path: Path) -> None:
    target = tmp_path / "f"
    done = run_sh(write_file_script(str(target), owner="no-such-user-pv", size=3), write_input(b"new"))
    assert done.returncode != 0 and not target.exists() and leftovers(tmp_path) == []


def test_a_failed_validation_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    done = run_sh(write_file_script(str(target), validate="grep -q good %s", size=3), write_input(b"bad"))
    assert done.returncode == 3 and b"validation failed" in done.stderr
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_several_writes_share_one_stdin_and_the_first_failure_stops_them(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    script = "set -e\n" + write_file_script(str(a), size=2) + write_file_script(str(b), size=3)
    done = run_sh(script, write_input(b"aa") + write_input(b"bbb"))
    assert done.returncode == 0 and a.read_bytes() == b"aa" and b.read_bytes() == b"bbb"
    # The second write's input is cut: the first is written, the second is not, the status says so.
    script = write_file_script(str(c), size=2) + write_file_script(str(b), size=3) + "echo after\n"
    done = run_sh(script, write_input(b"cc") + b"b")
    assert done.returncode == 4 and c.read_bytes() == b"cc" and b.read_bytes() == b"bbb"
    assert b"after" not in done.stdout


def test_as_a_function_it_returns_its_status_and_the_shell_goes_on(tmp_path: Path) -> None:
    """How a change batch runs it: in its own shell, no subshell (``reads_exactly_first``)."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    one, two = write_file_script(str(good), size=2), write_file_script(str(bad), size=9)
    assert reads_exactly_first(one, len(write_input(b"ok"))) and reads_exactly_first(two, len(write_input(b"x" * 9)))
    script = (f"u=$(umask); w() {{\n{one}}}\nw; echo \"one $?\"; umask \"$u\"\n"
              f"w() {{\n{two}}}\nw; echo \"two $?\"; umask \"$u\"\n"
              f"umask; trap; echo end; : > {quote(str(tmp_path / 'later'))}\n")
    done = run_sh(f"umask 022\n{script}", write_input(b"ok") + b"xx")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    # Its traps are gone and the umask is the caller's again; a file made after it gets the usual mode.
    assert lines == ["one 0", "two 4", "0022", "end"]
    assert good.read_bytes() == b"ok" and not bad.exists() and leftovers(tmp_path) == []
    assert oct((tmp_path / "later").stat().st_mode & 0o777) == "0o644"
