"""``provision deploy`` of several servers, end to end: lb, app1, app2, db and store (redis + files).

The one deploy is the session fixture ``multiserver`` (tests/e2e/multiserver.py), shared with the
other multi-server modules; these tests leave the system as they found it.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .multiserver import APP_HOSTS, SITES, MultiServer

pytestmark = pytest.mark.e2e


def _ping(system: MultiServer, site: str) -> tuple[int, str]:
    return system.lb("/api/method/ping", site)


def test_every_site_answers_through_the_load_balancer(multiserver: MultiServer) -> None:
    for site in SITES:
        status, body = _ping(multiserver, site)
        assert (status, json.loads(body)) == (200, {"message": "pong"}), (site, body)
    upstreams = multiserver.ssh("lb", "cat /etc/nginx/conf.d/frappe-upstreams.conf").stdout
    lines = [line.strip() for line in upstreams.splitlines() if line.strip().startswith("server ")]
    assert lines == [f"server {multiserver.address(name)}:80 max_fails=1 fail_timeout=10s;  # app:{name}"
                     for name in APP_HOSTS]


def test_app_hosts_see_the_client_address_not_the_lbs(multiserver: MultiServer) -> None:
    marker = f"/api/method/ping?client-address-{uuid.uuid4().hex[:8]}"
    for _ in APP_HOSTS:  # the lb balances round robin: one request per app host reaches each
        assert multiserver.lb(marker, SITES[0])[0] == 200
    grep = f"grep -F {marker} /var/log/nginx/access.log || true"
    logged = [line.split()[0] for name in APP_HOSTS for line in multiserver.ssh(name, grep).stdout.splitlines()]
    assert logged and multiserver.address("lb") not in logged, logged


def test_requests_keep_answering_with_app1_web_processes_stopped(multiserver: MultiServer) -> None:
    stop = multiserver.as_frappe("app1", "supervisorctl stop frappe-bench-web:")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    try:
        answers = []
        deadline = time.monotonic() + 60
        for number in range(40):
            if time.monotonic() > deadline:
                break
            site = SITES[number % len(SITES)]
            answers.append((site, *_ping(multiserver, site)))
        assert len(answers) == 40
        failed = [(site, status, body[:200]) for site, status, body in answers if status != 200]
        assert not failed, failed
    finally:
        start = multiserver.as_frappe("app1", "supervisorctl start frappe-bench-web:")
        assert start.returncode == 0, start.stdout + start.stderr
    deadline = time.monotonic() + 60
    while multiserver.direct("app1", "/api/method/ping", SITES[0])[0] != 200:
        assert time.monotonic() < deadline, "app1 did not serve again after its web processes started"
        time.sleep(1)


def test_a_job_enqueued_through_the_lb_is_consumed_from_the_shared_queue(multiserver: MultiServer) -> None:
    account = f"multi-{uuid.uuid4().hex[:8]}"
    site = SITES[1]
    status, body = multiserver.lb(f"/api/method/ledger.api.enqueue_entry?account={account}&amount=3", site)
    assert status == 200, body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, body = multiserver.lb("/api/method/ledger.api.entries", site)
        rows = json.loads(body)["message"]
        if any(row["account"] == account and row["source"] == "job" for row in rows):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the background job never wrote its row: {body}")
    # the queue is the redis host's: no app host runs a redis server of its own
    for name in APP_HOSTS:
        assert multiserver.ssh(name, "pgrep -x redis-server", check=False).returncode == 1, name


def test_exactly_one_app_host_runs_the_scheduler(multiserver: MultiServer) -> None:
    running = {}
    for name in APP_HOSTS:
        status = multiserver.as_frappe(name, "supervisorctl status")
        programs = dict(line.split()[:2] for line in status.stdout.splitlines() if line.strip())
        running[name] = [p.split(":")[-1] for p, state in programs.items() if "schedule" in p and state == "RUNNING"]
        assert any("worker" in p and state == "RUNNING" for p, state in programs.items()), (name, status.stdout)
    assert running == {"app1": ["frappe-bench-frappe-schedule"], "app2": []}


def test_a_file_uploaded_through_app1_is_served_by_app2(multiserver: MultiServer) -> None:
    name = f"multi-{uuid.uuid4().hex[:8]}.txt"
    content = f"shared across app hosts {uuid.uuid4()}"
    site = SITES[0]
    # written by app1's bench into the site's public files (as an upload is), served by app2's nginx
    target = f"~/frappe-bench/sites/{site}/public/files/{name}"
    write = multiserver.as_frappe("app1", f"printf %s {json.dumps(content)} > {target}")
    assert write.returncode == 0, write.stderr
    try:
        status, body = multiserver.direct("app2", f"/files/{name}", site)
        assert (status, body) == (200, content)
        status, body = multiserver.lb(f"/files/{name}", site)
        assert (status, body) == (200, content)
    finally:
        multiserver.as_frappe("app1", f"rm -f ~/frappe-bench/sites/{site}/public/files/{name}")


def test_mariadb_on_the_db_host_refuses_the_lb_host(multiserver: MultiServer) -> None:
    db = multiserver.address("db")
    probe = f"timeout 8 bash -c 'exec 3<>/dev/tcp/{db}/3306' && echo open || echo closed"
    assert multiserver.ssh("lb", probe).stdout.strip() == "closed"
    assert multiserver.ssh("app1", probe).stdout.strip() == "open"
    # and no site account is granted for any host but the app hosts
    hosts = multiserver.ssh("db", "mariadb -N -e \"SELECT DISTINCT Host FROM mysql.user WHERE User LIKE '\\\\_%'\"")
    assert set(hosts.stdout.split()) == {multiserver.address(name) for name in APP_HOSTS}


def test_every_app_host_has_the_same_site_config_and_no_secret_was_printed(multiserver: MultiServer) -> None:
    assert multiserver.first_deploy is not None
    printed = multiserver.first_deploy.stdout + multiserver.first_deploy.stderr
    for site in SITES:
        path = f"/home/frappe/shared/sites/{site}/site_config.json"
        configs = {name: multiserver.ssh(name, f"cat {path}").stdout for name in APP_HOSTS}
        assert json.loads(configs["app1"]) == json.loads(configs["app2"]), site
        config = json.loads(configs["app1"])
        assert config["db_host"] == multiserver.address("db")
        assert config["db_password"] not in printed
        assert multiserver.ssh("app2", f"stat -c %a {path}").stdout.strip() == "600"


def test_a_second_deploy_changes_nothing(multiserver: MultiServer) -> None:
    result = multiserver.deploy()
    assert result.returncode == 0, multiserver.failures(result)
    changed = [(e["host"], e["task"], e["msg"]) for e in multiserver.events(result)
               if e["event"] == "task" and e["status"] == "changed"]
    assert not changed, changed

