"""``bench_mode: development`` end to end: a deployed bench run by ``bench start`` (honcho).

One lab host, one deploy shared by the module. The frappe user starts ``bench start`` in the
background, in a session of its own and bounded by ``timeout``; the tests show honcho running each
process of the rendered Procfile, a request served by ``bench serve`` on port 8000, jobs (one
enqueued over HTTP, one by the scheduler) consumed by the workers and written to the site's
database, and a converged re-deploy that changes nothing and does not fight ``bench start`` for its
ports. At the end the whole process tree is stopped, and the ports are checked free.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provision.lab.gitserve import serve_git

from .conftest import LabHandle, claimed_lab
from .test_deploy import ADMIN_PASSWORD, DB_ROOT_PASSWORD, deploy, events, failures, http, recap, standin

pytestmark = pytest.mark.e2e

SITE = "dev.local"
BENCH = "/home/frappe/frappe-bench"
LOG = "/home/frappe/bench-start.log"
PROCESSES = {"redis_cache", "redis_queue", "web", "socketio", "watch", "schedule", "worker", "worker_reports"}
PORTS = (8000, 9000, 13000, 11000)  # web, socketio, redis cache, redis queue
START_BOUND = 900  # seconds `timeout` gives bench start, should the teardown never run


@pytest.fixture(scope="module")
def dev_lab() -> Iterator[LabHandle]:
    with claimed_lab("devmode", 1) as handle:
        yield handle


@pytest.fixture(scope="module")
def project(dev_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repos = tmp_path_factory.mktemp("repos")
    standin.make_app_repos(repos)
    git = serve_git(dev_lab.lab.settings, repos)  # stopped by the lab's down
    host = dev_lab.hosts[0]
    directory = tmp_path_factory.mktemp("project")
    (directory / "inventory.yml").write_text(f"""\
all:
  children:
    prod:
      hosts:
        {host.name}:
          ssh_host: {host.address}
          sites:
            - {{name: {SITE}, admin_password: !secret {ADMIN_PASSWORD}}}
      vars:
        ssh_user: root
        ssh_private_key_file: {dev_lab.key}
        ssh_known_hosts_file: {dev_lab.known_hosts}
        db_root_password: !secret {DB_ROOT_PASSWORD}
        bench_mode: development
        dns_multitenant: true
        workers: {{reports: {{timeout: 600}}}}
        apps:
          - {{name: frappe, repo: '{git}/frappe', ref: version-15}}
          - {{name: ledger, repo: '{git}/ledger', ref: v1}}
""")
    return directory


def as_frappe(lab: LabHandle, command: str, timeout: float = 120) -> str:
    result = lab.ssh("lab1", f"su - frappe -c {shlex.quote(command)}", timeout=timeout)
    return result.stdout


def wait_until(check: Callable[[], bool], seconds: float, what: str, details: Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"{what} within {seconds}s:\n{details()}")


@pytest.fixture(scope="module")
def deployed(dev_lab: LabHandle, project: Path) -> Path:
    result = deploy(project)
    assert result.returncode == 0, failures(result)
    assert DB_ROOT_PASSWORD not in result.stdout + result.stderr
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    return project


def started_pids(lab: LabHandle) -> dict[str, int]:
    """Procfile process → pid, from honcho's `NAME.1 started (pid=N)` lines."""
    log = lab.ssh("lab1", f"cat {LOG} 2>/dev/null || true").stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"(\w+)\.1 +started \(pid=(\d+)\)", log)}


def listening(lab: LabHandle) -> set[int]:
    out = lab.ssh("lab1", "ss -Hltn").stdout
    return {int(m[1]) for m in re.finditer(r":(\d+)\s", out)}


@pytest.fixture(scope="module")
def bench_start(dev_lab: LabHandle, deployed: Path) -> Iterator[int]:
    """`bench start` as the frappe user, in a session of its own (pid = its process group); stopped at the end."""
    # The scheduler's first tick then enqueues ledger's "all" event for the workers.
    as_frappe(dev_lab, f"cd {BENCH} && bench --site {SITE} scheduler enable")
    pid = int(as_frappe(dev_lab, (
        # not `cd && setsid ... &`: that backgrounds a subshell holding ssh's pipes open until bench start ends
        f"cd {BENCH} || exit 1; setsid timeout {START_BOUND} bench start > {LOG} 2>&1 < /dev/null & echo $!"
    )).strip())
    try:
        yield pid
    finally:
        stop_bench_start(dev_lab, pid)


def stop_bench_start(lab: LabHandle, pid: int) -> None:
    """TERM the session's group (timeout hands it to honcho, which stops its processes), then KILL leftovers."""
    children = started_pids(lab)
    lab.ssh("lab1", f"kill -TERM -- -{pid} 2>/dev/null || true")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and lab.ssh("lab1", f"kill -0 {pid}", check=False).returncode == 0:
        time.sleep(0.5)
    # honcho gives each process a group of its own: end by pid whatever outlived it
    for child in [pid, *children.values()]:
        lab.ssh("lab1", f"kill -KILL -- -{child} 2>/dev/null; kill -KILL {child} 2>/dev/null; true")
    wait_until(lambda: not listening(lab) & set(PORTS), 30, "the bench's ports were not freed",
               lambda: lab.ssh("lab1", "ss -Hltnp").stdout)


