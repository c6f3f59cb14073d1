"""The rendered deploy configs accepted, and run, by the real nginx, supervisord, Redis, MariaDB, sudo and logrotate."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from provision.frappe_ports import nginx_site_ports
from provision.server_roles import FILTERS as ROLE_FILTERS
from provision.templating import FILTERS as ENGINE_FILTERS
from tests.unit.test_templates import render_derived

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
DEFAULTS_FILE = ROOT / "playbooks" / "vars" / "deploy_defaults.yml"
# Debian's supervisor lives in the system Python, not necessarily the one running the tests.
SYSTEM_PYTHON = "/usr/bin/python3"
SUPERVISOR_PARSE = """
import json, sys
from supervisor.options import ServerOptions
options = ServerOptions()
options.realize(args=["-c", sys.argv[1]])
print(json.dumps({
    "server": {key: options.server_configs[0].get(key) for key in ("chmod", "chown")},
    "groups": {group.name: {p.name: {"command": p.command, "uid": p.uid, "directory": p.directory,
                                     "stopwaitsecs": p.stopwaitsecs, "killasgroup": p.killasgroup}
                            for p in group.process_configs}
               for group in options.process_group_configs},
}))
"""


def tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert path, f"{name} is not installed (apt package needed by this test)"
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def render(name: str, values: dict[str, Any]) -> str:
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
    return render_derived(env, name, values)


class Bench:
    """A release tree as the deploy lays it out, under a temp dir, and the variables that point at it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        release = self.home / "benches" / "r1"
        for sub in ("logs", "sites", "config/pids", "apps"):
            (release / sub).mkdir(parents=True)
        (self.home / "shared" / "redis").mkdir(parents=True)
        for acl in ("redis_cache.acl", "redis_queue.acl"):  # as the deploy links them (bench.yml)
            (self.home / "shared" / "redis" / acl).touch()
            (release / "config" / acl).symlink_to(self.home / "shared" / "redis" / acl)
        (self.home / "frappe-bench").symlink_to("benches/r1")
        self.path = self.home / "frappe-bench"
        self.values: dict[str, Any] = yaml.safe_load(DEFAULTS_FILE.read_text())
        self.values.update(
            facts={"cpu_count": 2, "memory_mb": 2048, "os_id": "debian"},
            frappe_user="nobody",
            frappe_group="nogroup",
            frappe_home=str(self.home),
            webserver_port=free_port(),
            socketio_port=free_port(),
            redis_cache_port=free_port(),
            redis_queue_port=free_port(),
            nginx_listen_address="127.0.0.1",
            nginx_ipv6=False,
            sites=[],
            # the engine's magic variables: one host outside any role group
            inventory_hostname="host1",
            groups={"all": ["host1"], "ungrouped": ["host1"]},
            hostvars={"host1": {}},
        )

    def write(self, name: str, dest: Path, **overrides: Any) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(name, {**self.values, **overrides}))
        dest.chmod(0o644)
        return dest


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path)


# ----- nginx -----------------------------------------------------------------------------------------


