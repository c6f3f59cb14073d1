"""Calling the host-side helper, and moving files between the host and the control host in bounded pieces.

Files travel through ``tail -c +OFFSET | head -c N`` (down) and ``cat >>`` (up), one piece of
``CHUNK`` bytes per channel: memory stays bounded, a transfer resumes from the bytes already
there, and ``become`` works as for every other script. Neither side ever holds a whole file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from ..errors import BackupError
from .checks import sha256_file
from .targets import HostConnection

CHUNK = 16 * 1024 * 1024
_HELPER = Path(__file__).with_name("remote_helper.py")
_RESTORE = Path(__file__).with_name("remote_restore.py")
_LOCAL_ONLY = re.compile(r"(?ms)^# local-only: begin.*?^# local-only: end\n")


class DiskFull(BackupError):
    """The control host ran out of space while writing a backup."""


def helper_program() -> bytes:
    """The host program: remote_helper.py, then remote_restore.py without its local imports, then main()."""
    restore = _LOCAL_ONLY.sub("", _RESTORE.read_text()).replace("from __future__ import annotations\n", "")
    return (_HELPER.read_text() + "\n" + restore + "\nsys.exit(main())\n").encode()


def call_helper(connection: HostConnection, request: dict[str, Any], *, become_user: str | None,
                timeout: float | None = 3600) -> dict[str, Any]:
    """Run one action of ``remote_helper.py`` on the host; its JSON answer (``ok`` False on failure)."""
    program = helper_program()
    # The program is sent on stdin and run with -c (no secret in it); the request, with any
    # secret, follows it on stdin and is read by the program itself.
    script = f'p=$(head -c {len(program)}); exec python3 -c "$p"'
    stdin = program + json.dumps(request).encode() + b"\n"
    rc, out, err = connection.run_bytes(script, stdin=stdin, become_user=become_user, timeout=timeout)
    text = out.decode(errors="replace").strip().splitlines()
    if rc != 0 or not text:
        detail = err.decode(errors="replace").strip()[-600:]
        return {"ok": False, "error": f"the host helper exited {rc}: {detail}"}
    try:
        answer = json.loads(text[-1])
    except ValueError:
        return {"ok": False, "error": f"the host helper answered something unexpected: {text[-1][:200]}"}
    return answer if isinstance(answer, dict) else {"ok": False, "error": "the host helper answered no object"}


def run_script(connection: HostConnection, script: str, *, become_user: str | None) -> str:
    """A short shell script on the host; its stdout, or BackupError with its stderr."""
    rc, out, err = connection.run_bytes(script, become_user=become_user, timeout=600)
    if rc != 0:
        raise BackupError(f"host {connection.name}: `{script.splitlines()[0][:80]}` failed: "
                          f"{err.decode(errors='replace').strip()[-400:]}")
    return out.decode(errors="replace")


def pull_file(connection: HostConnection, remote: str, local: Path, *, size: int, sha256: str,
              become_user: str | None, attempts: int = 3, chunk: int = CHUNK) -> int:
    """Pull ``remote`` into ``local``, resuming from what ``local`` holds; returns how many times it was re-pulled.

    A file whose checksum differs after the pull (a flipped byte, a bad resumed piece) is pulled
    again from the start. A file already complete and matching is not sent again.
    """
    quoted = shlex.quote(remote)
    for attempt in range(attempts):
        have = local.stat().st_size if local.exists() else 0
        if have > size:
            local.unlink()
            have = 0
        try:
            with open(local, "ab") as out:
                while have < size:
                    want = min(chunk, size - have)
                    rc, data, err = connection.run_bytes(
                        f"[ -r {quoted} ] || {{ echo 'cannot read {remote}' >&2; exit 3; }}\n"
                        f"tail -c +{have + 1} -- {quoted} | head -c {want}",
                        become_user=become_user, timeout=1800)
                    if rc != 0 or not data:
                        raise BackupError(f"host {connection.name}: pulling {remote} at byte {have} failed: "
                                          f"{err.decode(errors='replace').strip()[-300:] or 'no data'}")
                    out.write(data)
                    have += len(data)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"no space left on the control host in {local.parent}") from None
            raise
        if sha256_file(local) == sha256:
            return attempt
        local.unlink()
    raise BackupError(f"host {connection.name}: {remote} still differs from the host's sha256 after "
                      f"{attempts} pulls")


def push_file(connection: HostConnection, local: Path, remote: str, *, become_user: str | None,
              chunk: int = CHUNK) -> None:
    """Upload ``local`` to ``remote`` (mode 600) in pieces, then check its sha256 on the host."""
    quoted = shlex.quote(remote)
    run_script(connection, f"umask 077; : > {quoted}", become_user=become_user)
    with open(local, "rb") as f:
        for piece in iter(lambda: f.read(chunk), b""):
            rc, _, err = connection.run_bytes(f"cat >> {quoted}", stdin=piece, become_user=become_user,
                                              timeout=1800)
            if rc != 0:
                raise BackupError(f"host {connection.name}: uploading {local.name} failed: "
                                  f"{err.decode(errors='replace').strip()[-300:]}")
    got = run_script(connection, f"sha256sum -- {quoted}", become_user=become_user).split()[:1]
    if got != [sha256_file(local)]:
        raise BackupError(f"host {connection.name}: {remote} differs from {local} after the upload")
