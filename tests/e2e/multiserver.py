"""The multi-server deployment every ``tests/e2e/test_multi*.py`` and ``test_replica*.py`` module shares.

One session-scoped fixture, ``multiserver``, claims five lab hosts, writes the inventory a user would
write for them (role groups lb, app, db, redis, files; two sites; shared files over sshfs, since this
machine's kernel has no NFS) and runs ``provision deploy prod`` once. It is registered in
tests/e2e/conftest.py, and tests/conftest.py puts every module named test_multi*/test_replica* in one
xdist group, so one worker runs them all on this one deploy.

API (``MultiServer``):
- ``names``: inventory name -> lab host name (``lb``, ``app1``, ``app2``, ``db``, ``store`` (redis + files))
- ``address(name)``: the host's lab address (also its private address in the inventory)
- ``ssh(name, command, check=True)``, ``as_frappe(name, command)``: a command on a host (root / frappe)
- ``provision(*args)``: any ``provision`` command in the project (``"update", "prod", ...``), with --json
- ``deploy(*args)``: ``provision deploy prod --json *args``
- ``lb(path, site)`` / ``direct(name, path, site)``: (status, body) through the lb / from one app host's nginx
- ``events(result)``, ``failures(result)``, ``recap(result)``: the JSON events of a run
- ``first_deploy``: the fixture's deploy run (CompletedProcess: stdout holds its JSON events)
- ``project``: the project directory (inventory.yml); ``repos``: the git daemon's URL (``{repos}/ledger``)
Constants: ``SITES``, ``APP_HOSTS``, ``DB_ROOT_PASSWORD``, ``ADMIN_PASSWORD``, ``REDIS_PASSWORD``,
``REPLICATION_PASSWORD`` (``store`` is also the db host's replica, group ``db_replica``).
Tests leave the system as they found it (restart what they stop, put drained hosts back).

To add a host (e.g. a db replica): add it to ``HOSTS`` and ``GROUPS`` below (HOSTS' order is the lab
hosts' order).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from provision.lab.gitserve import serve_git

from .conftest import LabHandle, claimed_lab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
standin = importlib.import_module("standin")

DB_ROOT_PASSWORD = "Root-pw-multi-3b7d"
ADMIN_PASSWORD = "Admin-pw-multi-61ac"
REDIS_PASSWORD = "Redis-pw-multi-9e04"
REPLICATION_PASSWORD = "Repl-pw-multi-2d5b"
SITES = ("alpha.local", "beta.local")
APP_HOSTS = ("app1", "app2")
# inventory name -> lab host (lab1..labN, in this order)
HOSTS = {"lb": "lab1", "app1": "lab2", "app2": "lab3", "db": "lab4", "store": "lab5"}
GROUPS = {"lb": ["lb"], "app": ["app1", "app2"], "db": ["db"], "redis": ["store"], "files": ["store"],
          "db_replica": ["store"]}
DEPLOY_TIMEOUT = 2400


@dataclass
class MultiServer:
    """The deployed five-host system (see the module docstring)."""

    lab: LabHandle
    project: Path
    repos: str
    names: dict[str, str] = field(default_factory=lambda: dict(HOSTS))
    first_deploy: subprocess.CompletedProcess[str] | None = None  # the fixture's deploy (its JSON events)

    def address(self, name: str) -> str:
        return self.lab.host(self.names[name]).address

    def ssh(self, name: str, command: str, *, check: bool = True,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.lab.ssh(self.names[name], command, check=check, timeout=timeout)

    def as_frappe(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        return self.ssh(name, f"su - frappe -c {json.dumps(command)}", check=False)

    def provision(self, *args: str, timeout: float = DEPLOY_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "provision", *args, "--json"], cwd=self.project,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def deploy(self, *args: str, timeout: float = DEPLOY_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.provision("deploy", "prod", *args, timeout=timeout)

    def lb(self, path: str, site: str, timeout: float = 10) -> tuple[int, str]:
        return http(self.address("lb"), path, site, timeout)

    def direct(self, name: str, path: str, site: str, timeout: float = 10) -> tuple[int, str]:
        return http(self.address(name), path, site, timeout)

    def events(self, result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        return events(result)

    def failures(self, result: subprocess.CompletedProcess[str]) -> str:
        return failures(result)

    def recap(self, result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
        return recap(result)


def http(address: str, path: str, site: str, timeout: float = 10, *, method: str = "GET",
         data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                     headers={"Host": site, **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def failures(result: subprocess.CompletedProcess[str]) -> str:
    failed = [f"{e['host']}: {e['task']}: {e['msg']}" for e in events(result)
              if e["event"] == "task" and e["status"] == "failed"]
    return "\n".join(failed) or result.stderr[-3000:]


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    return next(e for e in events(result) if e["event"] == "recap")["hosts"]


def write_inventory(directory: Path, lab: LabHandle, repos: str) -> Path:
    """The inventory a user would write for the five hosts (role groups under ``prod``)."""
    lines = ["all:", "  children:", "    prod:", "      children:"]
    for group, members in GROUPS.items():
        lines += [f"        {group}:", "          hosts:"]
        for name in members:
            lines += [f"            {name}:", f"              ssh_host: {lab.host(HOSTS[name]).address}"]
    lines += [
        "      vars:",
        "        ssh_user: root",
        f"        ssh_private_key_file: {lab.key}",
        f"        ssh_known_hosts_file: {lab.known_hosts}",
        f"        db_root_password: !secret {DB_ROOT_PASSWORD}",
        f"        redis_password: !secret {REDIS_PASSWORD}",
        f"        db_replication_password: !secret {REPLICATION_PASSWORD}",
        "        files_mount: sshfs",
        "        dns_multitenant: true",
        "        gunicorn_workers: 2",
        "        sites:",
    ]
    for site in SITES:
        lines += [f"          - name: {site}", f"            admin_password: !secret {ADMIN_PASSWORD}"]
    lines += [
        "        apps:",
        f"          - {{name: frappe, repo: '{repos}/frappe', ref: version-15}}",
        f"          - {{name: ledger, repo: '{repos}/ledger', ref: v1}}",
    ]
    path = directory / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def multiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiServer]:
    """Five lab hosts deployed once as lb, app1, app2, db and store (redis + files), two sites."""
    with claimed_lab("multiserver", len(HOSTS)) as lab:
        base = tmp_path_factory.mktemp("multi-repos")
        standin.make_app_repos(base)
        repos = serve_git(lab.lab.settings, base)  # stopped by the lab's down
        project = tmp_path_factory.mktemp("multi-project")
        write_inventory(project, lab, repos)
        system = MultiServer(lab, project, repos)
        started = time.monotonic()
        result = system.first_deploy = system.deploy()
        print(f"[multiserver] deploy took {time.monotonic() - started:.0f} s")
        if result.returncode != 0:
            pytest.fail(f"the multi-server deploy failed (exit {result.returncode}):\n{failures(result)}")
        for secret in (DB_ROOT_PASSWORD, ADMIN_PASSWORD, REDIS_PASSWORD, REPLICATION_PASSWORD):
            assert secret not in result.stdout + result.stderr
        yield system


__all__ = ["ADMIN_PASSWORD", "APP_HOSTS", "DB_ROOT_PASSWORD", "GROUPS", "HOSTS", "REDIS_PASSWORD",
           "REPLICATION_PASSWORD", "SITES",
           "MultiServer", "http", "multiserver"]
