"""The deploy templates rendered for representative variable sets, with the engine's plain Jinja2 setup."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import pytest
import yaml

from provision.frappe_ports import nginx_site_ports
from provision.inventory import Inventory
from provision.secrets import Secret
from provision.server_roles import FILTERS as ROLE_FILTERS
from provision.templating import FILTERS as ENGINE_FILTERS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
DEFAULTS_FILE = ROOT / "playbooks" / "vars" / "deploy_defaults.yml"
INVENTORY_FILE = ROOT / "inventory.example.yml"
TEMPLATES = sorted(p.name for p in TEMPLATES_DIR.glob("*.j2") if not p.name.startswith("_"))

ADMIN_SECRET = "admin-Secret-7731"
ROOT_SECRET = "root-Secret-4410"


def make_env() -> jinja2.Environment:
    """The environment the engine's templating layer provides: StrictUndefined, to_json, to_nice_json."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["to_json"] = json.dumps
    env.filters["to_nice_json"] = lambda value: json.dumps(value, indent=1, sort_keys=True)
    env.filters["nginx_site_ports"] = nginx_site_ports
    env.filters.update(ROLE_FILTERS)
    env.filters["bool"] = ENGINE_FILTERS["bool"]
    return env


def defaults() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULTS_FILE.read_text())
    assert isinstance(data, dict)
    return data


def variables(**overrides: Any) -> dict[str, Any]:
    """Defaults, host facts, then what an inventory would set (replacing whole keys, as the engine does)."""
    values = defaults()
    values["facts"] = {"cpu_count": 2, "memory_mb": 4096, "os_id": "debian"}
    values["db_root_password"] = Secret(ROOT_SECRET)
    # the engine's magic variables, for one host outside any role group
    values.update(inventory_hostname="host1", groups={"all": ["host1"], "ungrouped": ["host1"]},
                  hostvars={"host1": {}})
    values.update(overrides)
    return values


def render(name: str, values: Mapping[str, Any]) -> str:
    return render_derived(make_env(), name, values)


class Derived(Mapping[str, Any]):
    """Variables as the engine reads them: a value written as a template (a derived default such as
    ``bench_path: "{{ frappe_home }}/{{ bench_name }}"``) renders when read, with these variables."""

    def __init__(self, env: jinja2.Environment, values: Mapping[str, Any]) -> None:
        self._env, self._values = env, values

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            return self._env.globals[key]
        return self.resolve(self._values[key])

    def resolve(self, value: Any) -> Any:
        alone = re.fullmatch(r"\{\{(.*)\}\}", value.strip(), re.S) if isinstance(value, str) else None
        if alone and "{{" not in alone.group(1):  # "{{ expr }}" alone: its native value, as the engine reads it
            template = self._env.from_string("{% set value__ = (" + alone.group(1) + ") %}")
            context = template.new_context(self, shared=True)  # type: ignore[arg-type]
            "".join(template.root_render_func(context))
            return context.vars["value__"]
        if isinstance(value, str) and "{{" in value:
            template = self._env.from_string(value)
            value = "".join(template.root_render_func(template.new_context(self, shared=True)))  # type: ignore[arg-type]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def render_derived(env: jinja2.Environment, name: str, values: Mapping[str, Any]) -> str:
    """Render a template file the way the engine does: its variables read (and rendered) lazily."""
    template = env.get_template(name)
    return "".join(template.root_render_func(template.new_context(Derived(env, values), shared=True)))  # type: ignore[arg-type]


def server_blocks(nginx: str) -> list[str]:
    """The top-level `server { ... }` blocks of an nginx config, by brace counting."""
    blocks: list[str] = []
    for match in re.finditer(r"^server \{", nginx, re.M):
        depth = 0
        for index in range(match.start(), len(nginx)):
            depth += {"{": 1, "}": -1}.get(nginx[index], 0)
            if depth == 0 and nginx[index] == "}":
                blocks.append(nginx[match.start() : index + 1])
                break
    return blocks


def directives(block: str, name: str) -> list[str]:
    """Values of a directive, wherever it appears in a block."""
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{re.escape(name)}\s+([^;]*);", block, re.M)]


