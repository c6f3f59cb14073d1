"""The deploy e2e with its secrets in a vault (unless ``PROVISION_E2E_PLAIN=1``): the same run, encrypted input.

``vault_secrets`` rewrites a project the deploy fixture wrote: ``db_root_password`` moves into an
encrypted ``group_vars/prod/vault.yml``, each ``admin_password`` becomes an inline ``!vault`` value,
and the password goes in ``VAULT_PASSWORD_FILE`` of the project, which the deploy helper hands to
its subprocesses as ``$PROVISION_VAULT_PASSWORD_FILE`` (never to this process: other test files
of the same worker must not see it).
"""

from __future__ import annotations

import re
from pathlib import Path

from provision.vault import encrypt

PASSWORD = "E2e-Vault-Pass-4b7d"
VAULT_PASSWORD_FILE = ".vault-pass"
_SECRET_LINE = re.compile(r"^(?P<indent> *)(?P<key>(?:- )?\w+): !secret (?P<value>.*)$")


def vault_secrets(directory: Path) -> None:
    """Move every ``!secret`` of ``directory/inventory.yml`` into a vault, and set the password file."""
    password_file = directory / VAULT_PASSWORD_FILE
    password_file.write_text(PASSWORD + "\n")
    inventory = directory / "inventory.yml"
    vault_file: list[str] = []
    lines: list[str] = []
    for line in inventory.read_text().splitlines():
        match = _SECRET_LINE.match(line)
        if match is None:
            lines.append(line)
        elif match["key"] == "db_root_password":
            vault_file.append(f"db_root_password: {match['value']}")
        else:
            indent = " " * (len(match["indent"]) + 2)
            lines.append(f"{match['indent']}{match['key']}: !vault |")
            lines += [indent + part for part in encrypt(match["value"], PASSWORD).splitlines()]
    inventory.write_text("\n".join(lines) + "\n")
    (directory / "group_vars" / "prod").mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "prod" / "vault.yml").write_text(encrypt("\n".join(vault_file) + "\n", PASSWORD))
