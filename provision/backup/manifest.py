"""Backups on the control host: where they live, their ``manifest.json``, and what a manifest may hold.

Layout: ``<backup_dir>/<group>/<host>/<site>/<timestamp>/`` with the pulled files and
``manifest.json``. A backup being pulled lives in ``<timestamp>.partial/`` (with ``pending.json``,
what the host still holds) and is renamed to ``<timestamp>`` only once every file is verified, so a
directory without the suffix is always a complete, verified backup.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..secrets import is_secret_name

MANIFEST = "manifest.json"
PENDING = "pending.json"
PARTIAL = ".partial"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
# Site config keys that hold credentials beyond what ``is_secret_name`` catches (Frappe's own names).
_SECRET_KEYS = re.compile(r"(password|passwd|secret|token|key|credential|auth|dsn|private)", re.IGNORECASE)


def stamp(moment: datetime) -> str:
    """The directory name of a backup taken at ``moment`` (UTC)."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(name: str) -> datetime | None:
    """The moment a backup directory name stands for, or None when it is not one."""
    if not _STAMP.match(name):
        return None
    return datetime.strptime(name[:16], STAMP_FORMAT).replace(tzinfo=UTC)


def strip_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """A site config without anything that looks like a password, secret, token or key (nested too)."""
    clean: dict[str, Any] = {}
    for key, value in config.items():
        if is_secret_name(str(key)) or _SECRET_KEYS.search(str(key)):
            continue
        if isinstance(value, Mapping):
            value = strip_secrets(value)
        elif isinstance(value, str) and re.match(r"^\w+://[^/\s:]+:[^@/\s]+@", value):
            continue  # a URL with credentials in it (redis://user:pw@host)
        clean[str(key)] = value
    return clean


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (temp file beside it, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


@dataclass(frozen=True)
class StoredBackup:
    """One finished backup directory of a site on the control host."""

    path: Path
    taken: datetime
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def verified(self) -> bool:
        return bool(self.manifest.get("verified"))


def site_dir(backup_dir: Path, group: str, host: str, site: str) -> Path:
    return backup_dir / group / host / site


def stored_backups(directory: Path) -> list[StoredBackup]:
    """The finished backups of one site's directory, oldest first (partial and foreign dirs left out)."""
    found = []
    if not directory.is_dir():
        return []
    for entry in directory.iterdir():
        taken = parse_stamp(entry.name)
        if taken is None or not entry.is_dir():
            continue
        try:
            manifest = read_json(entry / MANIFEST)
        except (OSError, ValueError):
            manifest = {}
        found.append(StoredBackup(entry, taken, manifest))
    return sorted(found, key=lambda b: (b.taken, b.name))


def site_dirs(backup_dir: Path, group: str | None = None) -> Iterator[tuple[str, str, str, Path]]:
    """Every (group, host, site, directory) under the backup directory."""
    if not backup_dir.is_dir():
        return
    for group_dir in sorted(p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if group is not None and group_dir.name != group:
            continue
        for host_dir in sorted(p for p in group_dir.iterdir() if p.is_dir()):
            for site_path in sorted(p for p in host_dir.iterdir() if p.is_dir()):
                yield group_dir.name, host_dir.name, site_path.name, site_path


def find_backup(backup_dir: Path, host: str, site: str, which: str) -> StoredBackup | None:
    """The backup ``which`` (a timestamp, or ``latest``: the newest verified) of a site, any group."""
    candidates = [b for _, h, s, path in site_dirs(backup_dir) if h == host and s == site
                  for b in stored_backups(path) if b.verified]
    candidates.sort(key=lambda b: b.taken)
    if which == "latest":
        return candidates[-1] if candidates else None
    return next((b for b in candidates if b.name == which or b.name.startswith(which)), None)
