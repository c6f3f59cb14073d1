#!/usr/bin/env python3
"""The plain-OpenSSH floor of converge-50: one ``ssh`` session per host running one shell script.

No tool can converge a host over SSH in less than this: the control host renders every file
itself, then each host gets one session of the system's OpenSSH client whose script checks the
whole workload with one ``stat`` and one ``sha256sum`` and changes only what differs. Run cold
(hosts wiped), the script applies all 50 changes; run warm, it is the checks alone. So one tool
gives both floors the benchmark compares with: "all changes as one script" and "the warm checks
as one script". It leaves the same end state as the other tools (run_bench.py checks the digest).

Usage (a run_bench.py tool): openssh_floor.py INVENTORY_DIR/hosts.json [--forks N]; prints
``CHANGED=<n>``, the number of the workload's 50 items per host that it had to change.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).resolve().parent
DIRS = [f"d{i:02d}" for i in range(1, 11)]
FILES = [(i, f"d{(i - 1) % 10 + 1:02d}/f{i:02d}.conf") for i in range(1, 21)]
MARKERS = range(1, 6)


def host_script(host: dict[str, Any], template: jinja2.Template, base: str | None = None) -> str:
    """The one script that converges ``host`` (under ``base``); it prints CHANGED=<n> last."""
    hv = host["vars"]
    base = base or f"/srv/lab/{host['name']}"
    ini = "".join(f"key{i:02d}={hv['host_name']}-{i * hv['app_port']}\n" for i in range(1, 11))
    wanted: list[tuple[str, str]] = [(rel, template.render(item=i, **hv)) for i, rel in FILES]
    lines = [
        "set -eu", f"b={shlex.quote(base)}", "c=0", 'cd /', 'mkdir -p "$b"', 'cd "$b"',
        # Directories: builtin tests, mkdir only where missing.
        f"for d in {' '.join(DIRS)}; do [ -d \"$d\" ] || {{ mkdir -m 0755 \"$d\"; c=$((c+1)); }}; done",
        # Every checksum in one process; a missing file simply has no line.
        "sums=$(sha256sum " + " ".join(rel for rel, _ in wanted) + " app.ini 2>/dev/null || true)",
        "want() { case \"$sums\" in *\"$1  $2\"*) return 1;; esac; return 0; }",
    ]
    for rel, text in wanted:
        digest = hashlib.sha256(text.encode()).hexdigest()
        lines.append(f"if want {digest} {rel}; then cat > {rel}.tmp <<'PV_EOF'\n{text}PV_EOF\n"
                     f"chmod 0644 {rel}.tmp; mv -f {rel}.tmp {rel}; c=$((c+1)); fi")
    ini_digest = hashlib.sha256(ini.encode()).hexdigest()
    lines.append(f"if want {ini_digest} app.ini; then cat > app.ini.tmp <<'PV_EOF'\n{ini}PV_EOF\n"
                 "chmod 0644 app.ini.tmp; mv -f app.ini.tmp app.ini; c=$((c+10)); fi")
    for n in MARKERS:
        lines.append(f"[ -e marker{n} ] || {{ echo built-{n} > marker{n}; c=$((c+1)); }}")
    # Modes: one stat for the five markers, chmod only those that differ.
    lines.append("stat -c '%a %n' " + " ".join(f"marker{n}" for n in MARKERS)
                 + " | while read -r m f; do [ \"$m\" = 600 ] || { chmod 0600 \"$f\"; echo x; }; done > .modes")
    lines.append("c=$((c + $(wc -l < .modes))); rm -f .modes")
    lines.append('echo "CHANGED=$c"')
    return "\n".join(lines) + "\n"


def load_template() -> jinja2.Template:
    """The workload's template, rendered as provision and Ansible render it."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    return environment.from_string((HERE / "templates" / "app.conf.j2").read_text())


def run_host(inventory: dict[str, Any], host: dict[str, Any], script: str) -> tuple[str, int, str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={inventory['known_hosts']}", "-o", "IdentitiesOnly=yes",
            "-i", inventory["key"], "-p", str(host["port"]), f"{inventory['user']}@{host['address']}", "sh", "-s"]
    result = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=300, check=False)
    return host["name"], result.returncode, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inventory", type=Path, help="run_bench.py's neutral hosts.json")
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    inventory = json.loads(args.inventory.read_text())
    template = load_template()
    scripts = {h["name"]: host_script(h, template) for h in inventory["hosts"]}
    total, failed = 0, 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.forks) as pool:
        for name, rc, out in pool.map(lambda h: run_host(inventory, h, scripts[h["name"]]), inventory["hosts"]):
            changed = [line for line in out.splitlines() if line.startswith("CHANGED=")]
            if rc != 0 or not changed:
                failed += 1
                print(f"{name}: exit {rc}: {out.strip()[-500:]}", file=sys.stderr)
                continue
            total += int(changed[-1].split("=", 1)[1])
    print(f"CHANGED={total}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
