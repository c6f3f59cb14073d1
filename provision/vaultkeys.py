"""Where vault passwords come from, and how YAML loading opens vaults with them.

A ``Keyring`` holds the password sources of one command, in the order given: ``--vault-id
ID@SOURCE`` (SOURCE is a file, an executable that prints the password, or ``prompt``),
``--vault-password-file FILE``, ``--ask-vault-pass``, then ``$PROVISION_VAULT_PASSWORD_FILE`` and
``$ANSIBLE_VAULT_PASSWORD_FILE``. A source is read only when a vault needs it, once per command.
The CLI installs the keyring with ``use_keyring`` before anything is loaded; ``yamlfile`` calls
``open_value`` for ``!vault`` scalars and ``open_file_text`` for whole encrypted files. Every
password and every decrypted value goes into the command's ``Redactor``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Source
from .secrets import Redactor, Secret
from .vault import DEFAULT_ID, Malformed, VaultError, WrongPassword, check_vault_id, decrypt, parse_envelope

PROMPT = "prompt"
ENV_VARS = ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
SCRIPT_TIMEOUT = 300.0  # a password script may ask a keyring (or a person) first

_HINT = ("give the password with --vault-password-file FILE, --vault-id ID@FILE, --ask-vault-pass "
         "or $PROVISION_VAULT_PASSWORD_FILE")


@dataclass(frozen=True)
class PasswordSource:
    """One place a vault password comes from: a file, an executable, or a prompt."""

    vault_id: str
    location: str  # a path, or "prompt"

    def describe(self) -> str:
        where = "a prompt" if self.location == PROMPT else self.location
        return f"vault id {self.vault_id!r} from {where}"


def parse_vault_id(text: str) -> PasswordSource:
    """``ID@SOURCE`` or ``SOURCE`` (the default id), as ``--vault-id`` takes it."""
    vault_id, at, location = text.partition("@")
    if not at:
        vault_id, location = DEFAULT_ID, text
    if not location:
        raise VaultError(f"--vault-id {text!r} names no password source",
                         hint="write --vault-id prod@FILE or ID@prompt")
    return PasswordSource(check_vault_id(vault_id), location)


class Keyring:
    """The vault passwords of one command, read lazily and cached."""

    def __init__(self, sources: list[PasswordSource], redactor: Redactor | None = None) -> None:
        self.sources = sources
        self.redactor = redactor if redactor is not None else Redactor()
        self._passwords: dict[PasswordSource, str] = {}

    def password(self, source: PasswordSource, *, confirm: bool = False) -> str:
        """The password of ``source`` (read, run or asked for once)."""
        if source not in self._passwords:
            password = _ask(source, confirm) if source.location == PROMPT else _read(source)
            if not password:
                raise VaultError(f"the vault password from {source.describe()} is empty", hint=_HINT)
            self.redactor.add([password])
            self._passwords[source] = password
        return self._passwords[source]

    def open(self, text: str, where: str) -> str:
        """The plaintext of envelope ``text`` found at ``where`` (file or file:line)."""
        return self.unlock(text, where)[0]

    def unlock(self, text: str, where: str) -> tuple[str, PasswordSource]:
        """(plaintext, the source whose password opened it) of envelope ``text``."""
        try:
            envelope = parse_envelope(text)
        except Malformed as exc:
            raise VaultError(f"cannot open the vault in {where}: {exc}",
                             hint="re-create it with `provision vault encrypt`") from None
        if not self.sources:
            raise VaultError(f"{where} is encrypted (vault id {envelope.vault_id or DEFAULT_ID!r}) "
                             "and no vault password was given", hint=_HINT)
        # The source named by the envelope's vault id first, then the others, as Ansible does.
        ordered = sorted(self.sources, key=lambda s: s.vault_id != envelope.vault_id)
        for source in ordered:
            try:
                plain = decrypt(text, self.password(source))
            except WrongPassword:
                continue
            except Malformed as exc:
                raise VaultError(f"cannot open the vault in {where}: {exc}") from None
            return plain, source
        tried = ", ".join(s.describe() for s in ordered)
        raise VaultError(f"cannot open the vault in {where}: no vault password given opens it, or its content "
                         f"was changed (tried {tried})",
                         hint="check the password file or vault id for this file; a damaged file must be "
                              "restored from git")

    def for_encryption(self, vault_id: str | None) -> tuple[str, str]:
        """(vault id, password) to encrypt with: the one source, or the one named ``vault_id``."""
        if vault_id is not None:
            matches = [s for s in self.sources if s.vault_id == vault_id]
            source = matches[0] if matches else PasswordSource(check_vault_id(vault_id), PROMPT)
        elif len({s.vault_id for s in self.sources}) > 1:
            ids = ", ".join(sorted({s.vault_id for s in self.sources}))
            raise VaultError(f"several vault ids are given ({ids}): which one encrypts?",
                             hint="add --encrypt-vault-id ID")
        else:
            source = self.sources[0] if self.sources else PasswordSource(DEFAULT_ID, PROMPT)
        return source.vault_id, self.password(source, confirm=source.location == PROMPT)


def _read(source: PasswordSource) -> str:
    path = Path(source.location).expanduser()
    if not path.is_file():
        raise VaultError(f"vault password file {path} not found ({source.describe()})",
                         hint="check the path, or use ID@prompt to type the password")
    if os.access(path, os.X_OK):
        # An executable prints the password (a keyring, a secrets manager); a "*-client" script is
        # told which vault id is wanted, as Ansible's vault-id clients are.
        command = [str(path.resolve())]
        if path.stem.endswith("-client"):
            command += ["--vault-id", source.vault_id]
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, timeout=SCRIPT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VaultError(f"vault password script {path} could not run: {exc}") from None
        if done.returncode != 0:
            raise VaultError(f"vault password script {path} exited with {done.returncode}",
                             hint="run it by hand to see why; it must print the password on stdout")
        return done.stdout.decode("utf-8", errors="replace").strip()
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read vault password file {path}: {exc}") from None


def _ask(source: PasswordSource, confirm: bool) -> str:
    label = "" if source.vault_id == DEFAULT_ID else f" ({source.vault_id})"
    try:
        password = getpass.getpass(f"{'New vault' if confirm else 'Vault'} password{label}: ")
        if confirm and getpass.getpass(f"Confirm vault password{label}: ") != password:
            raise VaultError("the two vault passwords typed differ", hint="type the same password twice")
    except EOFError:
        raise VaultError(f"no vault password typed ({source.describe()})", hint=_HINT) from None
    return password


# -- the command's keyring, and the hooks yamlfile calls ------------------------------------------

_current: Keyring | None = None


def add_vault_options(parser: argparse.ArgumentParser | Any) -> None:
    """The vault password options (on the engine's common options and on `provision vault`)."""
    parser.add_argument("--vault-id", action="append", default=[], metavar="ID@SOURCE",
                        help="vault password for vault id ID from a file, an executable or 'prompt' (repeatable)")
    parser.add_argument("--vault-password-file", action="append", default=[], metavar="FILE",
                        help="vault password file, or an executable printing it "
                             "(default: $PROVISION_VAULT_PASSWORD_FILE or $ANSIBLE_VAULT_PASSWORD_FILE)")
    parser.add_argument("--ask-vault-pass", "--ask-vault-password", action="store_true",
                        help="prompt for the vault password")


def keyring_from_args(args: argparse.Namespace, redactor: Redactor) -> Keyring:
    """The keyring of a parsed command line (options that a command lacks count as not given)."""
    sources = [parse_vault_id(text) for text in getattr(args, "vault_id", [])]
    sources += [PasswordSource(DEFAULT_ID, path) for path in getattr(args, "vault_password_file", [])]
    for source in sources:
        if source.location != PROMPT and not Path(source.location).expanduser().is_file():
            raise VaultError(f"vault password file {source.location} not found",
                             hint="check the path given to --vault-id / --vault-password-file")
    if getattr(args, "ask_vault_pass", False):
        sources.append(PasswordSource(DEFAULT_ID, PROMPT))
    for name in ENV_VARS:
        value = os.environ.get(name)
        if value and all(s.location != value for s in sources):
            sources.append(PasswordSource(DEFAULT_ID, value))
    return Keyring(sources, redactor)


def use_keyring(keyring: Keyring | None) -> None:
    """Install the keyring that YAML loading opens vaults with (None: rebuild from the environment)."""
    global _current
    _current = keyring


def current_keyring() -> Keyring:
    """The installed keyring, or one from the environment variables alone."""
    global _current
    if _current is None:
        _current = keyring_from_args(argparse.Namespace(), Redactor())
    return _current


def open_value(text: str, where: Source) -> Secret:
    """A ``!vault`` scalar's plaintext, as a secret."""
    keyring = current_keyring()
    plain = keyring.open(text, str(where))
    keyring.redactor.add([plain])
    return Secret(plain)


def open_file_text(text: str, where: str) -> str:
    """A whole encrypted file's plaintext (parse it, then pass the data to ``secret_leaves``)."""
    return current_keyring().open(text, where)


def secret_leaves(data: Any) -> Any:
    """Every string in ``data`` made a ``Secret``, in place; every scalar learnt by the redactor."""
    redactor = current_keyring().redactor

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            redactor.add([value])
            return Secret(value)
        if isinstance(value, dict):
            for key in value:
                value[key] = walk(value[key])
        elif isinstance(value, list):
            value[:] = [walk(item) for item in value]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            redactor.add([str(value)])
        return value

    return walk(data)
