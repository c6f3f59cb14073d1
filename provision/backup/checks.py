"""Checks of pulled backup files on the control host: checksum, gzip integrity, dump completion, tar listing."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from pathlib import Path

# mysqldump and mariadb-dump end a complete dump with this comment line (unless --skip-comments).
DUMP_DONE = b"-- Dump completed"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_gzip_dump(path: Path) -> str | None:
    """Why a ``.sql.gz`` dump is not whole (like ``gzip -t`` plus the completion line), or None."""
    tail = b""
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                tail = (tail + block)[-4096:]
    except (OSError, EOFError, zlib.error) as exc:
        return f"{path.name}: not a whole gzip file ({exc})"
    if DUMP_DONE not in tail:
        return f"{path.name}: the dump has no completion line ({DUMP_DONE.decode()!r}): it was cut short"
    return None


def check_tar(path: Path) -> str | None:
    """Why a files archive cannot be listed to its end (like ``tar -t``), or None."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for _ in archive:
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return f"{path.name}: not a whole tar archive ({exc})"
    return None


def check_content(path: Path) -> str | None:
    """The content check a backup file's kind calls for (dump, tar, or JSON config)."""
    name = path.name
    if name.endswith(".sql.gz"):
        return check_gzip_dump(path)
    if name.endswith((".tar", ".tgz", ".tar.gz")):
        return check_tar(path)
    if name.endswith(".json"):
        import json

        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return f"{name}: not valid JSON ({exc})"
    return None


def check_file(path: Path, *, size: int, sha256: str) -> str | None:
    """Why a pulled file is not the one the host described, or its content is broken; None when good."""
    if not path.exists():
        return f"{path.name}: missing"
    actual = path.stat().st_size
    if actual != size:
        return f"{path.name}: {actual} bytes, the host had {size}"
    if sha256_file(path) != sha256:
        return f"{path.name}: sha256 differs from the host's"
    return check_content(path)
