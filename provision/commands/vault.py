"""``provision vault``: encrypt, decrypt, view, edit and rekey vault files; encrypt single values.

Files are rewritten atomically (temp file beside the target, fsync, rename). ``edit`` decrypts into
a private directory (mode 700, on /dev/shm when there is one, so plaintext stays in memory), runs
``$EDITOR`` on a mode-600 file there, and removes the directory whatever happens: editor crash,
Ctrl-C, SIGTERM or SIGHUP; the copy of an edit killed outright (SIGKILL) is removed by the next
one. Values to encrypt are read from stdin or a hidden prompt, never from the command line, where
``ps`` would show them.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..localfiles import write_atomic

if TYPE_CHECKING:
    from provision.vaultkeys import Keyring


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``provision vault ACTION`` (its own options: the vault password ones)."""
    from provision.vaultkeys import add_vault_options

    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("vault passwords")
    add_vault_options(group)
    group.add_argument("-v", "--verbose", action="count", default=0, help="tracebacks on errors (-vv)")
    encrypting = argparse.ArgumentParser(add_help=False)
    encrypting.add_argument("--encrypt-vault-id", metavar="ID",
                            help="the vault id to encrypt with, when several are given")

    vault = commands.add_parser("vault", help="encrypt secrets at rest (vault files and !vault values)",
                                description="Encrypted files and values, opened transparently by every "
                                            "command given the vault password.")
    actions = vault.add_subparsers(dest="vault_action", metavar="ACTION", parser_class=type(vault))
    vault.set_defaults(func=lambda args: vault.print_help() or 4)

    def action(name: str, help_text: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text,
                                                             parents=parents)
        return parser

    encrypt = action("encrypt", "encrypt files in place", [options, encrypting])
    encrypt.add_argument("files", nargs="+", type=Path, metavar="FILE")
    encrypt.set_defaults(func=cmd_encrypt)
    decrypt = action("decrypt", "decrypt files in place (the plaintext is then on disk)", [options])
    decrypt.add_argument("files", nargs="+", type=Path, metavar="FILE")
    decrypt.set_defaults(func=cmd_decrypt)
    view = action("view", "print the plaintext of vault files", [options])
    view.add_argument("files", nargs="+", type=Path, metavar="FILE")
    view.set_defaults(func=cmd_view)
    edit = action("edit", "edit a vault file in $EDITOR (creates it when missing)", [options, encrypting])
    edit.add_argument("file", type=Path, metavar="FILE")
    edit.set_defaults(func=cmd_edit)
    string = action("encrypt-string", "encrypt a value read from stdin (or a prompt) as a !vault YAML value",
                    [options, encrypting])
    string.add_argument("--name", metavar="VAR", help="print it as 'VAR: !vault |' ready to paste")
    string.set_defaults(func=cmd_encrypt_string)
    rekey = action("rekey", "re-encrypt files with a new password", [options])
    rekey.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rekey.add_argument("--new-vault-id", metavar="ID@SOURCE", help="the new vault id and password source")
    rekey.add_argument("--new-vault-password-file", metavar="FILE", help="the new password (default: a prompt)")
    rekey.set_defaults(func=cmd_rekey)


def _keyring() -> Keyring:
    from provision.vaultkeys import current_keyring

    return current_keyring()


def _read(path: Path) -> str:
    from provision.vault import VaultError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VaultError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read {path}: {exc}") from None


def _read_vault(path: Path) -> str:
    from provision.vault import VaultError, is_encrypted

    text = _read(path)
    if not is_encrypted(text):
        raise VaultError(f"{path} is not a vault file", hint=f"encrypt it first: provision vault encrypt {path}")
    return text


def cmd_encrypt(args: argparse.Namespace) -> int:
    from provision.vault import VaultError, encrypt, is_encrypted

    texts = {path: _read(path) for path in args.files}
    for path, text in texts.items():
        if is_encrypted(text):
            raise VaultError(f"{path} is already encrypted", hint="use `provision vault edit` or `rekey`")
    vault_id, password = _keyring().for_encryption(args.encrypt_vault_id)
    for path, text in texts.items():
        write_atomic(path, encrypt(text, password, vault_id))
        print(f"encrypted {path} (vault id {vault_id})", file=sys.stderr)
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    keyring = _keyring()
    plain = {path: keyring.open(_read_vault(path), str(path)) for path in args.files}
    for path, text in plain.items():
        write_atomic(path, text)
        print(f"decrypted {path}", file=sys.stderr)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    keyring = _keyring()
    for path in args.files:
        sys.stdout.write(keyring.open(_read_vault(path), str(path)))
    return 0


