"""Bring up lab hosts, deploy Frappe benches on them with ``provision deploy``, show the sites answering.

Run through scripts/demo.sh (which installs what is needed). The lab's state directory is
$PROVISION_LAB_DIR (default /var/lib/provision-lab); the demo project (inventory with generated
secrets, mode 600) is written to <state>/demo-project.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from provision.lab import Lab, LabSettings  # noqa: E402
from provision.lab.gitserve import serve_git  # noqa: E402

SITES = {"lab1": ["erp.lab", "shop.lab"], "lab2": ["crm.lab"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=2, help="lab hosts to deploy (default 2)")
    args = parser.parse_args()
    settings = LabSettings.create(os.environ.get("PROVISION_LAB_DIR"))
    lab = Lab(settings, log=lambda message: print(f"[lab] {message}", flush=True))
    hosts = lab.up(args.hosts)
    project = settings.state_dir / "demo-project"
    project.mkdir(mode=0o700, exist_ok=True)
    repos = project / "repos"
    if not repos.exists():
        importlib.import_module("standin").make_app_repos(repos)
    # Served for as long as the lab is up (`provision lab down` stops it), so the project can be
    # deployed again after the demo, as a user would.
    git = serve_git(settings, repos)
    _wait_git(f"{git}/frappe")
    inventory = project / "inventory.yml"
    if not inventory.exists():
        inventory.write_text(_inventory(hosts, lab, git))
        inventory.chmod(0o600)
    print(f"\n$ provision deploy prod -i {inventory}\n", flush=True)
    deployed = subprocess.run([sys.executable, "-m", "provision", "deploy", "prod", "-i", str(inventory)],
                              cwd=project)
    if deployed.returncode != 0:
        return deployed.returncode
    print()
    failed = 0
    for host in hosts:
        for site in SITES.get(host.name, [f"{host.name}.lab"]):
            request = urllib.request.Request(f"http://{host.address}/api/method/ping", headers={"Host": site})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(request, timeout=10) as response:
                    print(f"curl -H 'Host: {site}' http://{host.address}/api/method/ping -> "
                          f"{response.status} {response.read().decode()}")
            except OSError as exc:
                failed += 1
                print(f"{site} on {host.name}: {exc}")
    print("\nexplore: provision lab ssh lab1 -- 'su - frappe -c \"cd frappe-bench && bench --site all list-apps\"'"
          f"\ndeploy again (converged: 0 changed): provision deploy prod -i {inventory}"
          f"\n  (the app repositories stay served from {git} while the lab is up; after a reboot:"
          f" provision lab up {len(hosts)} --serve-git {repos})"
          "\nremove everything: provision lab down")
    return 1 if failed else 0


def _wait_git(url: str) -> None:
    deadline = time.monotonic() + 15
    while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"git daemon did not serve {url}")
        time.sleep(0.2)


def _inventory(hosts: list, lab: Lab, git: str) -> str:
    lines = ["# The demo's inventory: generated secrets, mode 600; see inventory.example.yml for every variable.",
             "all:", "  children:", "    prod:", "      hosts:"]
    for host in hosts:
        lines += [f"        {host.name}:", f"          ssh_host: {host.address}", "          sites:"]
        for site in SITES.get(host.name, [f"{host.name}.lab"]):
            lines += [f"            - name: {site}",
                      f"              admin_password: !secret {secrets.token_urlsafe(12)}"]
    lines += ["      vars:", "        ssh_user: root", f"        ssh_private_key_file: {lab.key}",
              f"        ssh_known_hosts_file: {lab.known_hosts}",
              f"        db_root_password: !secret {secrets.token_urlsafe(16)}", "        dns_multitenant: true",
              "        apps:"]
    for app, ref in (("frappe", "version-15"), ("ledger", "v1")):
        lines.append(f"          - {json.dumps({'name': app, 'repo': f'{git}/{app}', 'ref': ref})}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
