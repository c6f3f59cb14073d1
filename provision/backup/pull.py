"""One site's backup: made on the host with Frappe's own command, pulled, verified, then the host copy removed."""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BackupError
from .checks import check_file
from .manifest import MANIFEST, PARTIAL, PENDING, read_json, site_dir, stamp, strip_secrets, write_json
from .remote import DiskFull, call_helper, pull_file, run_script
from .targets import HostTarget


@dataclass
class SiteResult:
    """What happened to one site in a run (one summary line, one JSON event)."""

    group: str
    host: str
    site: str
    status: str = "failed"
    stamp: str = ""
    path: str = ""
    bytes: int = 0
    msg: str = ""
    duration: float = 0.0
    repulled: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"event": "backup_site", **self.__dict__}


def list_sites(target: HostTarget) -> list[str]:
    answer = call_helper(target.connection, {"action": "sites", "sites_dir": target.sites_dir},
                         become_user=target.frappe_user, timeout=120)
    if not answer.get("ok"):
        raise BackupError(f"host {target.name}: cannot list the sites: {answer.get('error')}")
    return list(answer["sites"])


def _fresh_stamp(directory: Path, moment: datetime) -> str:
    base = stamp(moment)
    name, index = base, 1
    while (directory / name).exists() or (directory / f"{name}{PARTIAL}").exists():
        index += 1
        name = f"{base}-{index}"
    return name


def _finish(target: HostTarget, partial: Path, pending: dict[str, Any], result: SiteResult,
            encrypt_key: bytes | None) -> Path:
    """Pull what is missing of a pending backup, verify every file, write the manifest, rename, clean the host."""
    remote_dir = pending["run_dir"]
    for entry in pending["files"]:
        local = partial / entry["name"]
        resumed = local.exists() and 0 < local.stat().st_size < entry["size"]
        again = pull_file(target.connection, f"{remote_dir}/{entry['name']}", local, size=entry["size"],
                          sha256=entry["sha256"], become_user=target.frappe_user)
        if resumed:
            result.resumed.append(entry["name"])
        if again:
            result.repulled.append(entry["name"])
        problem = check_file(local, size=entry["size"], sha256=entry["sha256"])
        if problem:
            raise BackupError(f"verification failed: {problem}")
    manifest = {**pending, "verified": True, "verified_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if encrypt_key is not None:
        from .encrypt import encrypt_backup

        manifest["encryption"] = encrypt_backup(partial, manifest["files"], encrypt_key)
    write_json(partial / MANIFEST, manifest)
    (partial / PENDING).unlink()
    final = partial.with_name(partial.name[: -len(PARTIAL)])
    partial.rename(final)
    # Only now, with every file verified on the control host, does the host's copy go.
    run_script(target.connection, f"rm -rf -- {shlex.quote(remote_dir)}", become_user=target.frappe_user)
    result.bytes = sum(int(f["size"]) for f in manifest["files"])
    return final


def resume_pending(target: HostTarget, directory: Path, result: SiteResult, encrypt_key: bytes | None) -> list[str]:
    """Complete backups an earlier run left half pulled, when the host still has them; returns their names."""
    done = []
    for partial in sorted(directory.glob(f"*{PARTIAL}")):
        pending_path = partial / PENDING
        if not pending_path.exists():
            continue
        pending = read_json(pending_path)
        remote_dir = pending.get("run_dir", "")
        present = run_script(target.connection, f"[ -d {shlex.quote(remote_dir)} ] && echo yes || echo no",
                             become_user=target.frappe_user).strip()
        if present != "yes":
            shutil.rmtree(partial)  # the host no longer has it: it can never be completed
            continue
        done.append(_finish(target, partial, pending, result, encrypt_key).name)
    return done


def backup_site(target: HostTarget, site: str, backup_dir: Path, *, with_files: bool,
                encrypt_key: bytes | None = None, kind: str = "scheduled") -> SiteResult:
    """Back up one site; never raises for the site's own failure (the result says what went wrong)."""
    started = time.monotonic()
    result = SiteResult(target.group, target.name, site)
    directory = site_dir(backup_dir, target.group, target.name, site)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        earlier = resume_pending(target, directory, result, encrypt_key)
        moment = datetime.now(UTC)
        name = _fresh_stamp(directory, moment)
        answer = call_helper(target.connection, {
            "action": "backup", "site": site, "sites_dir": target.sites_dir, "bench_path": target.bench_path,
            "bench_cli": target.bench_cli, "with_files": with_files,
            "run_dir": f"{target.host_backup_root}/{site}/{name}",
        }, become_user=target.frappe_user, timeout=float(target.var("backup_timeout", 3600)))
        if not answer.get("ok"):
            raise BackupError(str(answer.get("error")))
        pending = {
            "format": 1, "tool": f"provision {__version__}", "kind": kind, "group": target.group,
            "host": target.name, "site": site, "timestamp": name, "taken_at": moment.isoformat(timespec="seconds"),
            "with_files": with_files, "run_dir": answer["run_dir"], "files": answer["files"],
            "tables": answer["tables"], "apps": answer["apps"], "db_name": answer["db_name"],
            "site_config": strip_secrets(answer["site_config"]), "verified": False,
        }
        partial = directory / f"{name}{PARTIAL}"
        partial.mkdir()
        write_json(partial / PENDING, pending)
        final = _finish(target, partial, pending, result, encrypt_key)
        result.status, result.stamp, result.path = "ok", final.name, str(final)
        result.msg = f"{len(pending['files'])} files verified"
        if earlier:
            result.msg += f"; completed the earlier {', '.join(earlier)}"
    except DiskFull as exc:
        result.msg = f"site {site}: {exc.message} ({directory}); earlier backups kept, nothing pruned"
    except OSError as exc:
        result.msg = f"site {site}: cannot write under {directory}: {exc}"
    except BackupError as exc:
        result.msg = f"site {site}: {exc.message}"
    result.duration = round(time.monotonic() - started, 2)
    return result


def backup_host(target: HostTarget, sites: list[str] | None, backup_dir: Path, *, with_files: bool,
                run_id: str, encrypt_key: bytes | None = None) -> list[SiteResult]:
    """Every (or the named) site of one host, one at a time, under the host lock."""
    from ..hostlock import HostLock

    with HostLock(target.connection, operation="backup", run_id=run_id):  # type: ignore[arg-type]
        present = list_sites(target)
        names = [s for s in present if s in sites] if sites else present
        return [backup_site(target, site, backup_dir, with_files=with_files, encrypt_key=encrypt_key)
                for site in names]
