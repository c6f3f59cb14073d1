"""Vaulted values over a real sshd: they reach the host decrypted, and no output ever shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provision.vault import encrypt

from .conftest import SshServer

pytestmark = pytest.mark.integration

ANSIBLE_VAULT = Path(sys.executable).parent / "ansible-vault"
PASSWORD = "Vault-Pass-Project-9"
SECRETS = {
    "whole_file_secret": "WholeFile-Secret-Q1",  # group_vars/all/vault.yml, our format
    "ansible_file_secret": "AnsibleFile-Secret-Q2",  # group_vars/all/legacy.yml, made by ansible-vault
    "inline_secret": "Inline-Secret-Q3",  # a !vault value in the inventory
    "vars_file_secret": "VarsFile-Secret-Q4",  # a vaulted vars_files entry
    "extra_secret": "ExtraVars-Secret-Q5",  # -e @file with a !vault value
}


def provision(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180)


def vault_value(value: str, indent: int) -> str:
    lines = encrypt(value, PASSWORD).splitlines()
    return "!vault |\n" + "".join(" " * indent + line + "\n" for line in lines)


def make_project(sshd: SshServer, project: Path, work: Path) -> None:
    (project / "vault.pass").write_text(PASSWORD + "\n")
    sshd.inventory(project / "inventory.yml", hosts=2,
                   extra=f"    inline_secret: {vault_value(SECRETS['inline_secret'], 6)}")
    group_vars = project / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (group_vars / "vault.yml").write_text(encrypt(f"whole_file_secret: {SECRETS['whole_file_secret']}\n", PASSWORD))
    legacy = group_vars / "legacy.yml"
    legacy.write_text(f"ansible_file_secret: {SECRETS['ansible_file_secret']}\n")
    if ANSIBLE_VAULT.exists():
        subprocess.run([str(ANSIBLE_VAULT), "encrypt", "--vault-password-file", "vault.pass", str(legacy)],
                       cwd=project, check=True, capture_output=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                       "HOME": str(project)})
        assert legacy.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    else:
        legacy.write_text(encrypt(legacy.read_text(), PASSWORD))
    (project / "vaulted_vars.yml").write_text(encrypt(f"vars_file_secret: {SECRETS['vars_file_secret']}\n",
                                                      PASSWORD))
    (project / "extra.yml").write_text(f"extra_secret: {vault_value(SECRETS['extra_secret'], 2)}")
    every = " ".join(f"{{{{ {name} }}}}" for name in SECRETS)
    (project / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  vars_files: [vaulted_vars.yml]
  tasks:
    - name: a config file holding every secret
      copy:
        dest: "{work}/{{{{ inventory_hostname }}}}.conf"
        content: "secrets = {every}\\n"
        mode: "0600"
    - name: a command line with every secret
      shell: "echo {every} > {work}/{{{{ inventory_hostname }}}}.echo; echo {every}"
    - name: show them
      debug:
        msg: "{every}"
""")


def test_vaulted_values_reach_the_host_and_never_the_output(sshd: SshServer, tmp_path: Path) -> None:
    project, work = tmp_path / "project", tmp_path / "hosts"
    project.mkdir()
    work.mkdir()
    make_project(sshd, project, work)
    options = ["--vault-password-file", "vault.pass", "-e", "@extra.yml", "--diff", "-vv"]
    as_json = provision("playbook", "site.yml", *options, "--json", cwd=project)
    assert as_json.returncode == 0, as_json.stderr
    events = [json.loads(line) for line in as_json.stdout.splitlines() if line.startswith("{")]
    diffs = [e["diff"] for e in events if e["event"] == "task" and e.get("diff")]
    assert diffs and all("********" in diff for diff in diffs), "the copy diff should show redacted secrets"
    plain = " ".join(SECRETS.values())
    for host in ("node1", "node2"):
        assert (work / f"{host}.conf").read_text() == f"secrets = {plain}\n"
        assert (work / f"{host}.echo").read_text() == plain + "\n"
    (work / "node1.conf").unlink()  # the human run shows a diff again
    human = provision("playbook", "site.yml", *options, cwd=project)
    assert human.returncode == 0, human.stderr
    inventory = provision("inventory", "--list", "--vault-password-file", "vault.pass", cwd=project)
    assert inventory.returncode == 0, inventory.stderr
    explain = provision("inventory", "--host", "node1", "--explain", "--vault-password-file", "vault.pass",
                        cwd=project)
    assert explain.returncode == 0, explain.stderr
    for output in (as_json.stdout, as_json.stderr, human.stdout, human.stderr, inventory.stdout, explain.stdout):
        for secret in [*SECRETS.values(), PASSWORD]:
            assert secret not in output
    assert "--- " in human.stderr + human.stdout and "********" in human.stderr + human.stdout


def test_without_the_password_nothing_runs(sshd: SshServer, tmp_path: Path) -> None:
    project, work = tmp_path / "project", tmp_path / "hosts"
    project.mkdir()
    work.mkdir()
    make_project(sshd, project, work)
    (project / "wrong.pass").write_text("not-the-password\n")
    for options in ([], ["--vault-password-file", "wrong.pass"]):
        result = provision("playbook", "site.yml", "-e", "@extra.yml", *options, cwd=project)
        assert result.returncode == 4, result.stderr
        # -e files load first: the error names the first vault that could not be opened.
        assert "extra.yml:1" in result.stderr and "Traceback" not in result.stderr
    assert not list(work.iterdir()), "a task ran although the vault could not be opened"
