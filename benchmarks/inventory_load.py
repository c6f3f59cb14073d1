#!/usr/bin/env python3
"""Inventory load: ``provision inventory --list`` against ``ansible-inventory --list`` on big inventories.

One command, from the repository root (no lab, no root needed):

    python3 benchmarks/inventory_load.py                    # 1k, 10k and 50k hosts, 3 repetitions
    python3 benchmarks/inventory_load.py --hosts 1000,10000 --reps 1

It writes one YAML inventory per size (``generate_inventory``: 20 groups of hosts under 4 parent
groups, 4 host variables each, group variables at both levels), runs each tool on it ``--reps``
times (interleaved), checks both list the same hosts, and writes
``benchmarks/results/inventory-<date>.md``: median wall time, CPU seconds and peak memory of each
tool. It also checks what makes big inventories usable: provision reads YAML with libyaml's C
parser when PyYAML has it, and an error in the last line of the biggest file still names that
file:line (the error path is timed too). ansible-inventory comes from the peers' virtualenv
(``--venv``, default ``benchmarks/.venv-peers``, which ``run.py`` creates).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARENTS = ("europe", "america", "asia", "africa")
GROUPS_PER_PARENT = 5


def generate_inventory(count: int) -> str:
    """An Ansible YAML inventory of ``count`` hosts ``h00001…`` in 20 groups under 4 parents."""
    groups = [f"{parent}_{n}" for parent in PARENTS for n in range(1, GROUPS_PER_PARENT + 1)]
    members: dict[str, list[int]] = {group: [] for group in groups}
    for index in range(1, count + 1):
        members[groups[(index - 1) % len(groups)]].append(index)
    out = ["all:", "  vars:", "    ssh_user: deploy", "    gunicorn_workers: 2", "  children:"]
    for parent in PARENTS:
        out += [f"    {parent}:", "      vars:", f"        region: {parent}", "      children:"]
        for group in (g for g in groups if g.startswith(parent + "_")):
            out += [f"        {group}:", "          vars:", f"            rack: {group}", "          hosts:"]
            for index in members[group]:
                third, fourth = divmod(index, 250)
                out += [f"            h{index:05d}:",
                        f"              ssh_host: 10.{third // 250}.{third % 250}.{fourth + 1}",
                        f"              app_port: {8000 + index % 1000}",
                        f"              db_name: db_h{index:05d}",
                        "              sites:", f"                - name: s{index}.example.test"]
    return "\n".join(out) + "\n"


def broken(text: str) -> tuple[str, int]:
    """The same inventory with a duplicate key on a new last line, and that line's number."""
    lines = text.splitlines()
    last_host = max(i for i, line in enumerate(lines) if line.startswith("            h"))
    lines.insert(last_host + 2, lines[last_host + 1])  # the last host's ssh_host, given twice
    return "\n".join(lines) + "\n", last_host + 3


