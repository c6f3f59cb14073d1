#!/usr/bin/env python3
"""The real jobs: ``provision deploy`` and ``provision update`` of the Frappe stand-in on 2 lab hosts.

One command, as root on Linux, from the repository root (with the repository's .venv and its test extras):

    .venv/bin/python benchmarks/jobs.py            # some 10-20 minutes on a quiet 2-core machine

It brings up 2 lab hosts in a lab of its own (``--state-dir``, default /var/lib/provision-lab-bench-jobs,
subnet 10.213.223.0/24; the base image of run.py's lab is shared), serves the stand-in's repositories
(tests/fixtures/standin.py) over git from the lab's bridge, and writes the inventory the update e2e
test writes (tests/e2e/test_update.py's ``write_inventory``: lab1 with 2 sites, lab2 with 1, ledger
v2). Then, each timed, with SSH sessions per host from the hosts' sshd logs and tasks from the recap:

1. first deploy (fresh hosts);
2. the same deploy again (converged);
3. a config change: ``gunicorn_workers`` 2 -> 3 in the inventory (one template variable);
4. ``provision update --apps ledger@v2.1`` (Python only: no migrate), with a bounded request loop per
   site counting the seconds each site did not answer.

Every JSON event is stamped as it arrives; the page lists each run's slowest tasks and steps.
Results: ``benchmarks/results/jobs-<date>.md``; logs in ``results/work-jobs/``. The lab is brought
down at the end unless ``--keep-lab``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from jobsreport import (  # noqa: E402
    JobRun,
    summary_table,
    unanswered_seconds,
    unanswered_table,
    where_time_goes,
)

DEFAULT_STATE_DIR = "/var/lib/provision-lab-bench-jobs"
DEFAULT_SUBNET = "10.213.223.0/24"
SHARED_BASE = "/var/lib/provision-lab-bench/base"
REQUEST_INTERVAL = 0.2


def log(message: str) -> None:
    print(f"[jobs] {message}", flush=True)


def timed_run(name: str, argv: list[str], project: Path, handle: Any, work: Path, timeout: float,
              sites: dict[str, list[str]] | None = None) -> JobRun:
    """Run ``argv`` in the project, stamping each JSON line; with ``sites``, poll each site meanwhile."""
    before = {h.name: handle.sessions(h.name) for h in handle.hosts}
    samples: dict[str, list[tuple[float, bool]]] = {}
    done = threading.Event()
    start = time.monotonic()
    loops = [threading.Thread(target=_request_loop, args=(handle.host(host).address, site, start, done, timeout,
                                                          samples.setdefault(site, [])), daemon=True)
             for host, host_sites in (sites or {}).items() for site in host_sites]
    for loop in loops:
        loop.start()
    stamped: list[tuple[float, dict[str, Any]]] = []
    log(f"{name}: {' '.join(argv)}")
    with (work / f"{name}.log").open("w") as raw, \
            subprocess.Popen(argv, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True) as proc:
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        errors = threading.Thread(target=lambda: raw.write(proc.stderr.read() if proc.stderr else ""), daemon=True)
        errors.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                raw.write(line)
                if line.startswith("{"):
                    stamped.append((time.monotonic() - start, json.loads(line)))
            proc.wait(timeout=60)
        finally:
            watchdog.cancel()
            errors.join(timeout=30)
    wall = time.monotonic() - start
    done.set()
    for loop in loops:
        loop.join(timeout=30)
    recap: dict[str, dict[str, int]] = next(
        (e["hosts"] for _, e in reversed(stamped) if e.get("event") == "recap"), {})
    run = JobRun(name, " ".join(argv[argv.index("provision") + 1:]), wall, proc.returncode,
                 {h.name: handle.sessions(h.name) - before[h.name] for h in handle.hosts}, recap, stamped)
    run.unanswered = {site: unanswered_seconds(s) for site, s in samples.items()}
    run.requests = {site: len(s) for site, s in samples.items()}
    log(f"{name}: {wall:.1f} s, exit {proc.returncode}, sessions {run.sessions}")
    return run


def _request_loop(address: str, site: str, start: float, done: threading.Event, timeout: float,
                  samples: list[tuple[float, bool]]) -> None:
    """GET /api/method/ping on ``site`` every REQUEST_INTERVAL until ``done`` (and at most ``timeout`` s)."""
    from tests.e2e.test_deploy import http

    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        try:
            status, _ = http(address, "/api/method/ping", site, timeout=2)
            answered = status == 200
        except OSError:
            answered = False
        samples.append((time.monotonic() - start, answered))
        time.sleep(REQUEST_INTERVAL)


def set_workers(project: Path, workers: int) -> None:
    """The one template variable of the config change, edited in the inventory as a person would."""
    inventory = project / "inventory.yml"
    lines = inventory.read_text().splitlines()
    changed = [f"        gunicorn_workers: {workers}" if line.strip().startswith("gunicorn_workers:") else line
               for line in lines]
    if changed == lines:
        raise RuntimeError("no gunicorn_workers line in the inventory")
    inventory.write_text("\n".join(changed) + "\n")


def page(runs: list[JobRun], args: argparse.Namespace, commit: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    update = next((r for r in runs if r.name.startswith("update")), None)
    return (f"# The real jobs on 2 lab hosts: deploy and update of the Frappe stand-in ({when})\n\n"
            f"provision at {commit}, Python {sys.version.split()[0]}; lab1 serves 2 sites, lab2 1 "
            f"(tests/e2e/test_update.py's inventory); controller and hosts share this machine's {os.cpu_count()} "
            "CPUs and the machine may be shared, so the seconds are indicative. Sessions per host are counted "
            "from each host's sshd log; tasks from the recap (a loop counts once). \"first task result at\": "
            "start-up, inventory, connects and facts come before it. "
            f"Machine load average (1 min) at the start and end: {args.load_start:.1f}, {os.getloadavg()[0]:.1f}.\n\n"
            "Reproduce: `.venv/bin/python benchmarks/jobs.py`\n\n"
            + summary_table(runs)
            + ("\n## Update to a release that needs no migrate (ledger v2 -> v2.1)\n\n"
               f"A request loop per site (GET /api/method/ping every {REQUEST_INTERVAL:g} s, 2 s timeout) while "
               "the update ran; an outage counts from its first failed request to the next answered one.\n\n"
               + unanswered_table(update) if update else "")
            + "\n## Where the time goes (slowest tasks and steps, durations from the JSON events)\n\n"
            + "\n".join(where_time_goes(run) for run in runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"the lab (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"its /24 (default {DEFAULT_SUBNET})")
    parser.add_argument("--base-dir", default=SHARED_BASE, help=f"lab base image cache (default {SHARED_BASE})")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds allowed per run (default 2400)")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab hosts running")
    parser.add_argument("--out", type=Path, help="result page (default results/jobs-<date>.md)")
    args = parser.parse_args(argv)
    args.load_start = os.getloadavg()[0]

    import importlib

    from provision.lab import Lab, LabSettings
    from provision.lab.gitserve import serve_git
    from tests.e2e.conftest import lab_unavailable, start_lab
    from tests.e2e.test_update import SITES, write_inventory

    standin = importlib.import_module("tests.e2e.test_deploy").standin
    reason = lab_unavailable()
    if reason:
        log(f"cannot run: {reason}")
        return 1
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                            text=True, timeout=30, check=False).stdout.strip()
    work = HERE / "results" / "work-jobs"
    work.mkdir(parents=True, exist_ok=True)
    settings = LabSettings.create(args.state_dir, subnet=args.subnet, base_dir=args.base_dir, environ={})
    log(f"lab up 2 ({settings.state_dir}, {settings.subnet})")
    handle = start_lab(settings, 2)
    runs: list[JobRun] = []
    try:
        repos = work / "repos"
        if repos.exists():
            subprocess.run(["rm", "-rf", str(repos)], check=True, timeout=60)
        standin.make_app_repos(repos)
        url = serve_git(settings, repos)
        project = work / "project"
        project.mkdir(exist_ok=True)
        write_inventory(project, handle, url, "v2")
        sites = {h.name: SITES[h.name] for h in handle.hosts}
        provision = [sys.executable, "-m", "provision"]
        deploy = [*provision, "deploy", "prod", "--json"]
        runs.append(timed_run("first deploy", deploy, project, handle, work, args.timeout))
        if runs[-1].rc != 0:
            raise RuntimeError(f"the first deploy failed (exit {runs[-1].rc}): see {work / 'first deploy.log'}")
        runs.append(timed_run("converged re-run", deploy, project, handle, work, args.timeout))
        set_workers(project, 3)
        runs.append(timed_run("config change (gunicorn_workers 2 -> 3)", deploy, project, handle, work, args.timeout,
                              sites=sites))
        runs.append(timed_run("update ledger v2 -> v2.1 (no migrate)",
                              [*provision, "update", "prod", "--json", "--apps", "ledger@v2.1"], project, handle, work,
                              args.timeout, sites=sites))
    finally:
        if runs:
            out = args.out or HERE / "results" / f"jobs-{time.strftime('%Y-%m-%d')}.md"
            out.write_text(page(runs, args, commit))
            log(f"wrote {out}")
        if not args.keep_lab:
            log("lab down")
            Lab(settings, log=print).down()
    return 0 if runs and all(r.rc == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
