"""Port-per-site mode (``dns_multitenant: false``) with a pinned port: every site on its own port.

One lab host, three sites: the first gets 80, one is pinned to 8001, the third must get 8002 (the
automatic ports skip the pinned one; before, it got 8001 too and was unreachable). The deploy's
verify step checks each site on its real port, so when one stops answering there it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.lab.gitserve import serve_git

from .conftest import LabHandle, claimed_lab
from .test_deploy import ADMIN_PASSWORD, DB_ROOT_PASSWORD, deploy, events, failures, http, standin

pytestmark = pytest.mark.e2e

PORTS = {"one.local": 80, "two.local": 8001, "three.local": 8002}


@pytest.fixture(scope="module")
def port_lab() -> Iterator[LabHandle]:
    with claimed_lab("port-sites", 1) as handle:
        yield handle


@pytest.fixture(scope="module")
def project(port_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repos = tmp_path_factory.mktemp("repos")
    standin.make_app_repos(repos)
    git = serve_git(port_lab.lab.settings, repos)  # stopped by the lab's down
    host = port_lab.hosts[0]
    directory = tmp_path_factory.mktemp("project")
    (directory / "inventory.yml").write_text(f"""\
all:
  children:
    prod:
      hosts:
        {host.name}:
          ssh_host: {host.address}
          sites:
            - {{name: one.local, admin_password: !secret {ADMIN_PASSWORD}}}
            - {{name: two.local, admin_password: !secret {ADMIN_PASSWORD}, nginx_port: 8001}}
            - {{name: three.local, admin_password: !secret {ADMIN_PASSWORD}}}
      vars:
        ssh_user: root
        ssh_private_key_file: {port_lab.key}
        ssh_known_hosts_file: {port_lab.known_hosts}
        db_root_password: !secret {DB_ROOT_PASSWORD}
        dns_multitenant: false
        gunicorn_workers: 1
        apps:
          - {{name: frappe, repo: '{git}/frappe', ref: version-15}}
          - {{name: ledger, repo: '{git}/ledger', ref: v1}}
""")
    return directory


def test_every_site_answers_on_its_own_port(port_lab: LabHandle, project: Path) -> None:
    result = deploy(project)
    assert result.returncode == 0, failures(result)
    address = port_lab.hosts[0].address
    for site, port in PORTS.items():
        status, body = http(f"{address}:{port}", "/", "unrelated.host")
        assert status == 200 and site in body, (site, port, body[:300])
    listens = port_lab.ssh("lab1", "grep -ho 'listen [0-9][0-9]*;' /home/frappe/frappe-bench/config/nginx.conf").stdout
    assert sorted(listens.split()) == sorted(["listen", "80;", "listen", "8001;", "listen", "8002;"])


def test_verify_fails_when_a_site_stops_answering_on_its_port(port_lab: LabHandle, project: Path) -> None:
    conf = "/home/frappe/frappe-bench/config/nginx.conf"
    port_lab.ssh("lab1", f"sed -i 's/listen 8002;/listen 8009;/' {conf} && nginx -s reload")
    try:
        result = deploy(project, "--tags", "verify", timeout=300)
        assert result.returncode == 2
        failed = [e for e in events(result) if e["event"] == "task" and e["status"] == "failed"]
        assert [e["item"]["name"] for e in failed] == ["three.local"], failures(result)
    finally:
        port_lab.ssh("lab1", f"sed -i 's/listen 8009;/listen 8002;/' {conf} && nginx -s reload")