class _EchoSite(http.server.BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers with the site nginx said the request is for."""

    def do_GET(self) -> None:
        body = (self.headers.get("X-Frappe-Site-Name") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_backend(bench: Bench) -> Iterator[None]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", bench.values["webserver_port"]), _EchoSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def self_signed_cert(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    result = run(tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert))
    assert result.returncode == 0, result.stderr
    return cert, key


def nginx_main_conf(bench: Bench, site_conf: Path) -> Path:
    """A throwaway main config: own prefix, pid, logs and temp dirs; /etc/nginx is only read for mime.types."""
    prefix = bench.root / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    # pytest's temp dirs are root-only, so the workers run as the master's user (root in CI)
    user = "user root root;" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                              "scgi"))
    main = prefix / "nginx.conf"
    main.write_text(textwrap.dedent(f"""\
        {user}
        worker_processes 1;
        pid {prefix}/nginx.pid;
        error_log {prefix}/logs/error.log warn;
        events {{ worker_connections 64; }}
        http {{
            include /etc/nginx/mime.types;
            default_type application/octet-stream;
            access_log off;
        {temp}
            include {site_conf};
        }}
        """))
    return main


@pytest.fixture
def nginx_runner(bench: Bench) -> Iterator[Callable[[Path, list[int]], None]]:
    processes: list[subprocess.Popen[str]] = []

    def start(main: Path, ports: list[int]) -> None:
        test = run(tool("nginx"), "-t", "-p", str(main.parent), "-c", str(main))
        assert test.returncode == 0, test.stderr
        assert "syntax is ok" in test.stderr and "test is successful" in test.stderr
        process = subprocess.Popen([tool("nginx"), "-p", str(main.parent), "-c", str(main), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        def listening() -> bool:
            return all(port_open(port) for port in ports) or process.poll() is not None

        wait_for(listening, 10, f"nginx on {ports}")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""

    yield start
    for process in processes:
        stop(process, signal.SIGQUIT)


def get(port: int, host: str, path: str = "/", *, tls: bool = False) -> http.client.HTTPResponse:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def test_nginx_port_based_config_passes_nginx_t_and_serves_the_502_page(bench: Bench, nginx_runner: Any) -> None:
    first, second = free_port(), free_port()
    sites = [{"name": "one.test", "apps": ["frappe"]}, {"name": "two.test", "apps": ["frappe"], "port": second}]
    bench.write("502.html.j2", bench.path / "config" / "502.html")
    (bench.path / "sites" / "one.test" / "public" / "files").mkdir(parents=True)
    (bench.path / "sites" / "one.test" / "public" / "files" / "hello.txt").write_text("static hello")
    conf = bench.write("nginx.conf.j2", bench.root / "conf.d" / "bench.conf", sites=sites, nginx_http_port=first)
    nginx_runner(nginx_main_conf(bench, conf), [first, second])

    down = get(first, "one.test", "/app")  # nothing listens on the webserver port: gunicorn is "down"
    assert down.status == 502
    assert b"Back in a moment" in down.body  # type: ignore[attr-defined]
    static = get(first, "anything", "/files/hello.txt")
    assert (static.status, static.body) == (200, b"static hello")  # type: ignore[attr-defined]
    assert static.getheader("X-Frame-Options") == "SAMEORIGIN"
    assert get(second, "two.test", "/app").status == 502
    assert get(first, "one.test", "/desk/").getheader("Location", "").endswith("/desk")


def test_nginx_multitenant_tls_config_routes_hosts_to_sites(bench: Bench, nginx_runner: Any,
                                                            echo_backend: None) -> None:
    http_port, https_port = free_port(), free_port()
    cert, key = self_signed_cert(bench.root, "erp.test")
    sites = [
        {"name": "erp.test", "apps": ["frappe"], "ssl_certificate": str(cert), "ssl_certificate_key": str(key),
         "domains": ["www.erp.test", {"domain": "shop.test", "ssl_certificate": str(cert),
                                      "ssl_certificate_key": str(key)}]},
        {"name": "intranet.test", "apps": ["frappe"], "domains": ["wiki.test"]},
    ]
    bench.write("502.html.j2", bench.path / "config" / "502.html")
    conf = bench.write("nginx.conf.j2", bench.root / "conf.d" / "bench.conf", sites=sites, dns_multitenant=True,
                       nginx_http_port=http_port, nginx_https_port=https_port)
    nginx_runner(nginx_main_conf(bench, conf), [http_port, https_port])

    def site_for(port: int, host: str, tls: bool = False) -> bytes:
        response = get(port, host, "/api/method/ping", tls=tls)
        assert response.status == 200, (host, response.status)
        return response.body  # type: ignore[attr-defined,no-any-return]

    assert site_for(http_port, "intranet.test") == b"intranet.test"
    assert site_for(http_port, "wiki.test") == b"intranet.test", "custom domain mapped to its site"
    assert site_for(https_port, "erp.test", tls=True) == b"erp.test"
    assert site_for(https_port, "www.erp.test", tls=True) == b"erp.test"
    assert site_for(https_port, "shop.test", tls=True) == b"erp.test"
    redirect = get(http_port, "www.erp.test", "/app?x=1")
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://www.erp.test:{https_port}/app?x=1"
    secure = get(https_port, "erp.test", "/app", tls=True)
    assert secure.getheader("Strict-Transport-Security") == "max-age=63072000; includeSubDomains"


# ----- supervisor ------------------------------------------------------------------------------------


def test_supervisor_conf_and_socket_snippet_parse_with_supervisord(bench: Bench) -> None:
    assert Path(SYSTEM_PYTHON).exists()
    include = bench.root / "supervisor.d"
    bench.write("supervisord_socket.conf.j2", include / "00-socket.conf")
    bench.write("supervisor.conf.j2", include / "frappe-bench.conf",
                workers={"reports": {"timeout": 3600, "background_workers": 2}}, long_workers=2)
    main = bench.root / "supervisord.conf"
    main.write_text(textwrap.dedent(f"""\
        [unix_http_server]
        file={bench.root}/supervisor.sock
        chmod=0700

        [supervisord]
        logfile={bench.root}/supervisord.log
        pidfile={bench.root}/supervisord.pid

        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

        [include]
        files = {include}/*.conf
        """))
    result = run(SYSTEM_PYTHON, "-c", SUPERVISOR_PARSE, str(main))
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)

    assert parsed["server"]["chmod"] == 0o760, "the snippet overrides the main file's chmod"
    nobody = int(run("id", "-u", "nobody").stdout)
    nogroup = int(run("getent", "group", "nogroup").stdout.split(":")[2])
    assert parsed["server"]["chown"] == [0, nogroup]

    groups = parsed["groups"]
    assert set(groups) == {"frappe-bench-web", "frappe-bench-workers", "frappe-bench-redis"}
    assert set(groups["frappe-bench-web"]) == {"frappe-bench-frappe-web", "frappe-bench-node-socketio"}
    assert set(groups["frappe-bench-workers"]) == {
        "frappe-bench-frappe-schedule",
        "frappe-bench-frappe-short-worker-0",
        "frappe-bench-frappe-long-worker-0", "frappe-bench-frappe-long-worker-1",
        "frappe-bench-frappe-reports-worker-0", "frappe-bench-frappe-reports-worker-1",
    }
    assert set(groups["frappe-bench-redis"]) == {"frappe-bench-redis-cache", "frappe-bench-redis-queue"}
    processes = {name: p for group in groups.values() for name, p in group.items()}
    assert {p["uid"] for p in processes.values()} == {nobody}
    web = processes["frappe-bench-frappe-web"]
    assert web["directory"] == f"{bench.path}/sites" and web["stopwaitsecs"] == 40 and web["killasgroup"]
    assert web["command"].startswith(f"{bench.path}/env/bin/gunicorn -b 127.0.0.1:")
    assert processes["frappe-bench-frappe-reports-worker-1"]["stopwaitsecs"] == 3600
    assert processes["frappe-bench-frappe-long-worker-0"]["stopwaitsecs"] == 1560


# ----- Redis -----------------------------------------------------------------------------------------


def redis_command(port: int, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload.encode())
        time.sleep(0.05)
        return sock.recv(65536)


@pytest.mark.parametrize(("template", "port_key"), [("redis_cache.conf.j2", "redis_cache_port"),
                                                     ("redis_queue.conf.j2", "redis_queue_port")])
def test_redis_config_starts_and_answers(bench: Bench, template: str, port_key: str) -> None:
    conf = bench.write(template, bench.path / "config" / template.removesuffix(".j2"), cache_maxmemory=64)
    port = bench.values[port_key]
    process = subprocess.Popen([tool("redis-server"), str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, 10, "redis-server")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        wait_for(lambda: redis_command(port, "PING") == b"+PONG\r\n", 5, "PONG")
        assert str(bench.home / "shared" / "redis").encode() in redis_command(port, "CONFIG", "GET", "dir")
        pidfile = bench.path / "config" / "pids" / template.replace(".conf.j2", ".pid")
        wait_for(pidfile.exists, 5, "the pidfile")
        saves = redis_command(port, "CONFIG", "GET", "save")
        if template == "redis_cache.conf.j2":
            assert str(64 * 1024 * 1024).encode() in redis_command(port, "CONFIG", "GET", "maxmemory")
            assert b"allkeys-lru" in redis_command(port, "CONFIG", "GET", "maxmemory-policy")
            assert saves.endswith(b"$0\r\n\r\n"), "the cache never persists"
        else:
            assert b"$0\r\n\r\n" not in saves, "the queue keeps Redis's default snapshots"
        redis_command(port, "SHUTDOWN", "NOSAVE")
        process.wait(timeout=10)
    finally:
        stop(process)
        if process.stdout:
            process.stdout.close()


# ----- sudoers, JSON, logrotate ----------------------------------------------------------------------


def test_sudoers_passes_visudo(bench: Bench) -> None:
    sudoers = bench.write("sudoers.j2", bench.root / "frappe.sudoers")
    sudoers.chmod(0o440)
    result = run(tool("visudo"), "-cf", str(sudoers))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parsed OK" in result.stdout


def test_common_site_config_passes_json_tool(bench: Bench) -> None:
    config = bench.write("common_site_config.json.j2", bench.path / "sites" / "common_site_config.json",
                         common_site_config={"note": "a \"quoted\" \\ value", "max_file_size": 10})
    result = run(sys.executable, "-m", "json.tool", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["note"] == 'a "quoted" \\ value'


def test_logrotate_accepts_the_config(bench: Bench) -> None:
    (bench.path / "logs" / "web.log").write_text("a line\n")
    # `su root root`: logrotate then reads pytest's root-only temp dir as the frappe user would its own logs
    conf = bench.write("logrotate.j2", bench.root / "logrotate" / "frappe-bench", frappe_user="root",
                       frappe_group="root")
    result = run(tool("logrotate"), "-d", "-s", str(bench.root / "logrotate.state"), str(conf))
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert f"{bench.path}/logs/web.log" in result.stderr


# ----- MariaDB ---------------------------------------------------------------------------------------


def test_mariadb_cnf_parses_and_mariadb_starts_with_it(bench: Bench) -> None:
    mariadbd, install_db, client = tool("mariadbd"), tool("mariadb-install-db"), tool("mariadb")
    rendered = bench.write("mariadb.cnf.j2", bench.root / "mysql" / "60-frappe.cnf",
                           mariadb_innodb_buffer_pool_size="64M", mariadb_innodb_log_file_size="48M",
                           mariadb_max_connections=50, mariadb_extra={"slow_query_log": 1})
    data, run_dir = bench.root / "mysql" / "data", bench.root / "mysql"
    data.mkdir()
    port = free_port()
    main = run_dir / "my.cnf"
    # the deploy's file is included last, as Debian reads mariadb.conf.d/60-frappe.cnf after 50-server.cnf
    main.write_text(textwrap.dedent(f"""\
        [mysqld]
        datadir={data}
        socket={run_dir}/mysqld.sock
        pid-file={run_dir}/mysqld.pid
        log-error={run_dir}/error.log
        port={port}
        user=root
        collation-server=utf8mb4_general_ci
        !include {rendered}
        """))

    help_text = run(mariadbd, f"--defaults-file={main}", "--help", "--verbose")
    assert help_text.returncode == 0, help_text.stderr
    # innodb_file_format / innodb_large_prefix only warn on 10.11 ("was removed"); keep them out anyway
    assert "was removed" not in help_text.stderr and "[ERROR]" not in help_text.stderr, help_text.stderr
    settings = dict(line.split(None, 1) for line in help_text.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert settings["character-set-server"].strip() == "utf8mb4"
    assert settings["collation-server"].strip() == "utf8mb4_unicode_ci"
    assert settings["character-set-client-handshake"].strip() == "FALSE"
    assert settings["max-allowed-packet"].strip() == str(256 * 1024 * 1024)

    installed = run(install_db, f"--defaults-file={main}", "--auth-root-authentication-method=socket",
                    "--skip-test-db", timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    server = subprocess.Popen([mariadbd, f"--defaults-file={main}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sock = run_dir / "mysqld.sock"
    try:
        wait_for(lambda: sock.exists() or server.poll() is not None, 60, "mariadbd's socket")
        assert server.poll() is None, (run_dir / "error.log").read_text()
        query = run(client, "--no-defaults", f"--socket={sock}", "-uroot", "-N", "-B", "-e",
                    "SELECT @@character_set_server, @@collation_server, @@max_allowed_packet, "
                    "@@innodb_buffer_pool_size, @@bind_address, @@slow_query_log, @@max_connections")
        assert query.returncode == 0, query.stderr
        assert query.stdout.split() == ["utf8mb4", "utf8mb4_unicode_ci", str(256 * 1024 * 1024),
                                        str(64 * 1024 * 1024), "127.0.0.1", "1", "50"]
    finally:
        stop(server)