def timed(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` (stdout kept, bounded); wall, CPU seconds and peak memory of the process tree."""
    start = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return {"wall_s": timeout, "cpu_s": None, "rss_mib": None, "rc": "timeout", "out": out, "err": err}
        wall = time.monotonic() - start
        # communicate() reaped the child; its usage is in RUSAGE_CHILDREN since the last reading.
    return {"wall_s": wall, "rc": proc.returncode, "out": out, "err": err}


def with_usage(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``timed`` plus CPU seconds and peak memory, read as the difference of RUSAGE_CHILDREN."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = timed(argv, timeout=timeout, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result["rc"] != "timeout":
        result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        # ru_maxrss of children is the largest child so far: exact for the first run of the biggest size,
        # an upper bound otherwise; run each size smallest first so it grows with the sizes.
        result["rss_mib"] = after.ru_maxrss / 1024
    return result


def host_count(listing: bytes) -> int:
    """Hosts in an ``--list`` JSON (``_meta.hostvars``)."""
    return len(json.loads(listing)["_meta"]["hostvars"])


def libyaml_used(python: str) -> str:
    """Which YAML parser provision's loader takes for files (the C one when PyYAML has libyaml)."""
    code = ("import provision.yamlfile as y, yaml; "
            "print(y._LOADERS[-1].__name__, yaml.__with_libyaml__)")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         check=True).stdout.split()
    return f"loader {out[0]} (PyYAML with libyaml: {out[1]})"


def summary_table(results: dict[tuple[str, int], list[dict[str, Any]]], sizes: list[int]) -> str:
    """Markdown: per size and tool, the median wall time, CPU and the peak memory."""
    lines = ["| hosts | tool | wall s median | min-max | CPU s median | peak RSS MiB | x provision |",
             "|---|---|---|---|---|---|---|"]
    for size in sizes:
        base = None
        for tool in ("provision", "ansible-inventory"):
            runs = results.get((tool, size), [])
            walls = [float(r["wall_s"]) for r in runs if r["rc"] == 0]
            if not walls:
                lines.append(f"| {size:,} | {tool} | failed | - | - | - | - |")
                continue
            cpus = [float(r["cpu_s"]) for r in runs if r["rc"] == 0]
            rss = max(float(r["rss_mib"]) for r in runs if r["rc"] == 0)
            median = statistics.median(walls)
            base = base or (median if tool == "provision" else None)
            ratio = f"{median / base:.2f}x" if base else "-"
            lines.append(f"| {size:,} | {tool} | {median:.2f} | {min(walls):.2f}-{max(walls):.2f} | "
                         f"{statistics.median(cpus):.2f} | {rss:.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1000,10000,50000", help="comma list of sizes (default 1000,10000,50000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool and size (default 3)")
    parser.add_argument("--venv", type=Path, default=HERE / ".venv-peers", help="virtualenv with ansible-core")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python")
                        if (REPO / ".venv" / "bin" / "python").exists() else sys.executable,
                        help="the interpreter with provision's dependencies (default: the repository's .venv)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per command (default 900)")
    parser.add_argument("--out", type=Path, help="result page (default results/inventory-<date>.md)")
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.hosts.split(",")})
    load_start = os.getloadavg()[0]
    work = HERE / "results" / "work-inventory"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANSIBLE_INVENTORY_ENABLED": "yaml",
           "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp")}
    tools = {"provision": [args.python, "-m", "provision", "inventory", "--list", "-i"],
             "ansible-inventory": [str(args.venv / "bin" / "ansible-inventory"), "--list", "-i"]}
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    notes: list[str] = []
    for size in sizes:
        path = work / f"hosts-{size}.yml"
        text = generate_inventory(size)
        path.write_text(text)
        print(f"[inventory] {size} hosts: {path} ({len(text) / 1e6:.1f} MB, {text.count(chr(10)):,} lines)",
              flush=True)
        for rep in range(1, args.reps + 1):
            for tool, command in tools.items():
                result = with_usage([*command, str(path)], timeout=args.timeout, env=env)
                if result["rc"] == 0:
                    listed = host_count(result["out"])
                    if listed != size:
                        result["rc"] = f"listed {listed}"
                        notes.append(f"{tool} listed {listed} of {size} hosts")
                else:
                    err = result["err"]
                    notes.append(f"{tool} on {size} hosts: exit {result['rc']}: "
                                 f"{bytes(err).decode(errors='replace').strip()[-300:]}"
                                 if isinstance(err, bytes) else f"{tool} on {size} hosts: {result['rc']}")
                results.setdefault((tool, size), []).append(result)
                print(f"[inventory] rep {rep} {tool:18s} {size:>6} hosts: {float(result['wall_s']):7.2f} s "
                      f"rc={result['rc']}", flush=True)
    biggest = sizes[-1]
    bad_text, bad_line = broken(generate_inventory(biggest))
    bad = work / f"hosts-{biggest}-broken.yml"
    bad.write_text(bad_text)
    error = with_usage([*tools["provision"], str(bad)], timeout=args.timeout, env=env)
    message = bytes(error["err"]).decode(errors="replace").strip()
    named = f"{bad.name}:{bad_line}" in message
    __version__ = subprocess.run([args.python, "-c", "import provision; print(provision.__version__)"],
                                 capture_output=True, text=True, timeout=60, check=False, env=env).stdout.strip()

    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                         timeout=30, check=False).stdout.strip()
    versions = subprocess.run([str(args.venv / "bin" / "python"), "-c",
                               "import importlib.metadata as m; print(m.version('ansible-core'))"],
                              capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    page = args.out or HERE / "results" / f"inventory-{time.strftime('%Y-%m-%d')}.md"
    page.write_text(
        f"# Inventory load: provision inventory --list against ansible-inventory --list "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
        f"provision {__version__} at {sha or 'an unknown commit'} (working tree), Python {sys.version.split()[0]}; "
        f"ansible-core {versions or '?'} (yaml inventory plugin only). Generated YAML inventories "
        f"(`generate_inventory` in benchmarks/inventory_load.py: 20 groups under 4 parents, 4 host variables, "
        f"group variables at both levels); each tool prints the whole `--list` JSON, which both agree "
        f"lists every host. Medians of {args.reps} repetition{'s' if args.reps != 1 else ''}, interleaved; CPU is "
        f"user + system of the process; peak RSS is an upper bound (largest child so far). The machine "
        f"is shared, so compare within one table (CPU seconds are the steadier figure on a busy machine). "
        f"Machine load average (1 min) at the start and end: {load_start:.1f}, {os.getloadavg()[0]:.1f}.\n\n"
        f"Reproduce: `python3 benchmarks/inventory_load.py --hosts {','.join(map(str, sizes))} --reps {args.reps}`\n\n"
        + summary_table(results, sizes)
        + f"\nYAML parser: {libyaml_used(args.python)}.\n\n"
        f"Error path on {biggest:,} hosts (a duplicate key on line {bad_line}): exit {error['rc']} in "
        f"{float(error['wall_s']):.2f} s, {'names' if named else 'does NOT name'} "
        f"`{bad.name}:{bad_line}`: `{message.splitlines()[0] if message else ''}`\n"
        + ("\nProblems:\n\n" + "".join(f"- {n}\n" for n in notes) if notes else ""))
    print(f"[inventory] wrote {page}")
    return 0 if named and not notes else 1


if __name__ == "__main__":
    sys.exit(main())
