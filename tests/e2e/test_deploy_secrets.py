"""The deploy with known secrets: no form of them in output, events, logs on the hosts, or any process.

One lab host, one real deploy (``--json -vv``), then a converged ``--check --diff -vv``. A
sampler reads every process's command line (the lab's hosts are namespaces on this machine, so
their processes are in this /proc too) during both runs; afterwards the hosts' logs are searched.
Each secret is looked for raw, shell-quoted, escaped, upper-cased, base64 and url-encoded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.test_secrets_leak import ProcessSampler, forms
from .conftest import LabHandle, claimed_lab
from .test_deploy import failures, git_server, http  # noqa: F401 (git_server: a fixture, used by name)

pytestmark = pytest.mark.e2e

DB_ROOT_PASSWORD = "Root'pw\\e2e\"Qz81"
ADMIN_PASSWORD = "Admin/pw+e2e=Lk42"


@pytest.fixture(scope="module")
def deploy_lab() -> Iterator[LabHandle]:
    with claimed_lab("deploy-secrets", 1) as handle:
        yield handle


@pytest.fixture(scope="module")
def project(deploy_lab: LabHandle, git_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    directory = tmp_path_factory.mktemp("secrets-project")
    host = deploy_lab.hosts[0]
    (directory / "inventory.yml").write_text("\n".join([
        "all:", "  children:", "    prod:", "      hosts:",
        f"        {host.name}:", f"          ssh_host: {host.address}", "          sites:",
        "            - name: secret.local", f"              admin_password: !secret {json.dumps(ADMIN_PASSWORD)}",
        "      vars:", "        ssh_user: root", f"        ssh_private_key_file: {deploy_lab.key}",
        f"        ssh_known_hosts_file: {deploy_lab.known_hosts}",
        f"        db_root_password: !secret {json.dumps(DB_ROOT_PASSWORD)}",
        "        gunicorn_workers: 1", "        apps:",
        f"          - {{name: frappe, repo: '{git_server}/frappe', ref: version-15}}",
    ]) + "\n")
    return directory


def test_deploy_shows_no_form_of_its_secrets(deploy_lab: LabHandle, project: Path) -> None:
    outputs = []
    with ProcessSampler() as sampler:
        for flags in (["--json", "-vv"], ["--check", "--diff", "-vv"]):
            result = subprocess.run([sys.executable, "-m", "provision", "deploy", "prod", *flags], cwd=project,
                                    capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
            assert result.returncode == 0, failures(result)
            outputs.append(result.stdout + result.stderr)
    host = deploy_lab.hosts[0].name
    logs = deploy_lab.ssh(host, "cat /var/log/*.log /var/log/*/*.log /home/frappe/shared/logs/*.log "
                                "/home/frappe/frappe-bench/logs/*.log 2>/dev/null; true").stdout
    searched = "\n".join(outputs) + logs
    leaks = [(secret[:4], kind) for secret in (DB_ROOT_PASSWORD, ADMIN_PASSWORD)
             for kind, form in forms(secret).items() if form in searched]
    assert leaks == [], f"secrets shown in output or host logs: {leaks}"
    in_ps = [(secret[:4], kind) for secret in (DB_ROOT_PASSWORD, ADMIN_PASSWORD)
             for kind, form in forms(secret).items() if any(form in line for line in sampler.seen)]
    assert in_ps == [], f"secrets visible in the process table: {in_ps}"
    # The secrets did their job: the site was created with them and answers through nginx.
    status, body = http(deploy_lab.hosts[0].address, "/api/method/ping", "secret.local")
    assert (status, json.loads(body)) == (200, {"message": "pong"}), body
