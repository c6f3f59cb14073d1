"""``provision restore HOST SITE``: a pulled backup back onto its host, never risking the live data.

1. The chosen backup is checked again on the control host (sha256, gzip, completion line, tar):
   a damaged backup stops here, before the host is touched.
2. Under the host lock: a live site is only overwritten with ``--force``, and then a safety backup
   of it is pulled first (a normal, verified backup of kind ``safety``).
3. The files are uploaded and checked on the host; the dump is imported into a NEW database,
   whose row counts must match the manifest; the site's file folders are swapped for the restored
   ones and its ``site_config.json`` is switched to the new database atomically; ``migrate`` runs
   when the code differs from the backup's. Any failure switches the config and files back and
   drops the new database: the live database is never touched until the switch is proven. Only
   then is the old database dropped (``restore_keep_old_db: true`` keeps it).
``--to-site NEW`` restores into a new site beside the old one instead.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import BackupError, OptionsError
from .checks import check_file
from .encrypt import decrypt_backup
from .manifest import StoredBackup
from .pull import backup_site, list_sites
from .remote import call_helper, push_file, run_script
from .report import BackupReport
from .targets import HostTarget


def check_stored(backup: StoredBackup, key: bytes | None, scratch: Path) -> Path:
    """The directory of the backup's plain files, each checked against its manifest; BackupError if not."""
    plain = decrypt_backup(backup.path, backup.manifest, key, scratch / "plain")
    problems = [p for f in backup.manifest.get("files", [])
                if (p := check_file(plain / f["name"], size=int(f["size"]), sha256=f["sha256"]))]
    if problems:
        raise BackupError(f"backup {backup.path} is damaged, nothing was restored: {'; '.join(problems)}",
                          hint="restore an earlier one with --from TIMESTAMP (`provision backup list` shows them)")
    return plain


def needs_migrate(manifest: dict[str, Any], current: list[dict[str, str]]) -> bool:
    """True when the bench's apps differ from the backup's (a version, a commit, or the set of apps)."""
    then = {a["name"]: (a.get("commit"), a.get("version")) for a in manifest.get("apps", [])}
    now = {a["name"]: (a.get("commit"), a.get("version")) for a in current}
    return then != now


def upload_backup(target: HostTarget, backup: StoredBackup, plain: Path, remote_dir: str) -> dict[str, str]:
    """Upload the backup's files into ``remote_dir``; their remote paths by kind (dump, tars, config)."""
    run_script(target.connection, f"umask 077; mkdir -p -- {shlex.quote(remote_dir)}", become_user=target.frappe_user)
    paths: dict[str, str] = {}
    for entry in backup.manifest["files"]:
        name = entry["name"]
        remote = f"{remote_dir}/{name}"
        push_file(target.connection, plain / name, remote, become_user=target.frappe_user)
        if name.endswith(".sql.gz"):
            paths["dump"] = remote
        elif name.endswith("site_config_backup.json"):
            paths["config"] = remote
        elif name.endswith((".tar", ".tgz")):
            paths["private" if "private-files" in name else "public"] = remote
    if "dump" not in paths:
        raise BackupError(f"backup {backup.path} has no database dump")
    return paths


def point_peer_script(target: HostTarget, site: str, db_name: str) -> str:
    """(frappe user) another app host's config of ``site`` pointed at ``db_name`` (atomic; same file when shared)."""
    path = f"{target.sites_dir}/{site}/site_config.json"
    program = (
        "import json, os, sys\n"
        "path, name = sys.argv[1], sys.argv[2]\n"
        "config = json.load(open(path))\n"
        "if config.get('db_name') != name:\n"
        "    config['db_name'] = name\n"
        "    tmp = path + '.provision-tmp'\n"
        "    with open(tmp, 'w') as fh:\n"
        "        json.dump(config, fh, indent=1, sort_keys=True)\n"
        "        fh.flush()\n"
        "        os.fsync(fh.fileno())\n"
        "    os.chmod(tmp, os.stat(path).st_mode & 0o7777)\n"
        "    os.replace(tmp, path)\n"
        "print(config['db_name'])\n"
    )
    return f"python3 - {shlex.quote(path)} {shlex.quote(db_name)} <<'PV_PY'\n{program}PV_PY\n"


def point_peers(target: HostTarget, peers: Sequence[HostTarget], site: str, answer: dict[str, Any], *,
                keep_old_db: bool) -> None:
    """Every other app host of a multi-server bench onto the restored database; only then the old one goes."""
    for peer in peers:
        try:
            run_script(peer.connection, point_peer_script(peer, site, str(answer["db_name"])),
                       become_user=peer.frappe_user)
        except BackupError as exc:
            raise BackupError(f"{site} is restored on {target.name} into {answer['db_name']}, but {peer.name} could "
                              f"not be pointed at it and still uses {answer.get('old_db')} (kept): {exc.message}",
                              hint=f"point {peer.name}'s site_config.json at {answer['db_name']}") from None
        answer.setdefault("steps_after", []).append(f"{peer.name} uses {answer['db_name']}")
    if keep_old_db:
        answer["steps_after"].append(f"kept the old database {answer.get('old_db')}")
        return
    dropped = call_helper(target.connection, {
        "action": "drop", "site": site, "sites_dir": target.sites_dir, "database": answer.get("old_db"),
        "user": answer.get("old_user") if answer.get("new_user") else None,
        "root_user": str(target.var("db_root_username") or "root"),
        "root_password": str(target.var("db_root_password") or ""),
    }, become_user=target.frappe_user, timeout=600)
    if not dropped.get("ok"):
        answer["steps_after"].append(f"the old database {answer.get('old_db')} was not dropped: {dropped.get('error')}")
    else:
        answer["steps_after"].extend(dropped.get("steps_after", []))


