"""The vault format: round trips, wrong passwords, tampering, vault ids, and Ansible's own files."""

from __future__ import annotations

import base64
import binascii
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.errors import EXIT_BAD_INPUT
from provision.secrets import Redactor
from provision.vault import Malformed, VaultError, WrongPassword, decrypt, encrypt, is_encrypted, parse_envelope
from provision.vaultkeys import PROMPT, Keyring, PasswordSource, parse_vault_id, use_keyring

pytestmark = pytest.mark.unit

ANSIBLE_VAULT = Path(sys.executable).parent / "ansible-vault"
TEXT = "db_root_password: Sup3r-Secret-Ünïcode\nsites:\n  - a.example.com\n"


@pytest.fixture(autouse=True)
def no_keyring() -> Iterator[None]:
    use_keyring(None)
    yield
    use_keyring(None)


def password_file(tmp_path: Path, name: str, password: str) -> Path:
    path = tmp_path / name
    path.write_text(password + "\n")
    return path


def test_round_trip_and_a_fresh_salt_each_time() -> None:
    first, second = encrypt(TEXT, "pw-one"), encrypt(TEXT, "pw-one")
    assert first.startswith("$PROVISION_VAULT;1;AESGCM;scrypt;default\n")
    assert is_encrypted(first)
    assert first != second  # salt and nonce are random
    assert "Secret" not in first
    assert decrypt(first, "pw-one") == TEXT == decrypt(second, "pw-one")
    assert parse_envelope(encrypt("x", "p", "prod")).vault_id == "prod"
    assert decrypt(encrypt("", "p"), "p") == ""


def test_wrong_password_is_refused() -> None:
    with pytest.raises(WrongPassword):
        decrypt(encrypt(TEXT, "right"), "wrong")


def test_every_changed_byte_is_detected() -> None:
    envelope = encrypt(TEXT, "pw")
    header, *lines = envelope.splitlines()
    raw = bytearray(base64.b64decode("".join(lines)))
    for index in range(0, len(raw), 11):
        changed = bytearray(raw)
        changed[index] ^= 0x01
        text = header + "\n" + base64.b64encode(bytes(changed)).decode() + "\n"
        with pytest.raises((WrongPassword, Malformed)):
            decrypt(text, "pw")
    # The header is authenticated too: moving a file to another vault id breaks it.
    with pytest.raises(WrongPassword):
        decrypt(envelope.replace(";default\n", ";prod\n"), "pw")
    with pytest.raises(Malformed, match="base64"):
        decrypt(envelope.replace(lines[0][:4], "!!!!", 1), "pw")
    with pytest.raises(Malformed, match="header"):
        decrypt(envelope.replace(";1;", ";9;"), "pw")


def test_keyring_errors_name_the_file_and_exit_4(tmp_path: Path) -> None:
    envelope = encrypt(TEXT, "right", "prod")
    with pytest.raises(VaultError) as caught:
        Keyring([]).open(envelope, "group_vars/prod/vault.yml")
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "group_vars/prod/vault.yml is encrypted (vault id 'prod')" in caught.value.message
    assert "--vault-password-file" in str(caught.value.hint)
    wrong = Keyring([PasswordSource("prod", str(password_file(tmp_path, "pw", "wrong")))])
    with pytest.raises(VaultError) as caught:
        wrong.open(envelope, "inventory.yml:7")
    assert "cannot open the vault in inventory.yml:7" in caught.value.message
    assert str(tmp_path / "pw") in caught.value.message
    missing = Keyring([PasswordSource("prod", str(tmp_path / "nope"))])
    with pytest.raises(VaultError, match=r"vault password file .*nope not found"):
        missing.open(envelope, "x.yml")
    with pytest.raises(VaultError, match=r"cannot open the vault in x\.yml: no vault header"):
        missing.open("$NOT_A_VAULT;1\n00\n", "x.yml")


def test_several_vault_ids_each_open_their_own(tmp_path: Path) -> None:
    prod = PasswordSource("prod", str(password_file(tmp_path, "prod.pw", "prod-pass")))
    dev = PasswordSource("dev", str(password_file(tmp_path, "dev.pw", "dev-pass")))
    redactor = Redactor()
    keyring = Keyring([prod, dev], redactor)
    assert keyring.open(encrypt("p", "prod-pass", "prod"), "a") == "p"
    assert keyring.open(encrypt("d", "dev-pass", "dev"), "b") == "d"
    # An envelope without a matching id is still tried against every password, as Ansible does.
    assert keyring.open(encrypt("o", "dev-pass", "other"), "c") == "o"
    assert redactor("prod-pass dev-pass") == "******** ********"
    # The matching id is tried first: the other source (a missing file here) is never read.
    lazy = Keyring([PasswordSource("dev", str(tmp_path / "missing")), prod])
    assert lazy.open(encrypt("p", "prod-pass", "prod"), "a") == "p"
    assert keyring.for_encryption("dev") == ("dev", "dev-pass")
    with pytest.raises(VaultError, match="several vault ids"):
        keyring.for_encryption(None)


