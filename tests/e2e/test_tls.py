"""HTTPS end to end: ``tls: acme`` against a real ACME server (Let's Encrypt's pebble), then ``tls: manual``.

pebble (Debian's package) runs on the lab's bridge address with its own TLS certificate (made here
with openssl), real HTTP-01 validation (PEBBLE_VA_ALWAYS_VALID unset) and ``pebble-challtestsrv`` as
its DNS, resolving every name to the lab host. One host, two sites; the tests run in order on it:
issue, converge, check mode and renew-when-due, a new domain, a forced renewal under load, the
operator's own certificate and a mismatching key, and the CA gone.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabHandle, claimed_lab
from .test_deploy import ADMIN_PASSWORD, DB_ROOT_PASSWORD, deploy, events, failures, git_server, recap  # noqa: F401

pytestmark = pytest.mark.e2e

SITES = ["tls1.test", "tls2.test"]
NEW_SITE = "tls3.test"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}


@pytest.fixture(scope="module")
def deploy_lab() -> Iterator[LabHandle]:
    with claimed_lab("tls", 1) as handle:
        yield handle


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-made CA (certificate, key) under ``directory``."""
    cert, key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(key), "-out", str(cert), cwd=directory)
    return cert, key


def make_leaf(directory: Path, ca: tuple[Path, Path], name: str, san: str) -> tuple[Path, Path]:
    """A certificate for ``san`` (e.g. "DNS:a.test" or "IP:10.0.0.1") signed by ``ca``: (full chain, key)."""
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr),
            cwd=directory)
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial", "-days", "10",
            "-extfile", str(ext), "-out", str(cert), cwd=directory)
    return cert, key


