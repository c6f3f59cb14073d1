"""Secrets at rest: the vault format and its cryptography.

Our format, version 1, is a header line and base64 lines::

    $PROVISION_VAULT;1;AESGCM;scrypt;<vault id>
    <base64 of: log2(N) r p (one byte each) | salt (16) | nonce (12) | AES-256-GCM ciphertext and tag>

The key is scrypt(password, salt, N, r, p) with a random salt per encryption; the header line and
the scrypt parameters are the GCM associated data, so a changed byte anywhere (header, vault id,
parameters, salt, ciphertext) fails the tag check. The vault id names which password opens it.

Ansible Vault 1.1 and 1.2 envelopes (``$ANSIBLE_VAULT;1.1;AES256`` [``;id``]) are read too, built
from their published description: hex of ``hex(salt) \\n hex(hmac) \\n hex(ciphertext)``, keys from
PBKDF2-HMAC-SHA256 (10000 rounds, 80 bytes: AES key, HMAC key, CTR counter), AES-256-CTR over
PKCS#7-padded text, HMAC-SHA256 of the ciphertext. Passwords come from ``vaultkeys``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from dataclasses import dataclass

from .errors import InputError

HEADER = "$PROVISION_VAULT"
ANSIBLE_HEADER = "$ANSIBLE_VAULT"
VERSION = "1"
DEFAULT_ID = "default"

# scrypt cost: N=2^15, r=8 (32 MiB, ~0.1 s); a reader accepts up to 2^20 so the cost can grow,
# and no more, so a crafted file cannot make us allocate gigabytes.
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
_MAX_LOG2_N, _MAX_R, _MAX_P = 20, 16, 4
_SALT, _NONCE = 16, 12
_LINE_WIDTH = 76

_VAULT_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


class VaultError(InputError):
    """A vault cannot be opened or written: no password, wrong password, damaged data."""


class WrongPassword(Exception):
    """This password does not open this envelope (or the envelope was changed)."""


class Malformed(Exception):
    """The envelope is not a vault we can read; the message says why."""


@dataclass(frozen=True)
class Envelope:
    """A parsed vault header: which format, and which vault id it names (None: any)."""

    kind: str  # "provision" or "ansible"
    vault_id: str | None
    header: str
    body: str


def is_encrypted(text: str) -> bool:
    """True if ``text`` is a whole vault envelope (ours or Ansible's)."""
    head = text.lstrip()
    return head.startswith(HEADER + ";") or head.startswith(ANSIBLE_HEADER + ";")


def check_vault_id(vault_id: str) -> str:
    """``vault_id`` if it can stand in a header, else a ``VaultError``."""
    if not _VAULT_ID.match(vault_id):
        raise VaultError(f"bad vault id {vault_id!r}", hint="use letters, digits, '.', '_' or '-', e.g. prod")
    return vault_id


def parse_envelope(text: str) -> Envelope:
    """Split an envelope into header and body; ``Malformed`` if it is not one."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or not lines[0]:
        raise Malformed("empty vault data")
    header, body = lines[0], "".join(lines[1:])
    fields = header.split(";")
    if fields[0] == HEADER:
        if len(fields) != 5 or fields[1] != VERSION or fields[2:4] != ["AESGCM", "scrypt"]:
            raise Malformed(f"unknown vault header {header!r} (this version reads {HEADER};{VERSION};AESGCM;scrypt)")
        return Envelope("provision", fields[4] or None, header, body)
    if fields[0] == ANSIBLE_HEADER:
        if len(fields) < 3 or fields[1] not in ("1.1", "1.2") or fields[2] != "AES256":
            raise Malformed(f"unsupported Ansible vault header {header!r} (1.1 and 1.2 with AES256 are read)")
        vault_id = fields[3] if fields[1] == "1.2" and len(fields) > 3 and fields[3] else None
        return Envelope("ansible", vault_id, header, body)
    raise Malformed("no vault header (expected $PROVISION_VAULT or $ANSIBLE_VAULT on the first line)")


def encrypt(plaintext: str, password: str, vault_id: str = DEFAULT_ID) -> str:
    """``plaintext`` as a version-1 envelope (text ending in a newline), under ``password``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = f"{HEADER};{VERSION};AESGCM;scrypt;{check_vault_id(vault_id)}"
    params = bytes([SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P])
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    key = _scrypt(password, salt, params)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), header.encode() + params)
    payload = base64.b64encode(params + salt + nonce + sealed).decode("ascii")
    lines = [payload[i:i + _LINE_WIDTH] for i in range(0, len(payload), _LINE_WIDTH)]
    return "\n".join([header, *lines]) + "\n"


def decrypt(text: str, password: str) -> str:
    """The plaintext of an envelope; ``WrongPassword`` or ``Malformed`` otherwise."""
    envelope = parse_envelope(text)
    if envelope.kind == "ansible":
        return _decrypt_ansible(envelope.body, password)
    return _decrypt_provision(envelope, password)


def _scrypt(password: str, salt: bytes, params: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    log2_n, r, p = params
    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(password.encode("utf-8"))


def _decrypt_provision(envelope: Envelope, password: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(envelope.body, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("the encrypted data is not valid base64 (was the file edited by hand?)") from None
    if len(raw) < 3 + _SALT + _NONCE + 16:
        raise Malformed("the encrypted data is truncated")
    params, salt, nonce = raw[:3], raw[3:3 + _SALT], raw[3 + _SALT:3 + _SALT + _NONCE]
    log2_n, r, p = params
    if not (10 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise Malformed(f"scrypt parameters out of range (N=2^{log2_n}, r={r}, p={p})")
    key = _scrypt(password, salt, params)
    try:
        plain = AESGCM(key).decrypt(nonce, raw[3 + _SALT + _NONCE:], envelope.header.encode() + params)
    except InvalidTag:
        raise WrongPassword() from None
    return _text(plain)


def _decrypt_ansible(body: str, password: str) -> str:
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives import hmac as crypto_hmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    try:
        salt_hex, mac_hex, data_hex = binascii.unhexlify(body).split(b"\n")
        salt, mac, data = (binascii.unhexlify(part) for part in (salt_hex, mac_hex, data_hex))
    except (binascii.Error, ValueError):
        raise Malformed("the Ansible vault data is not hex of salt, HMAC and ciphertext") from None
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=10000).derive(
        password.encode("utf-8"))
    aes_key, mac_key, counter = derived[:32], derived[32:64], derived[64:]
    signer = crypto_hmac.HMAC(mac_key, hashes.SHA256())
    signer.update(data)
    if not hmac.compare_digest(signer.finalize(), mac):
        raise WrongPassword()
    decryptor = Cipher(algorithms.AES(aes_key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise Malformed("the Ansible vault data has bad padding") from None
    return _text(plain)


def _text(plain: bytes) -> str:
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the decrypted data is not UTF-8 text") from None
