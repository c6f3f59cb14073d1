"""``provision deploy`` end to end: two fresh lab hosts become production benches.

The framework stand-in and the ledger app (tests/fixtures) are served to the hosts over git from
the lab's bridge address, exactly as a user's inventory points at https://github.com/frappe/frappe.
The tests run in order on the same hosts: deploy, what it built, converged re-run, check mode,
a wrong db root password.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._vaulted import VAULT_PASSWORD_FILE, vault_secrets
from .conftest import LabHandle, claimed_lab

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
standin = importlib.import_module("standin")

DB_ROOT_PASSWORD = "Root-pw-for-the-lab-7c1e"
ADMIN_PASSWORD = "Admin-pw-for-the-lab-92fd"
SITES = {"lab1": ["site1.local", "site2.local"], "lab2": ["site3.local"]}


@pytest.fixture(scope="module")
def deploy_lab() -> Iterator[LabHandle]:
    with claimed_lab("deploy", 2) as handle:
        yield handle


@pytest.fixture(scope="module")
def git_server(deploy_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """git daemon on the lab's bridge address serving the stand-in and the ledger app."""
    base = tmp_path_factory.mktemp("repos")
    standin.make_app_repos(base)
    address = str(deploy_lab.lab.settings.gateway)
    port = 9418
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}", f"--listen={address}",
         f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["git", "ls-remote", f"git://{address}:{port}/frappe"], capture_output=True,
                             timeout=10).returncode != 0:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.2)
        yield f"git://{address}:{port}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@pytest.fixture(scope="module")
