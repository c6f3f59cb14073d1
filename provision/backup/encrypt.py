"""Encryption at rest of pulled backups on the control host (``backup_encrypt: true``).

AES-256-GCM from the ``cryptography`` library, in pieces of 1 MiB so a file of any size streams:
each piece has its own nonce (8 random bytes of the file + a 4-byte counter) and says in its
associated data whether it is the last, so a cut or reordered file fails to decrypt. The key is
32 bytes read from ``backup_encrypt_key_file`` or the environment variable named by
``backup_encrypt_key_env`` (default ``PROVISION_BACKUP_KEY``), as raw bytes, hex or base64 — never
from a command line. Frappe's own ``gpg --passphrase`` path (key on argv) is not used.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BackupError, InventoryError
from .checks import sha256_file

MAGIC = b"PVENC1\n"
PIECE = 1 << 20
_TAG = 16
DEFAULT_KEY_ENV = "PROVISION_BACKUP_KEY"


def _decode_key(raw: bytes, where: str) -> bytes:
    text = raw.strip()
    if len(raw) == 32:
        return raw
    for decode in (binascii.unhexlify, base64.b64decode):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise InventoryError(f"the backup encryption key in {where} is not 32 bytes (raw, hex or base64)",
                         hint="make one with: python3 -c 'import secrets; print(secrets.token_hex(32))' > key; "
                              "chmod 600 key")


def load_key(variables: Mapping[str, Any]) -> bytes | None:
    """The encryption key when ``backup_encrypt`` is on, else None."""
    flag = variables.get("backup_encrypt")
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("1", "true", "yes", "on")
    if not flag:
        return None
    key_file = variables.get("backup_encrypt_key_file")
    if key_file:
        path = Path(os.path.expanduser(str(key_file)))
        try:
            return _decode_key(path.read_bytes(), str(path))
        except OSError as exc:
            raise InventoryError(f"backup_encrypt_key_file {path}: {exc.strerror}") from None
    env = str(variables.get("backup_encrypt_key_env") or DEFAULT_KEY_ENV)
    value = os.environ.get(env)
    if not value:
        raise InventoryError("backup_encrypt is on but no key was given",
                             hint=f"set backup_encrypt_key_file, or export {env} (hex or base64 of 32 bytes)")
    return _decode_key(value.encode(), f"${env}")


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def encrypt_file(source: Path, target: Path, key: bytes) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(key)
    prefix = secrets.token_bytes(8)
    with open(source, "rb") as src, open(target, "wb") as out:
        out.write(MAGIC + prefix)
        index = 0
        piece = src.read(PIECE)
        while True:
            following = src.read(PIECE)
            last = not following
            out.write(aead.encrypt(_nonce(prefix, index), piece, b"last" if last else b"more"))
            if last:
                break
            piece, index = following, index + 1
        out.flush()
        os.fsync(out.fileno())


def decrypt_file(source: Path, target: Path, key: bytes) -> None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(key)
    with open(source, "rb") as src, open(target, "wb") as out:
        if src.read(len(MAGIC)) != MAGIC:
            raise BackupError(f"{source.name} is not a file encrypted by provision")
        prefix = src.read(8)
        index = 0
        piece = src.read(PIECE + _TAG)
        while True:
            following = src.read(PIECE + _TAG)
            last = not following
            try:
                out.write(aead.decrypt(_nonce(prefix, index), piece, b"last" if last else b"more"))
            except InvalidTag:
                raise BackupError(f"{source.name} does not decrypt with this key (wrong key, or the file "
                                  "is damaged or cut)") from None
            if last:
                break
            piece, index = following, index + 1


def encrypt_backup(directory: Path, files: list[dict[str, Any]], key: bytes) -> dict[str, Any]:
    """Encrypt every pulled (already verified) file in place; what the manifest records of it."""
    encrypted = {}
    for entry in files:
        plain = directory / entry["name"]
        sealed = directory / f"{entry['name']}.enc"
        encrypt_file(plain, sealed, key)
        plain.unlink()
        encrypted[entry["name"]] = {"name": sealed.name, "size": sealed.stat().st_size, "sha256": sha256_file(sealed)}
    return {"algorithm": "AES-256-GCM", "piece": PIECE, "files": encrypted}


def decrypt_backup(directory: Path, manifest: Mapping[str, Any], key: bytes | None, into: Path) -> Path:
    """A directory holding the plain files of a backup (``directory`` itself when it is not encrypted)."""
    info = manifest.get("encryption")
    if not info:
        return directory
    if key is None:
        raise BackupError(f"{directory} is encrypted: set backup_encrypt and its key to restore it")
    into.mkdir(parents=True, exist_ok=True)
    for name, sealed in info["files"].items():
        decrypt_file(directory / sealed["name"], into / name, key)
    return into