def restore_site(target: HostTarget, backup: StoredBackup, *, site: str, to_site: str | None, force: bool,
                 backup_dir: Path, run_id: str, key: bytes | None, report: BackupReport,
                 keep_old_db: bool, peers: Sequence[HostTarget] = ()) -> dict[str, Any]:
    """Restore one backup onto ``target``; the helper's answer (steps done) or BackupError.

    ``peers``: the other app hosts of a multi-server bench (their locks are taken too); they are
    pointed at the restored database before the old one is dropped.
    """
    from ..hostlock import HostLock

    with tempfile.TemporaryDirectory(prefix="provision-restore-") as scratch, contextlib.ExitStack() as held:
        plain = check_stored(backup, key, Path(scratch))
        report.line(f"checked {backup.path} (every file matches its manifest)")
        for peer in peers:
            held.enter_context(HostLock(peer.connection, operation="restore", run_id=run_id))  # type: ignore[arg-type]
        with HostLock(target.connection, operation="restore", run_id=run_id):  # type: ignore[arg-type]
            live = site in list_sites(target)
            if to_site:
                if to_site in list_sites(target):
                    raise OptionsError(f"site {to_site} already exists on {target.name}",
                                       hint="choose a new name for --to-site, or restore over it with SITE and --force")
            elif not live:
                raise OptionsError(f"site {site} does not exist on {target.name}",
                                   hint=f"restore it beside the others with --to-site {site}")
            elif not force:
                raise OptionsError(f"site {site} on {target.name} is live: restoring would replace its data",
                                   hint="add --force (a safety backup of it is pulled first)")
            if live and force and not to_site:
                safety = backup_site(target, site, backup_dir, with_files=True, encrypt_key=key, kind="safety")
                if safety.status != "ok":
                    raise BackupError(f"the safety backup of {site} failed, nothing was restored: {safety.msg}")
                report.line(f"safety backup of {site}: {safety.path}")
            suffix = datetime.now(UTC).strftime("%y%m%d%H%M%S")
            remote_dir = f"{target.host_backup_root}/restore-{site}-{suffix}"
            try:
                paths = upload_backup(target, backup, plain, remote_dir)
                apps = call_helper(target.connection, {"action": "apps", "bench_path": target.bench_path},
                                   become_user=target.frappe_user, timeout=120)
                migrate = bool(apps.get("ok")) and needs_migrate(backup.manifest, apps.get("apps", []))
                answer = call_helper(target.connection, {
                    "action": "import", "mode": "new-site" if to_site else "switch", "site": site,
                    "to_site": to_site, "suffix": suffix, "sites_dir": target.sites_dir,
                    "bench_path": target.bench_path, "bench_cli": target.bench_cli, "dump": paths["dump"],
                    "tars": [paths[k] for k in ("public", "private") if k in paths],
                    "site_config": paths.get("config"), "tables": backup.manifest.get("tables", {}),
                    "migrate": migrate and not to_site, "keep_old_db": keep_old_db or bool(peers and not to_site),
                    "root_user": str(target.var("db_root_username") or "root"),
                    "root_password": str(target.var("db_root_password") or ""),
                }, become_user=target.frappe_user, timeout=7200)
            finally:
                run_script(target.connection, f"rm -rf -- {shlex.quote(remote_dir)}", become_user=target.frappe_user)
            if not answer.get("ok"):
                raise BackupError(f"restore of {site} on {target.name} failed, the site keeps its old data: "
                                  f"{answer.get('error')}")
            if peers and not to_site:
                point_peers(target, peers, site, answer, keep_old_db=keep_old_db)
            return answer


def verify_backup(target: HostTarget, backup: StoredBackup, *, site: str, run_id: str,
                  key: bytes | None) -> dict[str, Any]:
    """Restore ``backup`` into a scratch database on ``target``, compare every table's row count, drop it."""
    from ..hostlock import HostLock

    with tempfile.TemporaryDirectory(prefix="provision-verify-") as scratch:
        plain = check_stored(backup, key, Path(scratch))
        with HostLock(target.connection, operation="backup-verify", run_id=run_id):  # type: ignore[arg-type]
            suffix = datetime.now(UTC).strftime("%y%m%d%H%M%S")
            remote_dir = f"{target.host_backup_root}/verify-{site}-{suffix}"
            try:
                paths = upload_backup(target, backup, plain, remote_dir)
                return call_helper(target.connection, {
                    "action": "import", "mode": "scratch", "site": site, "suffix": suffix,
                    "sites_dir": target.sites_dir, "bench_path": target.bench_path, "dump": paths["dump"],
                    "tables": backup.manifest.get("tables", {}),
                    "root_user": str(target.var("db_root_username") or "root"),
                    "root_password": str(target.var("db_root_password") or ""),
                }, become_user=target.frappe_user, timeout=7200)
            finally:
                run_script(target.connection, f"rm -rf -- {shlex.quote(remote_dir)}", become_user=target.frappe_user)