def test_vault_id_option_parsing(tmp_path: Path) -> None:
    assert parse_vault_id("prod@/x/pw") == PasswordSource("prod", "/x/pw")
    assert parse_vault_id("dev@prompt") == PasswordSource("dev", PROMPT)
    assert parse_vault_id("/x/pw") == PasswordSource("default", "/x/pw")
    with pytest.raises(VaultError, match="bad vault id"):
        parse_vault_id("pr od@/x")
    with pytest.raises(VaultError, match="names no password source"):
        parse_vault_id("prod@")


def test_password_from_an_executable_and_a_vault_id_client(tmp_path: Path) -> None:
    script = tmp_path / "keyring.sh"
    script.write_text("#!/bin/sh\necho from-script-pass\n")
    script.chmod(0o700)
    client = tmp_path / "keyring-client.sh"
    client.write_text('#!/bin/sh\n[ "$1" = --vault-id ] && echo "pass-for-$2"\n')
    client.chmod(0o700)
    assert Keyring([PasswordSource("default", str(script))]).open(encrypt("v", "from-script-pass"), "f") == "v"
    assert Keyring([PasswordSource("prod", str(client))]).open(encrypt("w", "pass-for-prod", "prod"), "f") == "w"
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o700)
    with pytest.raises(VaultError, match="exited with 3"):
        Keyring([PasswordSource("default", str(failing))]).open(encrypt("v", "x"), "f")


# -- Ansible Vault files made by the real ansible-vault -------------------------------------------


def ansible_vault(*args: str, cwd: Path) -> str:
    if not ANSIBLE_VAULT.exists():
        pytest.skip("ansible-vault (ansible-core, a test extra) is not installed in this venv")
    done = subprocess.run([str(ANSIBLE_VAULT), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ansible_1_1_and_1_2_files_decrypt_identically(tmp_path: Path) -> None:
    pw = password_file(tmp_path, "pw", "ansible-pass")
    plain = tmp_path / "plain.yml"
    plain.write_text(TEXT)
    ansible_vault("encrypt", "--vault-password-file", str(pw), "--output", "v11.yml", str(plain), cwd=tmp_path)
    ansible_vault("encrypt", "--vault-id", f"prod@{pw}", "--output", "v12.yml", str(plain), cwd=tmp_path)
    v11, v12 = (tmp_path / "v11.yml").read_text(), (tmp_path / "v12.yml").read_text()
    assert v11.startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    assert v12.startswith("$ANSIBLE_VAULT;1.2;AES256;prod\n")
    assert decrypt(v11, "ansible-pass") == TEXT == decrypt(v12, "ansible-pass")
    assert parse_envelope(v12).vault_id == "prod"
    with pytest.raises(WrongPassword):
        decrypt(v11, "not-it")
    # One ciphertext digit changed (inside the outer hex, so the envelope still parses): the HMAC check fails.
    salt, mac, data = binascii.unhexlify("".join(v11.splitlines()[1:])).split(b"\n")
    data = data[:-1] + (b"0" if data[-1:] != b"0" else b"1")
    changed = "$ANSIBLE_VAULT;1.1;AES256\n" + binascii.hexlify(b"\n".join([salt, mac, data])).decode() + "\n"
    with pytest.raises(WrongPassword):
        decrypt(changed, "ansible-pass")
    # And ansible-vault reads back what it wrote: our plaintext is the same.
    assert ansible_vault("view", "--vault-password-file", str(pw), "v11.yml", cwd=tmp_path) == TEXT


def test_ansible_encrypt_string_values_load_in_yaml(tmp_path: Path) -> None:
    from provision.yamlfile import load_yaml

    pw = password_file(tmp_path, "pw", "ansible-pass")
    snippet = ansible_vault("encrypt_string", "--vault-password-file", str(pw), "--name", "db_password",
                            "Str1ng-Secret", cwd=tmp_path)
    assert "!vault |" in snippet
    (tmp_path / "vars.yml").write_text("plain: 1\n" + snippet)
    use_keyring(Keyring([PasswordSource("default", str(pw))]))
    data = load_yaml(tmp_path / "vars.yml")
    assert data["db_password"] == "Str1ng-Secret"
    assert repr(data["db_password"]) == "Secret('********')"


def test_prompt_is_asked_once_and_confirmed_when_encrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    import provision.vaultkeys as vaultkeys

    asked: list[str] = []
    answers = iter(["typed-pass", "new-pass", "new-pass", "new-pass", "typo-pass"])

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(vaultkeys.getpass, "getpass", fake_getpass)
    keyring = Keyring([PasswordSource("dev", PROMPT)])
    envelope = encrypt("v", "typed-pass", "dev")
    assert keyring.open(envelope, "a") == "v" == keyring.open(envelope, "b")
    assert asked == ["Vault password (dev): "]
    assert Keyring([]).for_encryption(None) == ("default", "new-pass")
    assert asked[1:] == ["New vault password: ", "Confirm vault password: "]
    with pytest.raises(VaultError, match="differ"):
        Keyring([]).for_encryption("prod")