@pytest.mark.timeout(1800)  # its fixtures bring the lab up and run the one deploy: 4-10 minutes, by load
def test_development_deploy_leaves_the_ports_to_bench_start(dev_lab: LabHandle, deployed: Path) -> None:
    config = json.loads(dev_lab.ssh("lab1", f"cat {BENCH}/sites/common_site_config.json").stdout)
    assert (config["developer_mode"], config["restart_supervisor_on_update"]) == (1, False)
    assert not dev_lab.ssh("lab1", "ls /etc/supervisor/conf.d/frappe-bench.conf /etc/nginx/conf.d/frappe-bench.conf",
                           check=False).stdout.strip()
    status = dev_lab.ssh("lab1", "supervisorctl status", check=False).stdout
    assert "frappe-bench" not in status, status
    assert not listening(dev_lab) & set(PORTS), "nothing holds the bench's ports before bench start"
    procfile = dev_lab.ssh("lab1", f"cat {BENCH}/Procfile").stdout.splitlines()
    assert {line.split(":", 1)[0] for line in procfile} == PROCESSES
    assert "web: bench serve --port 8000" in procfile


def test_honcho_runs_every_procfile_process(dev_lab: LabHandle, bench_start: int) -> None:
    wait_until(lambda: set(started_pids(dev_lab)) == PROCESSES, 120, "honcho did not start every process",
               lambda: dev_lab.ssh("lab1", f"tail -50 {LOG}").stdout)
    wait_until(lambda: set(PORTS) <= listening(dev_lab), 120, "web, socketio and both redis did not listen",
               lambda: dev_lab.ssh("lab1", f"ss -Hltn; tail -50 {LOG}").stdout)
    for name, pid in started_pids(dev_lab).items():
        alive = dev_lab.ssh("lab1", f"kill -0 {pid}", check=False).returncode == 0
        assert alive, (name, dev_lab.ssh("lab1", f"tail -50 {LOG}").stdout)
    # honcho is the process bench start became (bench execs it), under timeout in our session
    tree = dev_lab.ssh("lab1", f"ps -o pid=,args= --ppid {bench_start}").stdout
    assert "honcho start" in tree, tree
    log = dev_lab.ssh("lab1", f"cat {LOG}").stdout
    assert "Watching for changes" in log and "Realtime service listening on: 9000" in log, log[-3000:]
    socketio = dev_lab.ssh("lab1", "curl -s http://127.0.0.1:9000/socket.io/").stdout
    assert json.loads(socketio)["status"] == "ok"


def test_bench_serve_answers_on_port_8000(dev_lab: LabHandle, bench_start: int) -> None:
    address = f"{dev_lab.hosts[0].address}:8000"

    def pong() -> bool:
        try:
            status, body = http(address, "/api/method/ping", SITE, timeout=5)
            return status == 200 and json.loads(body) == {"message": "pong"}
        except OSError:
            return False

    wait_until(pong, 120, "bench serve did not answer on port 8000",
               lambda: dev_lab.ssh("lab1", f"tail -50 {LOG}").stdout)
    status, page = http(address, "/", SITE)
    assert status == 200 and "ledger" in page, page[:500]


def test_workers_consume_jobs_from_the_web_and_the_scheduler(dev_lab: LabHandle, bench_start: int) -> None:
    address = f"{dev_lab.hosts[0].address}:8000"
    status, body = http(address, "/api/method/ledger.api.enqueue_entry?account=devmode&amount=5", SITE)
    assert status == 200, body

    def rows() -> list[tuple[str, float, str]]:
        # read from the site's database by the web process itself (bench serve on port 8000)
        _, body = http(address, "/api/method/ledger.api.entries", SITE)
        return [(r["account"], float(r["amount"]), r["source"]) for r in json.loads(body)["message"]]

    wait_until(lambda: {("devmode", 5.0, "job"), ("scheduler", 0.0, "scheduler")} <= set(rows()), 90,
               "the workers did not write the enqueued and the scheduled entries",
               lambda: f"{rows()}\n" + dev_lab.ssh(
                   "lab1", f"tail -30 {LOG}; tail -30 {BENCH}/logs/worker.error.log", check=False).stdout)


def test_converged_redeploy_changes_nothing_while_bench_start_runs(dev_lab: LabHandle, deployed: Path,
                                                                   bench_start: int) -> None:
    result = deploy(deployed)
    assert result.returncode == 0, failures(result)
    changed = [(e["task"], e["msg"]) for e in events(result) if e["event"] == "task" and e["status"] == "changed"]
    assert recap(result)["lab1"]["changed"] == 0, changed
    assert set(started_pids(dev_lab)) == PROCESSES
    assert "stopped (rc=" not in dev_lab.ssh("lab1", f"cat {LOG}").stdout, "honcho lost a process"
    assert http(f"{dev_lab.hosts[0].address}:8000", "/api/method/ping", SITE)[0] == 200
