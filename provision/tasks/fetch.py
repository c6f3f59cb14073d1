"""``fetch``: copy a file from the host to the control host, only when the local copy differs.

The remote sha256 comes with the batched probe; an equal local file means no transfer at all.
A transfer lands in a temp file beside the destination, is checked against the remote sha256,
then renamed into place, so a local file is never half-written.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, ProvisionError
from .base import Arg, Module, Plan, PlanContext, TaskContext, TaskResult
from .facts import PathState
from .shell import FileState


def local_dest(src: str, dest: str, host: str, *, flat: bool) -> Path:
    """Ansible's layout: ``dest/<host>/<src path>``; with ``flat``, dest itself (or dest/<name> for a dir/)."""
    if flat:
        if dest.endswith("/") or Path(dest).is_dir():
            return Path(dest) / posixpath.basename(src)
        return Path(dest)
    return Path(dest) / host / src.lstrip("/")


def file_sha256(path: Path) -> str | None:
    """The sha256 of a local file, None when it does not exist."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Fetch(Module):
    """Copy a file from the host to the control host (backups, logs, generated keys).

    src: the file on the host
    dest: control-host directory (the file lands in dest/<host>/<src path>) or, with flat, the file path
    flat: put the file at dest itself (or dest/<name> when dest ends with /), not under <host>/<src path>
    validate_checksum: verify the transferred file's sha256 against the host's (default true)
    fail_on_missing: fail when src does not exist on the host (default true; false: ok, nothing fetched)
    """

    name = "fetch"
    args = {
        "src": Arg(str, required=True),
        "dest": Arg(str, required=True),
        "flat": Arg(bool, default=False),
        "validate_checksum": Arg(bool, default=True),
        "fail_on_missing": Arg(bool, default=True),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if args["src"].endswith("/"):
            raise ArgumentError("fetch: src must be a file, not a directory")

    def facts(self, args: dict[str, Any]) -> PathState:
        return PathState(args["src"], checksum=True)

    def plan(self, args: dict[str, Any], facts: FileState, ctx: PlanContext) -> Plan:
        src = args["src"]
        dest = local_dest(src, args["dest"], ctx.host, flat=args.get("flat", False))
        remote = facts
        data: dict[str, Any] = {"src": src, "dest": str(dest)}
        if not remote.exists:
            if args.get("fail_on_missing", True):
                # In check mode an earlier task may create it when the run is real: skipped, not failed.
                return Plan(error=f"{src} does not exist on {ctx.host}", data=data, check_skips=True,
                            pending=f"{src} is not on {ctx.host} yet: nothing to compare in check mode")
            return Plan(f"{src} does not exist on {ctx.host}: nothing fetched", data={**data, "file_missing": True},
                        check_skips=True, check_msg=f"{src} is not on {ctx.host} yet: nothing to compare in check mode")
        if remote.type != "file":
            return Plan(error=f"{src} on {ctx.host} is a {remote.type}, not a file", data=data)
        if not remote.sha256:
            return Plan(error=f"cannot read {src} on {ctx.host} (permission denied? try become)", data=data)
        data["remote_checksum"] = remote.sha256
        local = file_sha256(dest)
        if local == remote.sha256:
            return Plan(data={"checksum": local, **data})
        return Plan(f"fetched {src} to {dest}", data=data,
                    control_host=lambda transfer: self._fetch(args, transfer, remote.sha256 or "", dest, data))

    def _fetch(self, args: dict[str, Any], ctx: TaskContext, remote_sha: str, dest: Path,
               data: dict[str, Any]) -> TaskResult:
        """Copy the file to a temp file beside ``dest``, verify its checksum, rename it into place."""
        src, what = args["src"], f"fetched {args['src']} to {dest}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".provision", dir=dest.parent)
        os.close(fd)
        temp = Path(name)
        try:
            try:
                ctx.fetch(src, temp)
            except ProvisionError as exc:
                return TaskResult.failed(f"fetching {src} failed: {exc.message}", **data)
            got = file_sha256(temp)
            if args.get("validate_checksum", True) and got != remote_sha:
                return TaskResult.failed(
                    f"checksum mismatch fetching {src}: the host has sha256 {remote_sha}, "
                    f"the copy has {got} (did the file change during the transfer?); {dest} was left as it was",
                    checksum=got, **data,
                )  # fmt: skip
            os.replace(temp, dest)
        finally:
            temp.unlink(missing_ok=True)
        return TaskResult.changed(what, checksum=got, **data)