def wait_port(address: str, port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {address}:{port}")


class Pebble:
    """pebble and pebble-challtestsrv on the lab's bridge address."""

    def __init__(self, lab: LabHandle, directory: Path) -> None:
        self.address = str(lab.lab.settings.gateway)
        self.host_address = lab.hosts[0].address
        self.dir = directory
        self.tls_ca = make_ca(directory, "pebble-listener")
        self.cert, self.key = make_leaf(directory, self.tls_ca, "pebble", f"IP:{self.address}")
        self.config = directory / "pebble.json"
        self.config.write_text(json.dumps({"pebble": {
            "listenAddress": f"{self.address}:14000", "managementListenAddress": f"{self.address}:15000",
            "certificate": str(self.cert), "privateKey": str(self.key), "httpPort": 80, "tlsPort": 443,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        self.processes: list[subprocess.Popen[Any]] = []
        self.pebble: subprocess.Popen[Any] | None = None

    @property
    def directory_url(self) -> str:
        return f"https://{self.address}:14000/dir"

    def start_dns(self) -> None:
        log = open(self.dir / "challtestsrv.log", "ab")  # noqa: SIM115 (closed with the process)
        dns = subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", self.host_address, "-defaultIPv6", "",
             "-dns01", f"{self.address}:8053", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"{self.address}:8055"],
            stdout=log, stderr=log, env=CLEAN_ENV)
        self.processes.append(dns)
        wait_port(self.address, 8055, dns, "pebble-challtestsrv")

    def start(self) -> None:
        log = open(self.dir / "pebble.log", "ab")  # noqa: SIM115
        self.pebble = subprocess.Popen(["pebble", "-config", str(self.config), "-dnsserver", f"{self.address}:8053"],
                                       stdout=log, stderr=log, env=CLEAN_ENV)
        self.processes.append(self.pebble)
        wait_port(self.address, 14000, self.pebble, "pebble")

    def stop(self) -> None:
        if self.pebble and self.pebble.poll() is None:
            self.pebble.terminate()
            self.pebble.wait(timeout=10)

    def root(self) -> str:
        """The root pebble signs with (made fresh at each start), from its management endpoint."""
        context = ssl.create_default_context(cafile=str(self.tls_ca[0]))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        with opener.open(f"https://{self.address}:15000/roots/0", timeout=10) as response:
            return str(response.read().decode())

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


@pytest.fixture(scope="module")
def pebble(deploy_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    server = Pebble(deploy_lab, tmp_path_factory.mktemp("pebble"))
    try:
        server.start_dns()
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def pebble_root(pebble: Pebble) -> Path:
    path = pebble.dir / "pebble-root.pem"
    path.write_text(pebble.root())
    return path


class Project:
    """The user's project directory; ``write`` renders the inventory with per-site overrides."""

    def __init__(self, directory: Path, lab: LabHandle, git: str, pebble: Pebble) -> None:
        self.dir = directory
        self.lab, self.git, self.pebble = lab, git, pebble
        self.sites: dict[str, dict[str, Any]] = {name: {} for name in SITES}

    def write(self) -> None:
        host = self.lab.hosts[0]
        lines = ["all:", "  children:", "    prod:", "      hosts:",
                 f"        {host.name}:", f"          ssh_host: {host.address}", "          sites:"]
        for name, extra in self.sites.items():
            lines += [f"            - name: {name}", f"              admin_password: !secret {ADMIN_PASSWORD}"]
            lines += [f"              {key}: {json.dumps(value)}" for key, value in extra.items()]
        lines += [
            "      vars:",
            "        ssh_user: root",
            f"        ssh_private_key_file: {self.lab.key}",
            f"        ssh_known_hosts_file: {self.lab.known_hosts}",
            f"        db_root_password: !secret {DB_ROOT_PASSWORD}",
            "        dns_multitenant: true",
            "        gunicorn_workers: 2",
            "        tls: acme",
            "        acme_email: ops@tls.test",
            f"        acme_directory: {self.pebble.directory_url}",
            f"        acme_ca_bundle: {self.pebble.tls_ca[0]}",
            "        apps:",
            f"          - {{name: frappe, repo: '{self.git}/frappe', ref: version-15}}",
            f"          - {{name: ledger, repo: '{self.git}/ledger', ref: v1}}",
        ]
        (self.dir / "inventory.yml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def project(deploy_lab: LabHandle, git_server: str, pebble: Pebble,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Project:
    result = Project(tmp_path_factory.mktemp("project"), deploy_lab, git_server, pebble)
    result.write()
    return result


# ----- what the sites serve ----------------------------------------------------------------------------


def raw_get(address: str, port: int, site: str, path: str, *, cafile: Path | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], str, bytes | None]:
    """GET over HTTP, or HTTPS with SNI ``site`` verified against ``cafile``: (status, headers, body, cert DER)."""
    sock = socket.create_connection((address, port), timeout=timeout)
    der = None
    if cafile is not None:
        context = ssl.create_default_context(cafile=str(cafile))
        sock = context.wrap_socket(sock, server_hostname=site)
        der = sock.getpeercert(binary_form=True)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {site}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body.decode(errors="replace"), der


def cert_info(der: bytes | None) -> dict[str, str]:
    """serial and names of a served certificate."""
    assert der is not None
    pem = ssl.DER_cert_to_PEM_cert(der)
    result = subprocess.run(["openssl", "x509", "-noout", "-serial", "-ext", "subjectAltName"], input=pem,
                            capture_output=True, text=True, timeout=30, check=True)
    serial = next(line.split("=", 1)[1] for line in result.stdout.splitlines() if line.startswith("serial="))
    names = sorted(part.strip().removeprefix("DNS:") for line in result.stdout.splitlines() if "DNS:" in line
                   for part in line.split(","))
    return {"serial": serial, "names": " ".join(names)}


def served(lab: LabHandle, site: str, cafile: Path, *, timeout: float = 10) -> dict[str, str]:
    status, _, body, der = raw_get(lab.hosts[0].address, 443, site, "/api/method/ping", cafile=cafile,
                                   timeout=timeout)
    assert (status, json.loads(body)) == (200, {"message": "pong"}), (site, status, body)
    return cert_info(der)


def warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [e["msg"] for e in events(result) if e["event"] == "warning" and e.get("host") == "lab1"]


def changed_tasks(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str]]:
    return [(e["task"], e.get("label") or "", e["msg"]) for e in events(result)
            if e["event"] == "task" and e["status"] == "changed" and not e.get("handler")]


# ----- the tests, in order ------------------------------------------------------------------------------

STATE: dict[str, Any] = {}


def test_deploy_issues_a_certificate_per_site_from_pebble(deploy_lab: LabHandle, project: Project,
                                                          pebble_root: Path) -> None:
    started = time.monotonic()
    result = deploy(project.dir)
    assert result.returncode == 0, failures(result)
    print(f"first deploy with tls: acme took {time.monotonic() - started:.0f}s")
    address = deploy_lab.hosts[0].address
    for site in SITES:
        info = served(deploy_lab, site, pebble_root)
        assert info["names"] == site
        STATE[site] = info["serial"]
        status, headers, _, _ = raw_get(address, 80, site, "/app?x=1")
        assert (status, headers.get("location")) == (301, f"https://{site}/app?x=1")
        mode = deploy_lab.ssh("lab1", f"stat -L -c '%a %U' /etc/letsencrypt/live/{site}/privkey.pem").stdout.strip()
        assert mode == "600 root"
    _, headers, _, _ = raw_get(address, 443, SITES[0], "/api/method/ping", cafile=pebble_root)
    assert headers.get("strict-transport-security") == "max-age=63072000; includeSubDomains"
    # The challenge path answers over plain HTTP (no redirect), from the webroot certbot writes to.
    deploy_lab.ssh("lab1", "echo token-body > /var/www/acme/.well-known/acme-challenge/e2e-token")
    status, _, body, _ = raw_get(address, 80, SITES[1], "/.well-known/acme-challenge/e2e-token")
    assert (status, body.strip()) == (200, "token-body")
    crontab = deploy_lab.ssh("lab1", "crontab -l -u root").stdout
    assert "#provision: certbot renew" in crontab and "/usr/local/sbin/provision-certbot-renew" in crontab


def test_second_deploy_changes_nothing(project: Project) -> None:
    result = deploy(project.dir)
    assert result.returncode == 0, failures(result)
    assert recap(result)["lab1"]["changed"] == 0, changed_tasks(result)
    assert warnings(result) == []


def test_check_mode_then_deploy_renew_certificates_due_within_warn_days(deploy_lab: LabHandle, project: Project,
                                                                        pebble_root: Path) -> None:
    check = deploy(project.dir, "--check", "-e", "tls_warn_days=100000")
    assert check.returncode == 0, failures(check)
    would = [(item, msg) for task, item, msg in changed_tasks(check) if task.startswith("TLS certificates issued")]
    assert sorted(item for item, _ in would) == SITES
    assert all("would renew" in msg for _, msg in would), would
    assert {site: served(deploy_lab, site, pebble_root)["serial"] for site in SITES} == STATE, "check changed nothing"

    result = deploy(project.dir, "-e", "tls_warn_days=100000")
    assert result.returncode == 0, failures(result)
    warned = warnings(result)
    for site in SITES:
        assert any(f"lab1: {site}: certificate expires on 20" in w for w in warned), warned
        serial = served(deploy_lab, site, pebble_root)["serial"]
        assert serial != STATE[site], f"{site} was not renewed"
        STATE[site] = serial


def test_adding_a_domain_reissues_only_that_site(deploy_lab: LabHandle, project: Project, pebble_root: Path) -> None:
    project.sites[SITES[0]] = {"domains": [f"www.{SITES[0]}"]}
    project.write()
    result = deploy(project.dir)
    assert result.returncode == 0, failures(result)
    issued = [item for task, item, _ in changed_tasks(result) if task.startswith("TLS certificates issued")]
    assert issued == [SITES[0]]
    first = served(deploy_lab, SITES[0], pebble_root)
    assert first["names"] == f"{SITES[0]} www.{SITES[0]}"
    assert served(deploy_lab, f"www.{SITES[0]}", pebble_root)["serial"] == first["serial"]
    assert served(deploy_lab, SITES[1], pebble_root)["serial"] == STATE[SITES[1]]
    STATE[SITES[0]] = first["serial"]


def test_forced_renewal_by_the_cron_command_serves_the_new_certificate_without_a_failed_request(
        deploy_lab: LabHandle, pebble_root: Path) -> None:
    crontab = deploy_lab.ssh("lab1", "crontab -l -u root").stdout.splitlines()
    job = crontab[crontab.index("#provision: certbot renew") + 1].split(None, 5)[5]
    outcome: dict[str, Any] = {}

    def renew() -> None:
        outcome["result"] = deploy_lab.ssh("lab1", f"{job} --force-renewal", check=False, timeout=300)

    worker = threading.Thread(target=renew)
    worker.start()
    requests = failed = 0
    errors: list[str] = []
    serials: set[str] = set()
    deadline = time.monotonic() + 300
    while worker.is_alive() and time.monotonic() < deadline:
        try:
            # A refused, reset or non-200 request fails at once; under load a request may only be
            # slow (the machine's cores are shared with certbot and the other tests), which is no failure.
            serials.add(served(deploy_lab, SITES[0], pebble_root, timeout=60)["serial"])
        except (OSError, AssertionError) as error:
            failed += 1
            errors.append(repr(error))
        requests += 1
    worker.join(timeout=10)
    result = outcome["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert failed == 0, f"{failed} of {requests} requests failed during the renewal: {errors[:3]}"
    assert STATE[SITES[0]] in serials, "no request was made before nginx reloaded"
    # The renewal returns only once nginx serves what it renewed (its deploy hook waits for the reload).
    for site in SITES:
        serial = served(deploy_lab, site, pebble_root, timeout=60)["serial"]
        assert serial != STATE[site], f"{site}: nginx still serves the old certificate after the renewal returned"
        STATE[site] = serial


def test_manual_certificate_is_served_and_a_mismatching_key_is_refused(deploy_lab: LabHandle, project: Project,
                                                                       tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "operator")
    cert, key = make_leaf(tmp_path, ca, SITES[1], f"DNS:{SITES[1]}")
    _, other_key = make_leaf(tmp_path, ca, "other", f"DNS:{SITES[1]}")
    for local, remote in ((cert, "site.pem"), (key, "site.key"), (other_key, "other.key")):
        subprocess.run(["ssh", "-F", str(deploy_lab.ssh_config), "-l", "root", "lab1",
                        f"mkdir -p /etc/ssl/operator && cat > /etc/ssl/operator/{remote}"],
                       input=local.read_bytes(), check=True, timeout=60, capture_output=True)
    project.sites[SITES[1]] = {"tls": "manual", "ssl_certificate": "/etc/ssl/operator/site.pem",
                               "ssl_certificate_key": "/etc/ssl/operator/site.key"}
    project.write()
    result = deploy(project.dir)
    assert result.returncode == 0, failures(result)
    assert served(deploy_lab, SITES[1], ca[0])["names"] == SITES[1]
    key_mode = deploy_lab.ssh("lab1", "stat -c '%a %U' /etc/ssl/operator/site.key").stdout.strip()
    assert key_mode == "600 root"

    config = "md5sum $(readlink -f /etc/nginx/conf.d/frappe-bench.conf); stat -c %Y /etc/nginx/conf.d/frappe-bench.conf"
    before = deploy_lab.ssh("lab1", config).stdout
    project.sites[SITES[1]]["ssl_certificate_key"] = "/etc/ssl/operator/other.key"
    project.write()
    refused = deploy(project.dir)
    assert refused.returncode == 2
    message = failures(refused)
    assert "does not match the certificate" in message and "nginx was not touched" in message, message
    assert deploy_lab.ssh("lab1", config).stdout == before
    assert served(deploy_lab, SITES[1], ca[0])["names"] == SITES[1]
    project.sites[SITES[1]]["ssl_certificate_key"] = "/etc/ssl/operator/site.key"
    project.write()
    STATE["operator_ca"] = ca[0]


def test_ca_down_fails_those_sites_keeps_what_they_serve_and_spares_the_others(
        deploy_lab: LabHandle, project: Project, pebble: Pebble, pebble_root: Path) -> None:
    project.sites[SITES[0]]["tls_warn_days"] = 100000  # due for renewal
    project.sites[NEW_SITE] = {}  # no certificate yet
    project.write()
    pebble.stop()
    result = deploy(project.dir)
    assert result.returncode == 2
    failed = [e for e in events(result) if e["event"] == "task" and e["status"] == "failed"]
    assert [e.get("label") for e in failed if e["task"].startswith("TLS certificates issued")] == [SITES[0], NEW_SITE]
    message = failures(result)
    assert f"{SITES[0]}: certbot could not renew" in message and "current certificate is kept" in message, message
    assert f"{NEW_SITE}: certbot could not issue" in message and "no certificate yet (HTTP only)" in message
    assert "Connection refused" in message or "ConnectionError" in message, message
    assert served(deploy_lab, SITES[0], pebble_root)["serial"] == STATE[SITES[0]]
    assert served(deploy_lab, SITES[1], STATE["operator_ca"])["names"] == SITES[1]
    status, _, body, _ = raw_get(deploy_lab.hosts[0].address, 80, NEW_SITE, "/api/method/ping")
    assert (status, json.loads(body)) == (200, {"message": "pong"}), "the new site is served over HTTP meanwhile"
    assert os.environ.get("PEBBLE_VA_ALWAYS_VALID") is None
