"""``provision init DIR``: a project directory to start from."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from .errors import OptionsError
from .vault import encrypt
from .vaultkeys import current_keyring

FILES: dict[str, str] = {
    "inventory.yml": """\
# The hosts provision manages, in Ansible's YAML inventory shape.
# `provision inventory --host app1 --explain` shows where each variable comes from.
all:
  children:
    prod:
      hosts:
        app1:
          ssh_host: 203.0.113.10      # address (ansible_host works too)
      vars:
        ssh_user: deploy              # login user (ansible_user works too)
        become: true                  # tasks run as root via sudo unless a task says otherwise
""",
    "group_vars/all/vars.yml": """\
# Variables for every host. Secrets do not belong here: they go, encrypted, in vault.yml beside
# this file (`provision vault edit group_vars/all/vault.yml`), or as single `!vault` values
# (`printf %s VALUE | provision vault encrypt-string --name NAME`).
timezone: UTC
""",
    "group_vars/all/vault.yml": """\
# Secrets of every host, to be encrypted at rest. This file is still plain text: write the secrets
# here, then encrypt it before the first commit:
#   provision vault encrypt group_vars/all/vault.yml --vault-password-file ~/.provision-vault-pass
# Every command then opens it with --vault-password-file (or $PROVISION_VAULT_PASSWORD_FILE, for cron).
# db_root_password: change-me
""",
    "site.yml": """\
# A first playbook: provision playbook site.yml --check --diff, then without --check.
- name: baseline
  hosts: all
  tasks:
    - name: motd names the host
      copy:
        dest: /etc/motd
        content: "{{ inventory_hostname }} is managed by provision\\n"
        mode: "0644"
""",
    "templates/.keep": "",
    "files/.keep": "",
    "playbooks/.keep": "",
    "known_hosts": "# Pinned host keys of this project (provision onboard adds to it).\n",
    ".gitignore": """\
# Secrets and pulled backups never go into git.
secrets.yml
*.secret.yml
group_vars/*/secrets.yml
# Vault password files (the vault files themselves are encrypted and belong in git).
.vault-pass*
.vault_pass*
*.vault-pass
backups/
# The deploy key `provision onboard` generates when the control host has none.
keys/
*.key
*.pem
""",
}


VAULT_FILE = "group_vars/all/vault.yml"

_VAULT_TEXT = """\
# Secrets of every host, encrypted at rest: provision vault edit group_vars/all/vault.yml
# Every command opens it with --vault-password-file (or $PROVISION_VAULT_PASSWORD_FILE, for cron).
# A database root password was generated for you; each site's admin_password belongs here too.
db_root_password: {password}
"""


def scaffold_project(directory: Path) -> list[Path]:
    """Write the starter files; refuses to overwrite an existing file.

    When the command was given a vault password (``--vault-password-file``), ``vault.yml`` is
    written encrypted, with a generated database root password, and a password file inside the
    project is added to ``.gitignore``.
    """
    created: list[Path] = []
    existing = [directory / name for name in FILES if (directory / name).exists()]
    if existing:
        raise OptionsError(f"{existing[0]} already exists; init does not overwrite files",
                           hint="choose an empty or new directory")
    files = dict(FILES)
    keyring = current_keyring()
    if keyring.sources:
        vault_id, password = keyring.for_encryption(None)
        files[VAULT_FILE] = encrypt(_VAULT_TEXT.format(password=secrets.token_urlsafe(18)), password, vault_id)
        for source in keyring.sources:
            with contextlib.suppress(ValueError):
                inside = Path(source.location).resolve().relative_to(directory.resolve())
                files[".gitignore"] += f"/{inside.as_posix()}\n"
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        created.append(path)
    return created