def ini_sections(text: str) -> dict[str, dict[str, str]]:
    """A supervisor/INI file as {section: {key: value}}; duplicate sections would fail the test."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(";") or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(.+)\]", line.strip())
        if header:
            assert header.group(1) not in sections, f"duplicate section {header.group(1)}"
            current = sections[header.group(1)] = {}
            continue
        assert current is not None, f"line outside a section: {line!r}"
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def site(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "apps": ["frappe"], "admin_password": Secret(ADMIN_SECRET), "config": {}, **extra}


PORT_BASED = variables(sites=[site("site1.local")])

MULTITENANT_TLS = variables(
    dns_multitenant=True,
    gunicorn_workers=1,
    sites=[
        site(
            "erp.example.com",
            apps=["frappe", "erpnext"],
            domains=[
                "www.erp.example.com",
                {"domain": "shop.example.org", "ssl_certificate": "/etc/ssl/shop.crt",
                 "ssl_certificate_key": "/etc/ssl/shop.key"},
            ],
            ssl_certificate="/etc/ssl/erp.crt",
            ssl_certificate_key="/etc/ssl/erp.key",
        ),
        site("intranet.example.com", domains=["wiki.example.net"]),
    ],
    common_site_config={"allow_tests": True, "note": 'quote " backslash \\ done', "http_timeout": 300},
)

CUSTOM_QUEUES = variables(
    frappe_user="erp",
    frappe_group="www-erp",
    frappe_home="/srv/erp",
    bench_name="b2",
    webserver_port=18000,
    socketio_port=19000,
    redis_cache_port=23000,
    redis_queue_port=21000,
    nginx_http_port=8080,
    nginx_https_port=8443,
    nginx_ipv6=False,
    http_timeout=600,
    client_max_body_size="200m",
    background_workers=2,
    long_workers=4,
    cache_maxmemory=300,
    mariadb_innodb_buffer_pool_size="3G",
    mariadb_extra={"slow_query_log": 1, "long_query_time": 2},
    workers={"reports": {"timeout": 7200, "background_workers": 3}, "emails": {"timeout": 600}},
    sites=[site("one.test"), site("two.test"), site("three.test", port=9443)],
)

VARIABLE_SETS = {"port_based": PORT_BASED, "multitenant_tls": MULTITENANT_TLS, "custom_queues": CUSTOM_QUEUES}


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("set_name", list(VARIABLE_SETS))
def test_every_template_renders_without_undefined_or_secrets(set_name: str, name: str) -> None:
    text = render(name, VARIABLE_SETS[set_name])
    assert text.strip()
    assert ADMIN_SECRET not in text and ROOT_SECRET not in text
    assert "\t\n" not in text and " \n" not in text, "trailing whitespace"


def test_expected_templates_exist() -> None:
    assert set(TEMPLATES) >= {
        "nginx.conf.j2", "supervisor.conf.j2", "redis_cache.conf.j2", "redis_queue.conf.j2", "Procfile.j2",
        "common_site_config.json.j2", "mariadb.cnf.j2", "sudoers.j2", "logrotate.j2",
        "supervisord_socket.conf.j2", "502.html.j2",
    }


# One variable each template always reads (502.html.j2 reads none).
ALWAYS_READ = {
    "nginx.conf.j2": "http_timeout", "supervisor.conf.j2": "supervisor_startretries",
    "redis_cache.conf.j2": "redis_cache_port", "redis_queue.conf.j2": "redis_queue_port",
    "Procfile.j2": "webserver_port", "common_site_config.json.j2": "file_watcher_port",
    "mariadb.cnf.j2": "mariadb_bind_address", "sudoers.j2": "frappe_user", "logrotate.j2": "logrotate_rotate",
    "supervisord_socket.conf.j2": "frappe_group",
}


@pytest.mark.parametrize(("name", "variable"), sorted(ALWAYS_READ.items()))
def test_a_missing_variable_is_an_error_not_an_empty_string(name: str, variable: str) -> None:
    values = variables(sites=[site("a.test")])
    del values[variable]
    with pytest.raises(jinja2.UndefinedError, match=variable):
        render(name, values)


_ENV = make_env()
ENV_GLOBALS = _ENV.globals


class _ReadOnce(Mapping[str, Any]):
    """Variables as the engine passes them: a lazy mapping where an unread variable may not render."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = {**values, "unrenderable": None}

    def __getitem__(self, key: str) -> Any:
        if key == "unrenderable":
            raise AssertionError("a template read every variable instead of the ones it uses")
        if key not in self._values:
            return ENV_GLOBALS[key]  # namespace, range...: the engine's lazy mapping falls back the same way
        return Derived(_ENV, self).resolve(self._values[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_read_variables_lazily(name: str) -> None:
    template = make_env().get_template(name)
    context = template.new_context(_ReadOnce(MULTITENANT_TLS), shared=True)  # type: ignore[arg-type]
    assert "".join(template.root_render_func(context))


# ----- nginx -----------------------------------------------------------------------------------------


def test_nginx_port_based_single_site() -> None:
    text = render("nginx.conf.j2", PORT_BASED)
    assert "upstream frappe-bench-frappe {\n\tserver 127.0.0.1:8000 fail_timeout=0;\n}" in text
    assert "upstream frappe-bench-socketio-server {\n\tserver 127.0.0.1:9000 fail_timeout=0;\n}" in text
    [block] = server_blocks(text)
    assert directives(block, "listen") == ["80", "[::]:80"]
    assert directives(block, "server_name") == ["site1.local"]
    assert directives(block, "root") == ["/home/frappe/frappe-bench/sites", "/home/frappe/frappe-bench/config"]
    assert "try_files /site1.local/public/$uri @webserver;" in block
    assert "location ~ ^/protected/(.*) {\n\t\tinternal;\n\t\ttry_files /site1.local/$1 =404;" in block
    assert "proxy_set_header X-Frappe-Site-Name site1.local;" in block
    assert "proxy_set_header Upgrade $http_upgrade;" in block
    assert "proxy_pass http://frappe-bench-socketio-server;" in block
    assert "proxy_pass http://frappe-bench-frappe;" in block
    assert directives(block, "proxy_read_timeout") == ["120"]
    assert directives(block, "client_max_body_size") == ["50m"]
    assert directives(block, "error_page") == ["502 /502.html"]
    assert "location = /502.html {" in block
    assert directives(block, "gzip") == ["on"]
    assert 'add_header X-Frame-Options "SAMEORIGIN"' in block
    assert "Strict-Transport-Security" not in block, "HSTS on plain HTTP is meaningless"
    assert "ssl" not in " ".join(directives(block, "listen"))
    assert "map " not in text


def test_nginx_never_needs_a_custom_log_format() -> None:
    for values in VARIABLE_SETS.values():
        text = render("nginx.conf.j2", values)
        assert "log_format" not in text and "access_log" not in text and " main" not in text


def test_nginx_multitenant_with_custom_domain_and_tls() -> None:
    text = render("nginx.conf.j2", MULTITENANT_TLS)
    assert (
        "map $host $frappe_site_frappe_bench {\n\tdefault $host;\n"
        "\twww.erp.example.com erp.example.com;\n\tshop.example.org erp.example.com;\n"
        "\twiki.example.net intranet.example.com;\n}"
    ) in text
    plain, shop, erp, redirect = server_blocks(text)

    assert directives(plain, "listen") == ["80", "[::]:80"]
    assert directives(plain, "server_name") == ["intranet.example.com wiki.example.net"]
    assert "try_files /$frappe_site_frappe_bench/public/$uri @webserver;" in plain
    assert "proxy_set_header X-Frappe-Site-Name $frappe_site_frappe_bench;" in plain

    assert directives(erp, "listen") == ["443 ssl", "[::]:443 ssl"]
    assert directives(erp, "server_name") == ["erp.example.com www.erp.example.com"]
    assert directives(erp, "ssl_certificate") == ["/etc/ssl/erp.crt"]
    assert directives(erp, "ssl_certificate_key") == ["/etc/ssl/erp.key"]
    assert directives(erp, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert "proxy_set_header X-Frappe-Site-Name erp.example.com;" in erp
    assert 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains"' in erp

    assert directives(shop, "server_name") == ["shop.example.org"]
    assert directives(shop, "ssl_certificate") == ["/etc/ssl/shop.crt"]
    assert "try_files /erp.example.com/public/$uri @webserver;" in shop

    assert directives(redirect, "listen") == ["80", "[::]:80"]
    assert directives(redirect, "server_name") == ["shop.example.org erp.example.com www.erp.example.com"]
    assert directives(redirect, "return") == ["301 https://$host$request_uri"]


def test_nginx_port_based_odd_ports_and_names() -> None:
    text = render("nginx.conf.j2", CUSTOM_QUEUES)
    assert "upstream b2-frappe {\n\tserver 127.0.0.1:18000 fail_timeout=0;\n}" in text
    assert "upstream b2-socketio-server {\n\tserver 127.0.0.1:19000 fail_timeout=0;\n}" in text
    one, two, three = server_blocks(text)
    assert (directives(one, "listen"), directives(one, "server_name")) == (["8080"], ["one.test"])
    assert (directives(two, "listen"), directives(two, "server_name")) == (["8001"], ["two.test"])
    assert (directives(three, "listen"), directives(three, "server_name")) == (["9443"], ["three.test"])
    assert "proxy_set_header X-Frappe-Site-Name two.test;" in two
    assert directives(one, "root")[0] == "/srv/erp/b2/sites"
    assert directives(one, "proxy_read_timeout") == ["600"]
    assert directives(one, "client_max_body_size") == ["200m"]


def test_nginx_port_based_pinned_port_is_skipped_by_the_automatic_ones() -> None:
    values = variables(nginx_ipv6=False, sites=[site("a.test"), site("b.test", nginx_port=8001), site("c.test")])
    listens = [directives(block, "listen") for block in server_blocks(render("nginx.conf.j2", values))]
    assert listens == [["80"], ["8001"], ["8002"]]


def test_redis_configs_read_an_acl_file_as_bench_writes_them() -> None:
    for name in ("redis_cache", "redis_queue"):
        assert f"aclfile /home/frappe/frappe-bench/config/{name}.acl\n" in render(f"{name}.conf.j2", PORT_BASED)


def test_nginx_tls_on_a_non_default_port_redirects_there() -> None:
    values = {**CUSTOM_QUEUES, "sites": [site("secure.test", ssl_certificate="/c.crt", ssl_certificate_key="/c.key")],
              "nginx_listen_address": "127.0.0.1"}
    tls, redirect = server_blocks(render("nginx.conf.j2", values))
    assert directives(tls, "listen") == ["127.0.0.1:8443 ssl"]
    assert directives(redirect, "listen") == ["127.0.0.1:8080"]
    assert directives(redirect, "return") == ["301 https://$host:8443$request_uri"]


# ----- supervisor ------------------------------------------------------------------------------------


def test_supervisor_programs_and_groups_for_bench_defaults() -> None:
    conf = ini_sections(render("supervisor.conf.j2", PORT_BASED))
    bench = "/home/frappe/frappe-bench"
    web = conf["program:frappe-bench-frappe-web"]
    assert web["command"] == (
        f"{bench}/env/bin/gunicorn -b 127.0.0.1:8000 -w 5 --max-requests 5000 --max-requests-jitter 500 "
        "-t 120 --graceful-timeout 30 frappe.app:application --preload"
    )
    assert web["directory"] == f"{bench}/sites"
    assert (web["stopwaitsecs"], web["killasgroup"], web["priority"]) == ("40", "true", "4")
    assert web["stdout_logfile"] == f"{bench}/logs/web.log"
    assert conf["program:frappe-bench-node-socketio"]["command"] == f"/usr/bin/node {bench}/apps/frappe/socketio.js"
    assert conf["program:frappe-bench-frappe-schedule"]["command"] == "/usr/local/bin/bench schedule"
    short = conf["program:frappe-bench-frappe-short-worker"]
    assert short["command"] == "/usr/local/bin/bench worker --queue short,default"
    assert (short["stopwaitsecs"], short["numprocs"], short["killasgroup"]) == ("360", "1", "true")
    assert short["process_name"] == "%(program_name)s-%(process_num)d"
    long = conf["program:frappe-bench-frappe-long-worker"]
    assert long["command"] == "/usr/local/bin/bench worker --queue long,default,short"
    assert (long["stopwaitsecs"], long["numprocs"]) == ("1560", "1")
    assert conf["program:frappe-bench-redis-cache"]["command"] == (
        f"/usr/bin/redis-server {bench}/config/redis_cache.conf"
    )
    assert conf["program:frappe-bench-redis-queue"]["priority"] == "1"
    assert conf["group:frappe-bench-web"]["programs"] == "frappe-bench-frappe-web,frappe-bench-node-socketio"
    assert conf["group:frappe-bench-workers"]["programs"] == (
        "frappe-bench-frappe-schedule,frappe-bench-frappe-short-worker,frappe-bench-frappe-long-worker"
    )
    assert conf["group:frappe-bench-redis"]["programs"] == "frappe-bench-redis-cache,frappe-bench-redis-queue"
    programs = [body for name, body in conf.items() if name.startswith("program:")]
    assert len(programs) == 7
    assert all(p["user"] == "frappe" and p["startretries"] == "10" for p in programs)
    assert all(p["directory"].startswith(bench) and p["stdout_logfile"].startswith(f"{bench}/logs/") for p in programs)


def test_supervisor_custom_queues_worker_counts_and_a_single_web_worker() -> None:
    conf = ini_sections(render("supervisor.conf.j2", CUSTOM_QUEUES))
    assert conf["program:b2-frappe-web"]["command"].startswith(
        "/srv/erp/b2/env/bin/gunicorn -b 127.0.0.1:18000 -w 5 --max-requests 5000 --max-requests-jitter 500 -t 600 "
    )
    assert conf["program:b2-frappe-short-worker"]["numprocs"] == "2"
    assert conf["program:b2-frappe-long-worker"]["numprocs"] == "4"
    reports = conf["program:b2-frappe-reports-worker"]
    assert reports["command"] == "/usr/local/bin/bench worker --queue reports"
    assert (reports["numprocs"], reports["stopwaitsecs"]) == ("3", "7200")
    emails = conf["program:b2-frappe-emails-worker"]
    assert (emails["numprocs"], emails["stopwaitsecs"]) == ("2", "600")
    assert conf["group:b2-workers"]["programs"] == (
        "b2-frappe-schedule,b2-frappe-short-worker,b2-frappe-long-worker,b2-frappe-reports-worker,b2-frappe-emails-worker"
    )
    assert {body["user"] for name, body in conf.items() if name.startswith("program:")} == {"erp"}

    single = ini_sections(render("supervisor.conf.j2", MULTITENANT_TLS))["program:frappe-bench-frappe-web"]
    assert " -w 1 --max-requests 0 --max-requests-jitter 0 " in single["command"]


def test_empty_yaml_values_are_tolerated() -> None:
    values = variables(sites=[site("a.test", domains=None)], workers={"bulk": None})
    assert "server_name a.test;" in render("nginx.conf.j2", values)
    bulk = ini_sections(render("supervisor.conf.j2", values))["program:frappe-bench-frappe-bulk-worker"]
    assert (bulk["numprocs"], bulk["stopwaitsecs"]) == ("1", "1560")


def test_supervisord_socket_snippet_opens_the_socket_to_the_frappe_group() -> None:
    conf = ini_sections(render("supervisord_socket.conf.j2", CUSTOM_QUEUES))
    assert conf == {"unix_http_server": {"file": "/var/run/supervisor.sock", "chmod": "0760", "chown": "root:www-erp"}}
    assert ini_sections(render("supervisord_socket.conf.j2", PORT_BASED))["unix_http_server"]["chown"] == "root:frappe"


# ----- redis, Procfile -------------------------------------------------------------------------------


def test_redis_configs() -> None:
    cache = render("redis_cache.conf.j2", PORT_BASED).splitlines()
    assert cache == [
        "dbfilename redis_cache.rdb",
        "dir /home/frappe/shared/redis",
        "pidfile /home/frappe/frappe-bench/config/pids/redis_cache.pid",
        "bind 127.0.0.1",
        "port 13000",
        "maxmemory 204mb",
        "maxmemory-policy allkeys-lru",
        "appendonly no",
        'save ""',
        "aclfile /home/frappe/frappe-bench/config/redis_cache.acl",
    ]
    queue = render("redis_queue.conf.j2", CUSTOM_QUEUES).splitlines()
    assert queue == [
        "dbfilename redis_queue.rdb",
        "dir /srv/erp/shared/redis",
        "pidfile /srv/erp/b2/config/pids/redis_queue.pid",
        "bind 127.0.0.1",
        "port 21000",
        "aclfile /srv/erp/b2/config/redis_queue.acl",
    ]
    assert "maxmemory 300mb" in render("redis_cache.conf.j2", CUSTOM_QUEUES)
    tiny = variables(facts={"cpu_count": 1, "memory_mb": 512})
    assert "maxmemory 50mb" in render("redis_cache.conf.j2", tiny)


def test_procfile() -> None:
    lines = render("Procfile.j2", CUSTOM_QUEUES).splitlines()
    assert "web: bench serve --port 18000" in lines
    assert "redis_cache: /usr/bin/redis-server config/redis_cache.conf" in lines
    assert "schedule: bench schedule" in lines
    assert "worker_reports: bench worker --queue reports 1>> logs/worker.log 2>> logs/worker.error.log" in lines
    assert "worker_emails: bench worker --queue emails 1>> logs/worker.log 2>> logs/worker.error.log" in lines


# ----- common_site_config.json -----------------------------------------------------------------------

BENCH_KEYS = {
    "restart_supervisor_on_update", "restart_systemd_on_update", "serve_default_site", "rebase_on_pull",
    "frappe_user", "shallow_clone", "background_workers", "use_redis_auth", "live_reload", "gunicorn_workers",
    "redis_queue", "redis_cache", "redis_socketio", "webserver_port", "socketio_port", "file_watcher_port",
}


def test_common_site_config_has_bench_keys_and_ours() -> None:
    config = json.loads(render("common_site_config.json.j2", PORT_BASED))
    assert set(config) >= BENCH_KEYS | {"supervisor_restart_cmd", "workers", "dns_multitenant", "http_timeout"}
    assert config["frappe_user"] == "frappe"
    assert config["redis_cache"] == config["redis_socketio"] == "redis://127.0.0.1:13000"
    assert config["redis_queue"] == "redis://127.0.0.1:11000"
    assert (config["webserver_port"], config["socketio_port"], config["gunicorn_workers"]) == (8000, 9000, 5)
    assert config["restart_supervisor_on_update"] is True and config["restart_systemd_on_update"] is False
    assert config["supervisor_restart_cmd"] == "/usr/bin/supervisorctl restart frappe-bench-web: frappe-bench-workers:"
    assert config["workers"] == {} and config["dns_multitenant"] is False


def test_common_site_config_merges_extras_and_stays_valid_json() -> None:
    text = render("common_site_config.json.j2", MULTITENANT_TLS)
    config = json.loads(text)
    assert config["note"] == 'quote " backslash \\ done'
    assert config["allow_tests"] is True
    assert config["http_timeout"] == 300, "user-given keys win"
    assert config["dns_multitenant"] is True
    assert text.startswith('{\n "allow_tests": true,'), "to_nice_json: indent 1, sorted keys"

    custom = json.loads(render("common_site_config.json.j2", CUSTOM_QUEUES))
    assert custom["workers"] == {"reports": {"timeout": 7200, "background_workers": 3}, "emails": {"timeout": 600}}
    assert custom["redis_queue"] == "redis://127.0.0.1:21000"
    assert custom["supervisor_restart_cmd"] == "/usr/bin/supervisorctl restart b2-web: b2-workers:"
    assert custom["frappe_user"] == "erp"


# ----- MariaDB, sudoers, logrotate -------------------------------------------------------------------


def test_mariadb_cnf() -> None:
    text = render("mariadb.cnf.j2", PORT_BASED)
    conf = ini_sections(text.replace("skip-character-set-client-handshake", "skip-character-set-client-handshake="))
    mysqld = conf["mysqld"]
    assert mysqld["character-set-server"] == "utf8mb4"
    assert mysqld["collation-server"] == "utf8mb4_unicode_ci"
    assert "skip-character-set-client-handshake" in mysqld
    assert mysqld["max_allowed_packet"] == "256M"
    assert mysqld["innodb_buffer_pool_size"] == "1638M", "0.4 of 4096 MB"
    assert conf["mysql"] == {"default-character-set": "utf8mb4"}
    assert conf["mysqldump"] == {"max_allowed_packet": "256M"}
    assert "file_format" not in text and "large_prefix" not in text

    custom = ini_sections(render("mariadb.cnf.j2", CUSTOM_QUEUES).replace("handshake\n", "handshake=\n"))["mysqld"]
    assert custom["innodb_buffer_pool_size"] == "3G"
    assert (custom["slow_query_log"], custom["long_query_time"]) == ("1", "2")


def test_sudoers() -> None:
    lines = render("sudoers.j2", CUSTOM_QUEUES).splitlines()
    assert "Cmnd_Alias FRAPPE_SUPERVISOR = /usr/bin/supervisorctl" in lines
    assert ("Cmnd_Alias FRAPPE_NGINX = /usr/sbin/nginx -t, /usr/sbin/service nginx reload, "
            "/usr/bin/systemctl reload nginx") in lines
    assert "erp ALL = (root) NOPASSWD: FRAPPE_SUPERVISOR, FRAPPE_NGINX" in lines
    assert "Defaults:erp !requiretty" in lines


def test_logrotate() -> None:
    text = render("logrotate.j2", CUSTOM_QUEUES)
    assert text.startswith("/srv/erp/b2/logs/*.log {\n")
    assert "\tsu erp www-erp\n" in text and "\tcopytruncate\n" in text and "\trotate 14\n" in text


# ----- the variable schema ---------------------------------------------------------------------------


def test_defaults_cover_every_variable_the_templates_read() -> None:
    env = make_env()
    read: set[str] = set()
    assigned: set[str] = set()
    for path in TEMPLATES_DIR.glob("*.j2"):
        tree = env.parse(path.read_text())
        read |= jinja2.meta.find_undeclared_variables(tree)
        assigned |= {n.name for n in tree.find_all(jinja2.nodes.Name) if n.ctx == "store"}
        assigned |= {n.name for n in tree.find_all(jinja2.nodes.Macro)}
    # facts and hostvars: the engine's; redis_password: a secret, no default
    assert read - assigned - set(defaults()) <= {"facts", "hostvars", "redis_password"}


def test_example_inventory_documents_every_default_and_loads() -> None:
    text = INVENTORY_FILE.read_text()
    derived_names = re.search(r"Worked out from the groups, never set: ([^.]*)\.", text.replace("\n        #", ""))
    worked_out = {name.strip() for name in derived_names.group(1).split(",")} if derived_names else set()
    missing = [key for key in defaults() if key not in worked_out and not re.search(rf"^\s*#?\s*{key}:", text, re.M)]
    assert not missing, f"undocumented in inventory.example.yml: {missing}"

    inventory = Inventory.load(INVENTORY_FILE)
    assert [h.name for h in inventory.select("prod")] == ["app1.example.com", "app2.example.com"]
    host = inventory.host("app2.example.com").vars
    assert isinstance(host["db_root_password"], Secret)
    assert isinstance(host["sites"][0]["admin_password"], Secret)
    assert host["apps"][0] == {"name": "frappe", "repo": "https://github.com/frappe/frappe", "ref": "version-15"}
    assert host["gunicorn_workers"] == 9
    known = set(defaults()) | {"db_root_password", "ssh_host"}
    assert set(host) - known <= {"inventory_hostname", "inventory_hostname_short", "group_names", "groups",
                                 "inventory_dir", "inventory_file", "playbook_dir"}

    values = {**variables(), **{k: v for k, v in host.items() if k in known}}
    for name in TEMPLATES:
        rendered = render(name, values)
        assert "change-me" not in rendered
    nginx = render("nginx.conf.j2", values)
    assert "server_name shop.example.org;" in nginx and "map $host $frappe_site_frappe_bench {" in nginx


def test_defaults_match_bench() -> None:
    values = defaults()
    assert values["apps"] == [{"name": "frappe", "repo": "https://github.com/frappe/frappe", "ref": "version-15"}]
    assert (values["webserver_port"], values["socketio_port"]) == (8000, 9000)
    assert (values["redis_cache_port"], values["redis_queue_port"]) == (13000, 11000)
    assert (values["http_timeout"], values["background_workers"], values["client_max_body_size"]) == (120, 1, "50m")
    assert values["bench_name"] == "frappe-bench" and values["frappe_user"] == "frappe"
    assert values["gunicorn_workers"] is None and values["dns_multitenant"] is False


def test_derived_settings_have_one_definition() -> None:
    """bench_path, shared_path, bench_group and the restart command: defined once, in the defaults."""
    derived = {"bench_path", "shared_path", "bench_group", "supervisor_restart_cmd"}
    assert all("{{" in defaults()[name] for name in derived)
    plays = yaml.safe_load((ROOT / "playbooks" / "deploy.yml").read_text())
    assert all(not derived & set(play.get("vars") or {}) for play in plays)
    settings = (TEMPLATES_DIR / "_settings.j2").read_text()
    assert not re.search(r"set (bench_path|shared_path|group|restart_cmd) =", settings)
    [restart] = [h for h in plays[1]["handlers"] if h["name"] == "restart bench"]
    assert restart["shell"] == "{{ supervisor_restart_cmd }}"
    values = variables(bench_name="b2", frappe_home="/srv/erp", frappe_group=None, frappe_user="erp")
    config = json.loads(render("common_site_config.json.j2", values))
    assert config["supervisor_restart_cmd"] == "/usr/bin/supervisorctl restart b2-web: b2-workers:"
    assert "su erp erp" in render("logrotate.j2", values)
