"""``provision init DIR``: a project directory to start from."""

from __future__ import annotations

from pathlib import Path

from .errors import OptionsError

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
    "group_vars/all.yml": """\
# Variables for every host. Secrets do not belong here: put them in group_vars/all/secrets.yml
# (ignored by git) or pass them with -e @secrets.yml, and tag them with !secret.
timezone: UTC
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
backups/
*.key
*.pem
""",
}


def scaffold_project(directory: Path) -> list[Path]:
    """Write the starter files; refuses to overwrite an existing file."""
    created: list[Path] = []
    existing = [directory / name for name in FILES if (directory / name).exists()]
    if existing:
        raise OptionsError(f"{existing[0]} already exists; init does not overwrite files",
                           hint="choose an empty or new directory")
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        created.append(path)
    return created
