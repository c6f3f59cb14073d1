"""The deploy templates for several servers (golden text where the text is a contract)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provision.onboard.firewall import render_ruleset
from provision.secrets import Secret
from provision.tasks.firewall import restricted_rules

from .test_server_roles import FIVE, HOSTVARS
from .test_templates import directives, ini_sections, render, server_blocks, site, variables

pytestmark = pytest.mark.unit

REDIS_SECRET = "redis-Secret-5521abc"


def host(name: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"inventory_hostname": name, "groups": FIVE, "hostvars": HOSTVARS,
                              "redis_password": Secret(REDIS_SECRET), "dns_multitenant": True,
                              "sites": [site("a.test"), site("b.test", domains=["www.b.test"])]}
    return variables(**{**values, **overrides})


def test_lb_upstreams_one_line_per_app_host_drained_ones_down() -> None:
    assert render("lb_upstreams.conf.j2", host("lb", lb_drained_hosts=["app2"])) == (
        "# Written by provision deploy (templates/lb_upstreams.conf.j2). One server line per app host; a host is\n"
        "# drained by adding \" down\" before its \";\" and reloading nginx (provision update does this).\n"
        "upstream frappe-app-hosts {\n"
        "\tserver 10.0.0.2:80 max_fails=0 fail_timeout=10s;  # app:app1\n"
        "\tserver 192.168.1.3:80 max_fails=1 fail_timeout=10s down;  # app:app2\n"
        "\tkeepalive 16;\n"
        "}\n"
    )
    lines = [line for line in render("lb_upstreams.conf.j2", host("lb")).splitlines() if line.startswith("\tserver ")]
    assert [line.split()[2] for line in lines] == ["max_fails=1", "max_fails=1"]


def test_lb_sites_proxy_to_the_upstream_with_retries_and_websockets() -> None:
    text = render("lb.conf.j2", host("lb"))
    first, second = server_blocks(text)
    assert directives(first, "server_name") == ["a.test"] and directives(second, "server_name") == ["b.test www.b.test"]
    assert directives(first, "proxy_pass") == ["http://frappe-app-hosts"] * 2
    assert directives(first, "proxy_next_upstream") == ["error timeout http_502 http_504"] * 2
    assert directives(first, "proxy_next_upstream_tries") == ["2", "2"]
    assert 'proxy_set_header Upgrade $http_upgrade;\n\t\tproxy_set_header Connection "upgrade";' in first
    assert "ssl" not in text


def test_lb_terminates_tls_for_sites_with_a_certificate() -> None:
    text = render("lb.conf.j2", host("lb", sites=[site("a.test", ssl_certificate="/etc/ssl/a.pem",
                                                       ssl_certificate_key="/etc/ssl/a.key")]))
    redirect, secure = server_blocks(text)
    assert directives(redirect, "return") == ["301 https://$host$request_uri"]
    assert directives(secure, "listen") == ["443 ssl", "[::]:443 ssl"]
    assert directives(secure, "ssl_certificate") == ["/etc/ssl/a.pem"]
    assert directives(secure, "proxy_pass") == ["http://frappe-app-hosts"] * 2


def test_app_host_uses_the_redis_host_with_its_password_and_runs_no_redis() -> None:
    config = json.loads(render("common_site_config.json.j2", host("app1")))
    assert config["redis_cache"] == f"redis://:{REDIS_SECRET}@store:13000"
    assert config["redis_queue"] == f"redis://:{REDIS_SECRET}@store:11000"
    assert config["redis_socketio"] == config["redis_cache"]
    sections = ini_sections(render("supervisor.conf.j2", host("app1")))
    assert "program:frappe-bench-redis-cache" not in sections and "group:frappe-bench-redis" not in sections
    assert "program:frappe-bench-frappe-schedule" in sections
    assert sections["group:frappe-bench-workers"]["programs"].startswith("frappe-bench-frappe-schedule,")


def test_app_host_nginx_takes_the_client_address_from_the_lb_only() -> None:
    text = render("nginx.conf.j2", host("app1"))
    assert "\tset_real_ip_from 10.0.0.1;\n\treal_ip_header X-Forwarded-For;\n\treal_ip_recursive on;\n" in text
    assert "set_real_ip_from" not in render("nginx.conf.j2", variables())  # one host: no proxy in front


def test_only_the_scheduler_host_has_the_scheduler() -> None:
    sections = ini_sections(render("supervisor.conf.j2", host("app2")))
    assert "program:frappe-bench-frappe-schedule" not in sections
    assert sections["group:frappe-bench-workers"]["programs"] == \
        "frappe-bench-frappe-short-worker,frappe-bench-frappe-long-worker"


def test_redis_host_binds_its_private_address_and_reads_its_acl() -> None:
    cache = render("redis_cache.conf.j2", host("store", hostvars={**HOSTVARS, "store": {"ssh_host": "10.0.0.5"}}))
    assert "bind 10.0.0.5\n" in cache and "aclfile /etc/redis/frappe/redis_cache.acl\n" in cache
    assert "dir /var/lib/redis/frappe\n" in cache
    programs = ini_sections(render("redis_supervisor.conf.j2", host("store")))
    assert programs["program:frappe-redis-queue"]["command"] == \
        "/usr/bin/redis-server /etc/redis/frappe/redis_queue.conf"
    assert programs["program:frappe-redis-queue"]["user"] == "redis"


def test_db_host_listens_on_its_private_address_only() -> None:
    cnf = render("mariadb.cnf.j2", host("db"))
    assert "bind-address = 10.0.0.4\nport = 3306\nskip-name-resolve\n" in cnf
    assert "bind-address = 127.0.0.1\n" in render("mariadb.cnf.j2", variables())


def test_firewall_ruleset_accepts_service_ports_from_the_named_hosts_only() -> None:
    rules = restricted_rules([{"ports": [3306], "from": ["10.0.0.2", "10.0.0.3"]},
                              {"ports": [13000, 11000], "from": ["10.0.0.2", "fd00::2"]}])
    text = render_ruleset(22, [], rules)
    assert text.splitlines()[-6:] == [
        "        tcp dport { 22 } accept",
        "        ip saddr { 10.0.0.2, 10.0.0.3 } tcp dport { 3306 } accept",
        "        ip saddr { 10.0.0.2 } tcp dport { 11000, 13000 } accept",
        "        ip6 saddr { fd00::2 } tcp dport { 11000, 13000 } accept",
        "    }",
        "}",
    ]
    assert "tcp dport 22 accept\n        ct state invalid drop" in text  # SSH first, as onboard's
    assert render_ruleset(22) == render_ruleset(22, (80, 443), ())  # onboard's ruleset unchanged
