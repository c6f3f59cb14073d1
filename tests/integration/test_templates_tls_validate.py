"""The rendered TLS nginx config (tls: acme and manual) accepted and served by the real nginx."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import test_templates_validate as base
from .test_templates_validate import Bench, free_port, get, nginx_main_conf, run, self_signed_cert, tool

# The base module's fixtures, used here by name.
bench, nginx_runner, echo_backend = base.bench, base.nginx_runner, base.echo_backend

pytestmark = pytest.mark.integration


def acme_layout(bench: Bench) -> tuple[Path, Path]:
    """certbot's live/ layout for erp.test (a self-signed stand-in) and a webroot holding a challenge token."""
    certbot_dir = bench.root / "letsencrypt"
    live = certbot_dir / "live" / "erp.test"
    live.mkdir(parents=True)
    cert, key = self_signed_cert(bench.root, "erp.test")
    (live / "fullchain.pem").symlink_to(cert)
    (live / "privkey.pem").symlink_to(key)
    (live / "chain.pem").symlink_to(cert)
    webroot = bench.root / "acme"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (webroot / ".well-known" / "acme-challenge" / "token-1").write_text("token-1.thumbprint")
    return certbot_dir, webroot


def test_acme_config_passes_nginx_t_serves_https_and_answers_challenges_over_http(
        bench: Bench, nginx_runner: Any, echo_backend: None) -> None:
    certbot_dir, webroot = acme_layout(bench)
    http_port, https_port = free_port(), free_port()
    sites = [{"name": "erp.test", "apps": ["frappe"], "domains": ["www.erp.test"]},
             {"name": "new.test", "apps": ["frappe"]}]  # no certificate yet: plain HTTP
    bench.write("502.html.j2", bench.path / "config" / "502.html")
    conf = bench.write("nginx.conf.j2", bench.root / "conf.d" / "bench.conf", sites=sites, dns_multitenant=True,
                       tls="acme", tls_ready=["erp.test"], certbot_dir=str(certbot_dir), acme_webroot=str(webroot),
                       nginx_http_port=http_port, nginx_https_port=https_port)
    nginx_runner(nginx_main_conf(bench, conf), [http_port, https_port])

    secure = get(https_port, "www.erp.test", "/api/method/ping", tls=True)
    assert (secure.status, secure.body) == (200, b"erp.test")  # type: ignore[attr-defined]
    assert secure.getheader("Strict-Transport-Security") == "max-age=63072000; includeSubDomains"
    redirect = get(http_port, "erp.test", "/app?x=1")
    assert (redirect.status, redirect.getheader("Location")) == (301, f"https://erp.test:{https_port}/app?x=1")
    for host in ("erp.test", "new.test"):
        token = get(http_port, host, "/.well-known/acme-challenge/token-1")
        assert (token.status, token.body) == (200, b"token-1.thumbprint"), host  # type: ignore[attr-defined]
        assert token.getheader("Content-Type") == "text/plain"
    assert get(http_port, "erp.test", "/.well-known/acme-challenge/missing").status == 404
    plain = get(http_port, "new.test", "/api/method/ping")
    assert (plain.status, plain.body) == (200, b"new.test")  # type: ignore[attr-defined]
    assert plain.getheader("Strict-Transport-Security") is None


def check_conf(bench: Bench, conf: Path) -> subprocess.CompletedProcess[str]:
    main = nginx_main_conf(bench, conf)
    return run(tool("nginx"), "-t", "-p", str(main.parent), "-c", str(main))


def test_ocsp_stapling_config_is_valid_nginx(bench: Bench) -> None:
    certbot_dir, webroot = acme_layout(bench)
    conf = bench.write("nginx.conf.j2", bench.root / "conf.d" / "bench.conf", dns_multitenant=True, tls="acme",
                       sites=[{"name": "erp.test", "apps": ["frappe"]}], tls_ready=None, certbot_dir=str(certbot_dir),
                       acme_webroot=str(webroot), tls_ocsp_stapling=True, tls_ocsp_resolver="127.0.0.1",
                       nginx_http_port=free_port(), nginx_https_port=free_port())
    result = check_conf(bench, conf)
    assert result.returncode == 0, result.stderr
    assert "ssl_stapling on;" in conf.read_text()


def test_manual_pair_whose_key_does_not_match_fails_nginx_t(bench: Bench) -> None:
    cert, _ = self_signed_cert(bench.root, "erp.test")
    _, other_key = self_signed_cert(bench.root, "other.test")
    conf = bench.write("nginx.conf.j2", bench.root / "conf.d" / "bench.conf", dns_multitenant=True,
                       sites=[{"name": "erp.test", "apps": ["frappe"], "tls": "manual", "ssl_certificate": str(cert),
                               "ssl_certificate_key": str(other_key)}],
                       nginx_http_port=free_port(), nginx_https_port=free_port())
    result = check_conf(bench, conf)
    assert result.returncode != 0
    assert "key values mismatch" in result.stderr
