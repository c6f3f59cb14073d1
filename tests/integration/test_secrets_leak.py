"""Known secrets through a playbook over the test sshd: no output, event, log or process shows any form of them.

The playbook uses each secret the ways people do: shell-quoted, inside a dict printed whole,
through filters (upper, b64encode, urlencode into a database URL, to_json, a slice), in a
template and a copied file (diffs), in a failure message, in a registered command's output, on
stdin and in a command's environment. It runs at -vv, --json, --diff and --check; everything it
prints, the sshd log, and a sampler of the process table (this machine is the host) are then
searched for each secret in its raw, shell-quoted, escaped, upper-cased, base64 and url-encoded
forms.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shlex
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from .conftest import SshServer

pytestmark = pytest.mark.integration

# Both quote kinds and a backslash: the shapes that escaped redaction inside printed dicts.
DB_PASSWORD = "Pa'ss\\wo\"rd-Q7x"
TOKEN = "T0k3n/val+ue=Z9q"  # tagged !secret
SITE_PASSWORD = "Site-Pw_4all:ok"  # given with -e @file (on provision's own command line it would show in ps)

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars:
    creds: {{pw: "{{{{ db_password }}}}", tokens: ["{{{{ api_token }}}}"], site: "{{{{ site_password }}}}"}}
  tasks:
    - name: quoted for a shell
      shell: "printf '%s' {{{{ db_password | quote }}}} | wc -c"
      register: counted
    - name: through filters
      debug:
        msg: >-
          {{{{ db_password | upper }}}} {{{{ api_token | b64encode }}}} {{{{ api_token | urlencode }}}}
          {{{{ api_token[:10] }}}} {{{{ creds | to_json }}}} mysql://app:{{{{ db_password | urlencode }}}}@db/app
    - name: a dict printed whole
      debug: {{var: creds}}
    - name: a derived fact
      set_fact:
        database_url: "mysql://app:{{{{ db_password | urlencode }}}}@db/app?token={{{{ api_token | b64encode }}}}"
    - name: show it
      debug: {{var: database_url}}
    - name: echo it back (registered output)
      shell: {{cmd: cat, stdin: "{{{{ db_password }}}} {{{{ api_token | upper }}}}"}}
      register: echoed
    - name: in the environment
      command: {{cmd: printenv PV_SECRET, env: {{PV_SECRET: "{{{{ site_password }}}}"}}}}
    - name: a config from a template
      template: {{src: app.conf.j2, dest: "{out}/app.conf"}}
    - name: a copied file
      copy: {{content: "token={{{{ api_token }}}}\\nsite={{{{ site_password | b64encode }}}}\\n", dest: "{out}/copied"}}
    - name: a failure that names them
      fail: {{msg: "cannot log in with {{{{ creds }}}} or {{{{ [db_password, api_token] }}}}"}}
      ignore_errors: true
"""


def forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "raw": secret,
        "shell-quoted": shlex.quote(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "repr-escaped": repr(secret)[1:-1],
        "upper": secret.upper(),
        "base64": base64.b64encode(raw).decode(),
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "url-encoded-plus": urllib.parse.quote_plus(secret),
    }


class ProcessSampler:
    """Reads every process's command line every few milliseconds while a run goes on."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        self.seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.02)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_no_form_of_a_secret_leaks(sshd: SshServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.conf.j2").write_text(
        "password = {{ db_password }}\nurl = mysql://app:{{ db_password | urlencode }}@db/app\n"
        "token = {{ api_token | upper }}\n")
    (tmp_path / "site.yml").write_text(PLAYBOOK.format(out=out))
    sshd.inventory(tmp_path / "inventory.yml",
                   extra=f"    db_password: {json.dumps(DB_PASSWORD)}\n    api_token: !secret {json.dumps(TOKEN)}\n")
    (tmp_path / "extra.yml").write_text(f"site_password: {json.dumps(SITE_PASSWORD)}\n")
    outputs: list[str] = []
    runs = [["-vv"], ["--json", "-vv"], ["--diff", "-vv"], ["--check", "--diff", "-vv"], ["--check", "--json", "-v"]]
    with ProcessSampler() as sampler:
        for flags in runs:
            for path in out.iterdir():
                path.unlink()
            result = subprocess.run(
                [sys.executable, "-m", "provision", "playbook", "site.yml", "-e", "@extra.yml",
                 *flags], cwd=tmp_path, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "Traceback" not in result.stderr
            outputs.append(result.stdout + result.stderr)
    assert (out / "app.conf").exists() is False  # the last run was --check
    everything = "\n".join(outputs) + sshd.log.read_text(errors="replace")
    leaks = [(secret[:4], kind) for secret in (DB_PASSWORD, TOKEN, SITE_PASSWORD)
             for kind, form in forms(secret).items() if form in everything]
    assert leaks == [], f"secrets shown in output or logs: {leaks}"
    shown_in_ps = [(secret[:4], kind) for secret in (DB_PASSWORD, TOKEN, SITE_PASSWORD)
                   for kind, form in forms(secret).items() if any(form in line for line in sampler.seen)]
    assert shown_in_ps == [], f"secrets visible in the process table: {shown_in_ps}"
    assert "********" in outputs[0]
    # The tasks still did their job with the real values.
    assert f"{len(DB_PASSWORD)}" in outputs[0]


def test_a_secret_on_a_command_line_is_warned_about(sshd: SshServer, tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("""\
- hosts: all
  gather_facts: false
  tasks:
    - name: password as an argument
      command: "true --password={{ db_password }}"
""")
    sshd.inventory(tmp_path / "inventory.yml", extra="    db_password: Very-Secret-99\n")
    result = subprocess.run([sys.executable, "-m", "provision", "playbook", "site.yml", "--json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    warnings = [json.loads(line) for line in result.stdout.splitlines()
                if line.startswith("{") and json.loads(line)["event"] == "warning"]
    assert len(warnings) == 1 and "'password as an argument' (site.yml:4)" in warnings[0]["msg"]
    assert "Very-Secret-99" not in result.stdout + result.stderr
