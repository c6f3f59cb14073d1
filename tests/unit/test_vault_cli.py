"""`provision vault` and vaults in inventories, group_vars, vars_files and -e @file; `edit` safety."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.cli import main
from provision.errors import EXIT_BAD_INPUT
from provision.inventory import Inventory
from provision.secrets import REDACTED, Secret
from provision.vault import decrypt, encrypt, is_encrypted, parse_envelope
from provision.vaultkeys import Keyring, PasswordSource, use_keyring

pytestmark = pytest.mark.unit

PLAIN = "db_root_password: Root-Pa55-Plain\nport: 3306\n"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "VISUAL"):
        monkeypatch.delenv(name, raising=False)
    use_keyring(None)
    yield
    use_keyring(None)


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    path = tmp_path / ".vault-pass"
    path.write_text("project-pass\n")
    return path


def vault_string(value: str, password: str, vault_id: str = "default", *, indent: int = 2) -> str:
    lines = encrypt(value, password, vault_id).splitlines()
    return "!vault |\n" + "".join(" " * indent + line + "\n" for line in lines)


def write_project(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"""\
all:
  children:
    prod:
      hosts:
        app1:
          connection: local
          admin_token: {vault_string("Inline-Token-Value", "project-pass", indent=12)}""")
    (tmp_path / "group_vars" / "prod").mkdir(parents=True)
    (tmp_path / "group_vars" / "prod" / "main.yml").write_text("timezone: UTC\n")
    (tmp_path / "group_vars" / "prod" / "vault.yml").write_text(encrypt(PLAIN, "project-pass"))
    return inventory


def test_inventory_opens_whole_file_and_inline_vaults_as_secrets(tmp_path: Path, pw: Path) -> None:
    inventory_file = write_project(tmp_path)
    keyring = Keyring([PasswordSource("default", str(pw))])
    use_keyring(keyring)
    inventory = Inventory.load(inventory_file)
    hostvars = inventory.hosts["app1"].vars
    assert hostvars["db_root_password"] == "Root-Pa55-Plain" and isinstance(hostvars["db_root_password"], Secret)
    assert hostvars["admin_token"] == "Inline-Token-Value" and isinstance(hostvars["admin_token"], Secret)
    assert hostvars["port"] == 3306 and hostvars["timezone"] == "UTC"
    listed = json.dumps(inventory.to_ansible_list())
    assert "Root-Pa55-Plain" not in listed and "Inline-Token-Value" not in listed and REDACTED in listed
    assert keyring.redactor("Root-Pa55-Plain / Inline-Token-Value / project-pass") == " / ".join([REDACTED] * 3)


def test_missing_password_is_exit_4_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory_file = write_project(tmp_path)
    assert main(["inventory", "--list", "-i", str(inventory_file)]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long paths
    assert "inventory.yml:7 is encrypted" in err and "Traceback" not in err
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    assert main(["inventory", "--list", "-i", str(inventory_file), "--vault-password-file", str(wrong)]) == 4
    assert "cannot open the vault in" in capsys.readouterr().err
    assert main(["inventory", "--list", "-i", str(inventory_file), "--vault-password-file", "/no/such"]) == 4
    assert "vault password file /no/such not found" in " ".join(capsys.readouterr().err.split())


def test_cli_inventory_with_password_file_from_env(tmp_path: Path, pw: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inventory_file = write_project(tmp_path)
    for name in ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.setenv(name, str(pw))
        assert main(["inventory", "--host", "app1", "-i", str(inventory_file)]) == 0
        out = capsys.readouterr().out
        assert json.loads(out)["db_root_password"] == REDACTED and "Root-Pa55" not in out
        monkeypatch.delenv(name)
    assert main(["inventory", "--host", "app1", "-i", str(inventory_file), "--show-secrets",
                 "--vault-id", f"default@{pw}"]) == 0
    assert json.loads(capsys.readouterr().out)["admin_token"] == "Inline-Token-Value"


def test_playbook_vars_files_and_extra_vars_files_open_vaults(tmp_path: Path, pw: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    inventory_file = write_project(tmp_path)
    (tmp_path / "vaulted_vars.yml").write_text(encrypt("from_vars_file: VarsFile-Secret-1\n", "project-pass"))
    (tmp_path / "extra.yml").write_text("from_extra: " + vault_string("Extra-Secret-2", "dev-pass", "dev"))
    dev = tmp_path / "dev.pass"
    dev.write_text("dev-pass")
    out = tmp_path / "out.txt"
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  vars_files: [vaulted_vars.yml]
  tasks:
    - shell: "echo {{{{ from_vars_file }}}} {{{{ from_extra }}}} {{{{ db_root_password }}}} > {out}"
    - debug: {{msg: "{{{{ from_vars_file }}}} {{{{ from_extra }}}}"}}
""")
    code = main(["playbook", str(tmp_path / "site.yml"), "-i", str(inventory_file), "--json", "-vv", "--diff",
                 "--vault-id", f"default@{pw}", "--vault-id", f"dev@{dev}", "-e", f"@{tmp_path / 'extra.yml'}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.read_text().split() == ["VarsFile-Secret-1", "Extra-Secret-2", "Root-Pa55-Plain"]
    for secret in ("VarsFile-Secret-1", "Extra-Secret-2", "Root-Pa55-Plain", "project-pass", "dev-pass"):
        assert secret not in captured.out and secret not in captured.err


def test_encrypt_view_rekey_decrypt_round_trip(tmp_path: Path, pw: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "vault.yml"
    target.write_text(PLAIN)
    target.chmod(0o640)
    assert main(["vault", "encrypt", str(target), "--vault-password-file", str(pw)]) == 0
    assert is_encrypted(target.read_text()) and "Root-Pa55" not in target.read_text()
    assert target.stat().st_mode & 0o777 == 0o640
    assert main(["vault", "encrypt", str(target), "--vault-password-file", str(pw)]) == 4  # already encrypted
    capsys.readouterr()
    assert main(["vault", "view", str(target), "--vault-password-file", str(pw)]) == 0
    assert capsys.readouterr().out == PLAIN
    new = tmp_path / "new.pass"
    new.write_text("new-pass")
    assert main(["vault", "rekey", str(target), "--vault-password-file", str(pw), "--new-vault-id",
                 f"prod@{new}"]) == 0
    assert parse_envelope(target.read_text()).vault_id == "prod"
    assert decrypt(target.read_text(), "new-pass") == PLAIN
    assert main(["vault", "view", str(target), "--vault-password-file", str(pw)]) == 4
    assert main(["vault", "decrypt", str(target), "--vault-id", f"prod@{new}"]) == 0
    assert target.read_text() == PLAIN


def test_encrypt_string_reads_stdin_and_prints_pasteable_yaml(tmp_path: Path, pw: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("Value-From-Stdin\n"))
    assert main(["vault", "encrypt-string", "--name", "site_admin_password", "--vault-id", f"prod@{pw}"]) == 0
    snippet = capsys.readouterr().out
    assert snippet.startswith("site_admin_password: !vault |\n  $PROVISION_VAULT;1;AESGCM;scrypt;prod\n")
    (tmp_path / "v.yml").write_text(snippet)
    use_keyring(Keyring([PasswordSource("prod", str(pw))]))
    from provision.yamlfile import load_yaml

    assert load_yaml(tmp_path / "v.yml") == {"site_admin_password": "Value-From-Stdin"}


def fake_editor(tmp_path: Path, body: str) -> Path:
    """An $EDITOR that logs the file it got, and the modes, then runs ``body``."""
    script = tmp_path / "editor.py"
    log = tmp_path / "editor.log"
    script.write_text(f"""\
import os, signal, stat, sys
path = sys.argv[1]
with open({str(log)!r}, "w") as log:
    log.write(path + "\\n" + oct(os.stat(path).st_mode & 0o777) + "\\n"
              + oct(os.stat(os.path.dirname(path)).st_mode & 0o777) + "\\n")
{body}
""")
    return script


def test_edit_rewrites_the_vault_through_a_private_file(tmp_path: Path, pw: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "vault.yml"
    target.write_text(encrypt(PLAIN, "project-pass", "prod"))
    editor = fake_editor(tmp_path, "open(path, 'a').write('extra: Added-In-Editor\\n')\n"
                                   "open(os.path.join(os.path.dirname(path), '.swp'), 'w').write('Root-Pa55')")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    assert main(["vault", "edit", str(target), "--vault-id", f"prod@{pw}"]) == 0
    seen, file_mode, dir_mode = (tmp_path / "editor.log").read_text().split()
    assert (file_mode, dir_mode) == ("0o600", "0o700")
    if os.path.isdir("/dev/shm"):
        assert seen.startswith("/dev/shm/")
    assert not Path(seen).parent.exists()
    assert parse_envelope(target.read_text()).vault_id == "prod"
    assert decrypt(target.read_text(), "project-pass") == PLAIN + "extra: Added-In-Editor\n"


@pytest.mark.parametrize("crash", ["os.kill(os.getpid(), signal.SIGKILL)", "sys.exit(1)"])
def test_edit_with_a_crashing_editor_leaves_no_plaintext(tmp_path: Path, pw: Path, crash: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "vault.yml"
    before = encrypt(PLAIN, "project-pass")
    target.write_text(before)
    editor = fake_editor(tmp_path, f"open(path, 'a').write('half: Half-Typed-Secret\\n')\n{crash}")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    assert main(["vault", "edit", str(target), "--vault-password-file", str(pw)]) == 1
    assert "is unchanged" in " ".join(capsys.readouterr().err.split())
    seen = Path((tmp_path / "editor.log").read_text().split()[0])
    assert not seen.exists() and not seen.parent.exists()
    assert target.read_text() == before
    for root in {Path("/dev/shm"), Path("/tmp"), tmp_path}:
        for entry in root.glob("provision-vault-*"):
            assert not entry.is_dir() or "Half-Typed" not in "".join(
                p.read_text(errors="replace") for p in entry.rglob("*") if p.is_file())


def test_init_with_a_password_file_scaffolds_an_encrypted_vault(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    password = project / "vault.pass"
    password.write_text("init-pass\n")
    assert main(["init", str(project), "--vault-password-file", str(password)]) == 0
    vault_text = (project / "group_vars" / "all" / "vault.yml").read_text()
    assert decrypt(vault_text, "init-pass").count("db_root_password: ") == 1
    assert "/vault.pass" in (project / ".gitignore").read_text().splitlines()
    use_keyring(Keyring([PasswordSource("default", str(password))]))
    hostvars = Inventory.load(project / "inventory.yml").hosts["app1"].vars
    assert isinstance(hostvars["db_root_password"], Secret) and hostvars["timezone"] == "UTC"
    plain = tmp_path / "plain"
    assert main(["init", str(plain)]) == 0
    assert "provision vault encrypt" in (plain / "group_vars" / "all" / "vault.yml").read_text()
    assert Inventory.load(plain / "inventory.yml").hosts["app1"].vars["timezone"] == "UTC"


def test_edit_removes_copies_left_by_a_killed_edit(tmp_path: Path, pw: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import tempfile

    from provision.commands.vault import private_copy

    dead = subprocess.Popen(["true"])
    dead.wait()
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    stale = base / f"provision-vault-{dead.pid}-leftover"
    stale.mkdir(mode=0o700)
    (stale / "vault.yml").write_text("left: Left-Behind-Secret\n")
    alive = base / f"provision-vault-{os.getpid()}-open"  # an edit still running keeps its copy
    alive.mkdir(mode=0o700)
    try:
        with private_copy("x.yml", "fresh") as copy:
            assert copy.read_text() == "fresh"
        assert not stale.exists() and alive.exists()
    finally:
        alive.rmdir()
