"""nginx.conf.j2's TLS blocks for tls off / acme / manual: golden text of the parts TLS adds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_templates import TEMPLATES, directives, render, server_blocks, site, variables

pytestmark = pytest.mark.unit

CHALLENGE = """\
	location ^~ /.well-known/acme-challenge/ {
		root /var/www/acme;
		default_type "text/plain";
		try_files $uri =404;
	}
"""

TLS_SETTINGS = """\
	ssl_certificate /etc/letsencrypt/live/erp.test/fullchain.pem;
	ssl_certificate_key /etc/letsencrypt/live/erp.test/privkey.pem;
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:\
DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
	ssl_prefer_server_ciphers off;
	ssl_session_timeout 1d;
	ssl_session_cache shared:SSL:10m;
	ssl_session_tickets off;

	proxy_buffer_size 128k;
"""

REDIRECT = """\
server {
	listen 80;
	listen [::]:80;
	server_name erp.test www.erp.test;

	location ^~ /.well-known/acme-challenge/ {
		root /var/www/acme;
		default_type "text/plain";
		try_files $uri =404;
	}

	location / {
		return 301 https://$host$request_uri;
	}
}"""


def acme(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "dns_multitenant": True, "tls": "acme", "tls_ready": ["erp.test"],
        "sites": [site("erp.test", domains=["www.erp.test", {"domain": "old.test", "tls": False}]),
                  site("intranet.test", tls="off")],
    }
    values.update(overrides)
    return variables(**values)


def test_tls_off_renders_no_tls_and_no_challenge() -> None:
    text = render("nginx.conf.j2", variables(dns_multitenant=True, sites=[site("a.test"), site("b.test", tls=False)]))
    [block] = server_blocks(text)
    assert directives(block, "server_name") == ["a.test b.test"]
    assert "ssl" not in text and "acme-challenge" not in text and "return 301" not in text


def test_acme_with_a_certificate_serves_https_and_redirects_all_but_the_challenge() -> None:
    text = render("nginx.conf.j2", acme())
    plain, secure, redirect = server_blocks(text)
    assert directives(plain, "server_name") == ["old.test intranet.test"]
    assert CHALLENGE in plain, "plain HTTP names answer challenges too"
    assert "Strict-Transport-Security" not in plain
    assert directives(secure, "listen") == ["443 ssl", "[::]:443 ssl"]
    assert directives(secure, "server_name") == ["erp.test www.erp.test"]
    assert "\troot /home/frappe/frappe-bench/sites;\n\n" + TLS_SETTINGS in secure
    assert "acme-challenge" not in secure and "ssl_stapling" not in secure
    assert 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains"' in secure
    assert "proxy_set_header X-Frappe-Site-Name erp.test;" in secure
    assert redirect == REDIRECT


def test_acme_without_a_certificate_yet_serves_http_with_the_challenge_path() -> None:
    text = render("nginx.conf.j2", acme(tls_ready=[]))
    [plain] = server_blocks(text)
    assert directives(plain, "server_name") == ["erp.test www.erp.test old.test intranet.test"]
    assert CHALLENGE in plain
    assert "ssl" not in text and "return 301" not in text


def test_tls_ready_unknown_assumes_every_certificate_is_in_place() -> None:
    assert server_blocks(render("nginx.conf.j2", acme(tls_ready=None))) == server_blocks(render("nginx.conf.j2",
                                                                                                acme()))


def test_manual_certificates_have_no_challenge_path() -> None:
    values = variables(dns_multitenant=True, sites=[
        site("erp.test", tls="manual", ssl_certificate="/ssl/erp.pem", ssl_certificate_key="/ssl/erp.key"),
        site("legacy.test", ssl_certificate="/ssl/legacy.pem", ssl_certificate_key="/ssl/legacy.key"),
    ])
    text = render("nginx.conf.j2", values)
    erp, legacy, redirect = server_blocks(text)
    assert directives(erp, "ssl_certificate") == ["/ssl/erp.pem"]
    assert directives(erp, "ssl_certificate_key") == ["/ssl/erp.key"]
    assert directives(legacy, "ssl_certificate") == ["/ssl/legacy.pem"], "ssl_certificate alone means manual"
    assert directives(erp, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert "acme-challenge" not in text
    assert redirect == ("server {\n\tlisten 80;\n\tlisten [::]:80;\n\tserver_name erp.test legacy.test;\n\n"
                        "\treturn 301 https://$host$request_uri;\n}")


def test_a_site_setting_wins_over_the_global_one() -> None:
    values = variables(dns_multitenant=True, tls="acme", tls_ready=None, sites=[
        site("off.test", tls=False), site("own.test", ssl_certificate="/c.pem", ssl_certificate_key="/k.pem")])
    plain, own, _ = server_blocks(render("nginx.conf.j2", values))
    assert directives(plain, "server_name") == ["off.test"]
    assert directives(own, "ssl_certificate") == ["/c.pem"]


def test_ocsp_stapling_only_when_asked() -> None:
    secure = server_blocks(render("nginx.conf.j2", acme(tls_ocsp_stapling=True, tls_ocsp_resolver="127.0.0.53")))[1]
    assert ("\tssl_session_tickets off;\n\tssl_stapling on;\n\tssl_stapling_verify on;\n"
            "\tssl_trusted_certificate /etc/letsencrypt/live/erp.test/chain.pem;\n\tresolver 127.0.0.53;\n") in secure
    assert "resolver" not in server_blocks(render("nginx.conf.j2", acme(tls_ocsp_stapling=True)))[1]


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_renders_cleanly_with_tls(name: str) -> None:
    text = render(name, acme())
    assert text.strip()
    assert "\t\n" not in text and " \n" not in text, "trailing whitespace"