def project(deploy_lab: LabHandle, git_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory with the inventory a user would write for these two hosts."""
    directory = tmp_path_factory.mktemp("project")
    lines = ["all:", "  children:", "    prod:", "      hosts:"]
    for host in deploy_lab.hosts:
        lines += [f"        {host.name}:", f"          ssh_host: {host.address}", "          sites:"]
        for site in SITES[host.name]:
            lines += [f"            - name: {site}", f"              admin_password: !secret {ADMIN_PASSWORD}"]
    lines += [
        "      vars:",
        "        ssh_user: root",
        f"        ssh_private_key_file: {deploy_lab.key}",
        f"        ssh_known_hosts_file: {deploy_lab.known_hosts}",
        f"        db_root_password: !secret {DB_ROOT_PASSWORD}",
        "        dns_multitenant: true",
        "        gunicorn_workers: 2",
        "        apps:",
        f"          - {{name: frappe, repo: '{git_server}/frappe', ref: version-15}}",
        f"          - {{name: ledger, repo: '{git_server}/ledger', ref: v1}}",
    ]
    (directory / "inventory.yml").write_text("\n".join(lines) + "\n")
    # Every secret in a vault, as a project keeps them in git (issue 16); PROVISION_E2E_PLAIN=1 runs
    # the same deploy with the plain !secret values instead.
    if not os.environ.get("PROVISION_E2E_PLAIN"):
        vault_secrets(directory)
    return directory


def deploy(project: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if (project / VAULT_PASSWORD_FILE).exists():
        env["PROVISION_VAULT_PASSWORD_FILE"] = str(project / VAULT_PASSWORD_FILE)
    return subprocess.run([sys.executable, "-m", "provision", "deploy", "prod", "--json", *args], cwd=project,
                          capture_output=True, text=True, timeout=timeout, env=env)


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    return next(e for e in events(result) if e["event"] == "recap")["hosts"]


def failures(result: subprocess.CompletedProcess[str]) -> str:
    failed = [f"{e['host']}: {e['task']}: {e['msg']}" for e in events(result)
              if e["event"] == "task" and e["status"] == "failed"]
    return "\n".join(failed) or result.stderr[-3000:]


def http(address: str, path: str, site: str, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": site})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def as_frappe(lab: LabHandle, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab.ssh(host, f"su - frappe -c {json.dumps(command)}", check=False)


def test_deploy_fresh_hosts_to_serving_benches(deploy_lab: LabHandle, project: Path) -> None:
    result = deploy(project)
    assert result.returncode == 0, failures(result)
    assert DB_ROOT_PASSWORD not in result.stdout + result.stderr
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    for host in deploy_lab.hosts:
        for site in SITES[host.name]:
            status, body = http(host.address, "/api/method/ping", site)
            assert (status, json.loads(body)) == (200, {"message": "pong"}), (host.name, site, body)


def test_release_layout_and_operator_commands(deploy_lab: LabHandle, project: Path) -> None:
    link = deploy_lab.ssh("lab1", "readlink /home/frappe/frappe-bench").stdout.strip()
    assert link.startswith("/home/frappe/benches/r-")
    site_link = deploy_lab.ssh("lab1", "readlink /home/frappe/frappe-bench/sites/site1.local").stdout.strip()
    assert site_link == "/home/frappe/shared/sites/site1.local"
    remote = as_frappe(deploy_lab, "lab1", "git -C ~/frappe-bench/apps/ledger remote")
    assert remote.stdout.strip() == "upstream"
    apps_txt = deploy_lab.ssh("lab1", "cat /home/frappe/frappe-bench/sites/apps.txt").stdout.split()
    assert apps_txt == ["frappe", "ledger"]
    listed = as_frappe(deploy_lab, "lab1", "cd ~/frappe-bench && bench --site all list-apps")
    assert listed.returncode == 0, listed.stderr
    assert "ledger" in listed.stdout
    status = as_frappe(deploy_lab, "lab1", "supervisorctl status")
    assert status.returncode == 0, status.stdout + status.stderr
    programs = [line.split()[:2] for line in status.stdout.splitlines() if line.strip()]
    assert programs and all(state == "RUNNING" for _, state in programs), status.stdout
    names = {name.split(":")[0] for name, _ in programs}
    assert {"frappe-bench-web", "frappe-bench-workers", "frappe-bench-redis"} <= names


def test_workers_consume_a_job_enqueued_on_the_site(deploy_lab: LabHandle) -> None:
    address = deploy_lab.host("lab2").address
    status, body = http(address, "/api/method/ledger.api.enqueue_entry?account=e2e&amount=7", "site3.local")
    assert status == 200, body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, body = http(address, "/api/method/ledger.api.entries", "site3.local")
        if any(row["account"] == "e2e" and row["source"] == "job" for row in json.loads(body)["message"]):
            return
        time.sleep(1)
    pytest.fail(f"the background job never wrote its row: {body}")


def test_second_deploy_reports_nothing_changed(project: Path) -> None:
    result = deploy(project)
    assert result.returncode == 0, failures(result)
    changed = {host: stats["changed"] for host, stats in recap(result).items()}
    assert changed == {"lab1": 0, "lab2": 0}, [
        (e["host"], e["task"], e["msg"]) for e in events(result) if e["event"] == "task" and e["status"] == "changed"]


def _fingerprint(lab: LabHandle, host: str) -> str:
    listing = lab.ssh(host, "find /home/frappe /etc/nginx /etc/supervisor -xdev -type f -newer /etc/hostname "
                            "-not -path '*/logs/*' -not -name '*.pid' -not -name '*.rdb' -printf '%p %s\\n' | sort "
                            "| md5sum; md5sum /home/frappe/shared/sites/common_site_config.json "
                            "/home/frappe/frappe-bench/config/*.conf").stdout
    return hashlib.sha256(listing.encode()).hexdigest()


def test_check_mode_reports_exactly_the_affected_tasks(deploy_lab: LabHandle, project: Path) -> None:
    before = {h.name: _fingerprint(deploy_lab, h.name) for h in deploy_lab.hosts}
    result = deploy(project, "--check", "-e", "http_timeout=150")
    assert result.returncode == 0, failures(result)
    changed = {(e["host"], e["task"]) for e in events(result)
               if e["event"] == "task" and e["status"] == "changed" and not e["handler"]}
    expected = {"common_site_config.json (kept in shared/)", "nginx config of the bench",
                "supervisor config of the bench"}
    assert changed == {(host, task) for host in ("lab1", "lab2") for task in expected}
    assert {h.name: _fingerprint(deploy_lab, h.name) for h in deploy_lab.hosts} == before


def test_wrong_db_root_password_fails_clearly_and_sites_keep_serving(deploy_lab: LabHandle, project: Path) -> None:
    result = deploy(project, "-e", "db_root_password=not-the-real-one-0000", "--limit", "lab1")
    assert result.returncode == 2
    message = failures(result)
    assert "refused the declared db root password" in message
    assert "not-the-real-one-0000" not in result.stdout + result.stderr
    for site in SITES["lab1"]:
        status, _ = http(deploy_lab.host("lab1").address, "/api/method/ping", site)
        assert status == 200