def cmd_encrypt_string(args: argparse.Namespace) -> int:
    from provision.vault import VaultError, encrypt

    if sys.stdin.isatty():
        value = getpass.getpass("Value to encrypt (hidden): ")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value  # `echo` adds one
    if not value:
        raise VaultError("nothing to encrypt: the value read from stdin is empty",
                         hint="printf %s VALUE | provision vault encrypt-string --name VAR")
    vault_id, password = _keyring().for_encryption(args.encrypt_vault_id)
    body = "".join(f"  {line}\n" for line in encrypt(value, password, vault_id).splitlines())
    print(f"{args.name + ': ' if args.name else ''}!vault |\n{body}", end="")
    return 0


def cmd_rekey(args: argparse.Namespace) -> int:
    from provision.vault import DEFAULT_ID, encrypt, parse_envelope
    from provision.vaultkeys import PROMPT, Keyring, PasswordSource, parse_vault_id

    keyring = _keyring()
    opened = {path: keyring.unlock(_read_vault(path), str(path)) for path in args.files}
    if args.new_vault_id:
        new_source = parse_vault_id(args.new_vault_id)
    else:
        new_source = PasswordSource(DEFAULT_ID, args.new_vault_password_file or PROMPT)
    new_password = Keyring([new_source], keyring.redactor).password(new_source, confirm=new_source.location == PROMPT)
    for path, (plain, source) in opened.items():
        old_id = parse_envelope(_read(path)).vault_id or source.vault_id
        vault_id = new_source.vault_id if args.new_vault_id else old_id
        write_atomic(path, encrypt(plain, new_password, vault_id))
        print(f"rekeyed {path} (vault id {vault_id})", file=sys.stderr)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from provision.errors import EXIT_INTERRUPTED, ProvisionError
    from provision.vault import encrypt, parse_envelope

    path: Path = args.file
    keyring = _keyring()
    if path.exists():
        text = _read_vault(path)
        plain, source = keyring.unlock(text, str(path))
        vault_id, password = parse_envelope(text).vault_id or source.vault_id, keyring.password(source)
    else:
        plain = ""
        vault_id, password = keyring.for_encryption(args.encrypt_vault_id)
    try:
        with private_copy(path.name, plain) as temp:
            editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
            try:
                done = subprocess.run([*editor, str(temp)], check=False)
            except OSError as exc:
                raise ProvisionError(f"cannot run the editor {editor[0]!r}: {exc}", hint="set $EDITOR") from None
            if done.returncode != 0:
                code = done.returncode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
                raise ProvisionError(f"the editor {how}; {path} is unchanged")
            edited = temp.read_text(encoding="utf-8")
    except _Stopped:
        print(f"\nstopped: {path} is unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    if edited == plain and path.exists():
        print(f"{path} unchanged", file=sys.stderr)
        return 0
    keyring.redactor.add([edited])
    write_atomic(path, encrypt(edited, password, vault_id))
    print(f"saved {path} (vault id {vault_id})", file=sys.stderr)
    return 0


class _Stopped(BaseException):
    """SIGTERM or SIGHUP during an edit: unwind so the plaintext copy is removed."""


@contextlib.contextmanager
def private_copy(name: str, plain: str) -> Iterator[Path]:
    """``plain`` in a mode-600 file in a fresh mode-700 directory, removed on leaving, whatever happens."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else Path(tempfile.gettempdir())
    _scrub_stale(base)
    directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        temp = directory / name
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(plain)
        yield temp
    finally:
        _scrub(directory)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_PREFIX = "provision-vault-"


def _scrub_stale(base: Path) -> None:
    """Remove the copies of edits whose process died without its ``finally`` (SIGKILL, power loss on tmp)."""
    for entry in base.glob(f"{_PREFIX}*"):
        pid = entry.name[len(_PREFIX):].split("-")[0]
        with contextlib.suppress(OSError):
            if not pid.isdigit() or entry.stat().st_uid != os.getuid() or not entry.is_dir():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # its editor is still open
            except ProcessLookupError:
                _scrub(entry)


def _scrub(directory: Path) -> None:
    """Overwrite every file under ``directory`` (editors leave swap and backup files) and remove it."""
    for entry in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file() and not entry.is_symlink():
                size = entry.stat().st_size
                with entry.open("r+b") as stream:
                    stream.write(b"\0" * size)
                    stream.flush()
                    os.fsync(stream.fileno())
    shutil.rmtree(directory, ignore_errors=True)
