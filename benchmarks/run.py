#!/usr/bin/env python3
"""converge-50 side by side: provision, ansible-core (+ mitogen) and pyinfra on the same lab hosts.

One command, as root on Linux, from the repository root:

    python3 benchmarks/run.py                     # 10 lab hosts, 3 repetitions
    python3 benchmarks/run.py --scale 1,10,30     # the same per host count, plus scale.md and scale.png

It creates ``benchmarks/.venv-peers`` (pinned ansible-core, pyinfra, matplotlib; mitogen when it
installs), starts N lab hosts in a lab of its own (``--state-dir``, default
/var/lib/provision-lab-bench, subnet 10.213.77.0/24), writes the peers' inventories with
``gen_inventory.py`` and provision's from the same host list, then runs the peers'
``run_bench.py``: per repetition every tool in turn (interleaved) on wiped hosts, a cold run, an
end-state digest, a warm run; SSH connections and sessions per host are counted from each host's
sshd log. The medians table, with a column "x provision" (each tool's median over provision's in
the same phase), goes to ``benchmarks/results/<N>hosts-<date>.md``; with ``--scale`` also
``results/scale.md`` and ``results/scale.png``. Logs stay in ``results/work-<N>/`` (not committed).
provision is measured as committed at ``--ref`` (default HEAD, extracted to ``results/work-src/``),
so edits in progress do not change the code under test halfway; ``--worktree`` measures the tree.
The lab is brought down at the end unless ``--keep-lab``.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from benchreport import (  # noqa: E402  (the script's own directory, not a package)
    BenchRow,
    assign_cpu,
    cpu_per_host,
    first_hosts,
    page_provision,
    parse_bench_table,
    provision_inventory,
    targets_section,
    with_ratio_column,
)
from scalereport import flatness, scale_plan, scale_series, scale_tables  # noqa: E402

# Versions that install and run together on Python 3.11 (ansible-core 2.20 needs Python 3.12).
PEER_PACKAGES = ("ansible-core==2.19.14", "pyinfra==3.10.0", "matplotlib==3.11.2")
OPTIONAL_PACKAGES = ("mitogen==0.3.54",)
DEFAULT_TOOLS = "openssh-floor,provision,ansible-linear,ansible-mitogen-linear,pyinfra"
# Bounded: at 100 hosts ansible-linear alone would take hours (some 12 s a host cold and warm) and mitogen
# doubles the run; the 10-host page has every tool, and --tools adds them back here.
SCALE_TOOLS = "openssh-floor,provision,pyinfra"
DEFAULT_FORKS = 10
DEFAULT_STATE_DIR = "/var/lib/provision-lab-bench"
DEFAULT_SUBNET = "10.213.77.0/24"


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def run(argv: list[str], *, timeout: float, capture_output: bool = False,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, bounded, failing loudly."""
    return subprocess.run(argv, check=True, text=True, timeout=timeout, capture_output=capture_output, cwd=cwd)


# -- the peers' virtualenv ---------------------------------------------------------------------------


def ensure_peers_venv(venv: Path) -> None:
    """Create the virtualenv with the pinned peers once; mitogen is optional (it lags ansible-core)."""
    stamp = venv / ".bench-pins"
    wanted = "\n".join(PEER_PACKAGES + OPTIONAL_PACKAGES)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"setting up {venv} ({', '.join(PEER_PACKAGES + OPTIONAL_PACKAGES)})")
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, *PEER_PACKAGES], timeout=1200)
    for package in OPTIONAL_PACKAGES:
        try:
            run([*pip, package], timeout=600)
        except subprocess.SubprocessError:
            log(f"{package} did not install: ansible-mitogen is left out")
    stamp.write_text(wanted)


def peer_versions(venv: Path) -> dict[str, str]:
    """Installed versions of the peers, by distribution name."""
    code = ("import json, importlib.metadata as m\nout = {}\n"
            "for name in ('ansible-core', 'pyinfra', 'mitogen'):\n"
            "    try: out[name] = m.version(name)\n    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    result = run([str(venv / "bin" / "python"), "-c", code], timeout=60, capture_output=True)
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


# -- the lab -----------------------------------------------------------------------------------------


def lab(command: list[str], args: argparse.Namespace, *, timeout: float = 1800) -> None:
    """``provision lab …`` on the benchmark's own lab."""
    run([args.python, "-m", "provision", "lab", *command, "--state-dir", args.state_dir, "--subnet", args.subnet],
        timeout=timeout, cwd=REPO)


def write_inventories(args: argparse.Namespace, count: int, work: Path) -> None:
    """The peers' inventories (gen_inventory.py) and provision's, for lab1..lab<count>."""
    state = Path(args.state_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "hosts.tsv").write_text(first_hosts((state / "hosts.tsv").read_text(), count))
    run([sys.executable, str(args.peers / "gen_inventory.py"), "--hosts", str(work / "hosts.tsv"),
         "--key", str(state / "id_ed25519"), "--known-hosts", str(state / "known_hosts"), "--out", str(work)],
        timeout=60, capture_output=True)
    neutral = json.loads((work / "hosts.json").read_text())
    (work / "provision.yml").write_text(provision_inventory(neutral))


# -- the provision under test ------------------------------------------------------------------------


def provision_snapshot(ref: str, results_dir: Path) -> tuple[Path, str]:
    """Extract the ``provision`` package at git ``ref`` (the engine moves while people work); its dir and sha."""
    sha = run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"], timeout=30,
              capture_output=True).stdout.strip()
    dest = results_dir / "work-src" / sha[:12]
    if not (dest / "provision" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", sha, "provision"],
                                 check=True, capture_output=True, timeout=120).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    # Byte-compile as `pip install` does: the peers' packages come compiled, and a shell with
    # PYTHONDONTWRITEBYTECODE set would otherwise make provision compile itself on every run.
    compileall.compile_dir(dest / "provision", quiet=1)
    return dest, sha


def describe_provision(args: argparse.Namespace) -> str:
    """Which provision the tables measure, for the result pages."""
    if args.source is None:
        return "provision from the working tree"
    return f"provision at commit {args.commit[:12]}"


# -- one benchmark -----------------------------------------------------------------------------------


def cpu_shims(args: argparse.Namespace, work: Path, cpu_log: Path) -> Path:
    """A virtualenv-shaped folder whose ``ansible-playbook`` and ``pyinfra`` run the peers' own under
    cpu_wrap.py (run_bench.py builds their command lines from ``--venv``; its ``python`` is the real one)."""
    shim = work / "venv-cpu"
    (shim / "bin").mkdir(parents=True, exist_ok=True)
    wrap = [sys.executable, "-I", "-S", str(HERE / "cpu_wrap.py"), str(cpu_log)]
    for name, label in (("ansible-playbook", "ansible-playbook"), ("pyinfra", "pyinfra"), ("python", None)):
        real = shlex.quote(str(args.venv / "bin" / name))
        prefix = "" if label is None else " ".join(shlex.quote(p) for p in [*wrap, label]) + " "
        path = shim / "bin" / name
        path.write_text(f"#!/bin/sh\nexec {prefix}{real} \"$@\"\n")
        path.chmod(0o755)
    return shim


def peers_copy(args: argparse.Namespace, results_dir: Path) -> Path:
    """A copy of the peers' folder to run from: run_bench.py writes its logs beside itself, not in shared/."""
    dest = results_dir / "work-peers"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(args.peers, dest, ignore=shutil.ignore_patterns("results", "inventory", "__pycache__"))
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return dest


def bench(args: argparse.Namespace, count: int, forks: int, tools: list[str], work: Path) -> tuple[str, Path]:
    """Run the peers' run_bench.py on ``count`` hosts; its medians table (markdown) and the CPU log."""
    cpu_log = work / f"cpu-f{forks}.jsonl"
    cpu_log.unlink(missing_ok=True)
    wrap = [sys.executable, "-I", "-S", str(HERE / "cpu_wrap.py"), str(cpu_log)]
    tool = " ".join(shlex.quote(p) for p in (*wrap, "provision", str(HERE / "provision_tool.sh"), args.python))
    # The plain-OpenSSH floor: one ssh session per host running one script (openssh_floor.py).
    floor = " ".join(shlex.quote(p) for p in (*wrap, "openssh-floor", args.python, str(HERE / "openssh_floor.py")))
    # The snapshot at --ref, or the working tree (run_bench.py runs tools from the peers' folder).
    tool = f"PYTHONPATH={shlex.quote(str(args.source or REPO))} {tool}"
    argv = [sys.executable, str(args.peers_run / "run_bench.py"), "--inv", str(work),
            "--venv", str(cpu_shims(args, work, cpu_log)),
            "--forks", str(forks), "--reps", str(args.reps), "--tools", ",".join(tools),
            "--tool", f"provision={tool} {{inv}}/provision.yml --forks {{forks}}",
            "--tool", f"openssh-floor={floor} {{inv}}/hosts.json --forks {{forks}}",
            "--sshd-log", f"{args.state_dir}/hosts/{{name}}/sshd.log"]
    log(f"{count} hosts, forks {forks}: {' '.join(shlex.quote(a) for a in argv)}")
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True) as proc:
        # A hung tool must not hang the benchmark: the watchdog ends run_bench.py and its children.
        watchdog = threading.Timer(args.timeout, os.killpg, (proc.pid, signal.SIGTERM))
        watchdog.start()
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                lines.append(line)
            proc.wait(timeout=60)
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            raise
        finally:
            watchdog.cancel()
    if proc.returncode != 0:
        raise RuntimeError(f"run_bench.py exited {proc.returncode} (killed after {args.timeout:g} s if negative)")
    text = "".join(lines)
    start = text.rfind("converge-50, ")
    if start < 0:
        raise RuntimeError("run_bench.py printed no table")
    return text[start:], cpu_log


def measured_cpu(cpu_log: Path, tools: list[str], reps: int, count: int) -> dict[tuple[str, str], float]:
    """Control-host CPU seconds per host by (tool, phase), or nothing if the log does not fit the runs."""
    records = [json.loads(line) for line in cpu_log.read_text().splitlines()] if cpu_log.exists() else []
    try:
        return cpu_per_host(assign_cpu(records, tools, reps), count)
    except ValueError as exc:
        log(f"no CPU figures for {count} hosts: {exc}")
        return {}


def result_page(table: str, cpu: dict[tuple[str, str], float], count: int, forks: int, args: argparse.Namespace,
                versions: dict[str, str], load_start: float) -> str:
    """The committed result file: what ran where, the table with the ratio and CPU columns, the targets."""
    sys.path.insert(0, str(args.source or REPO))
    from provision import __version__

    peers = ", ".join(f"{name} {version}" for name, version in versions.items())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    augmented = with_ratio_column(table, cpu)
    return (f"# converge-50 on {count} lab host{'s' if count != 1 else ''}, forks {forks}, {when}\n\n"
            f"{describe_provision(args)} ({__version__}, Python {sys.version.split()[0]}); {peers}. "
            f"Controller and lab hosts share this machine's {os.cpu_count()} CPUs, so compare ratios within one "
            "table, not seconds across machines. "
            "Cold: hosts wiped, everything changes. Warm: the same run again, nothing changes. "
            "\"x floor\": the tool's median over `openssh-floor`'s in the same phase (plain OpenSSH, one session "
            "per host running one script: cold it is all changes as one script, warm the checks as one script; "
            "no tool can do less over SSH). \"x provision\": over provision's. \"CPU s/host\": control-host CPU "
            "seconds (user + system) of the tool's whole process tree, median, divided by the hosts "
            "(benchmarks/cpu_wrap.py). Sessions and connections per host "
            "are counted from each host's sshd log (LogLevel VERBOSE). Changes are as each tool counts them "
            "(provision and ansible: tasks; pyinfra: operations; the floor: items). "
            f"Machine load average (1 min) at the start and end of this run: {load_start:.1f}, "
            f"{os.getloadavg()[0]:.1f}.\n\n"
            f"Reproduce: `python3 benchmarks/run.py --hosts {count} --reps {args.reps} --forks {forks}"
            f"{reproduce_options(args)}`\n\n"
            + augmented + "\n" + targets_section(parse_bench_table(augmented), hosts=count, reps=args.reps))


def reproduce_options(args: argparse.Namespace) -> str:
    """The options that made this run differ from the defaults, for the "Reproduce" line."""
    options = "" if args.tools == default_tools(args) else f" --tools {args.tools}"
    return options + (" --worktree" if args.worktree else f" --ref {args.commit[:12]}")


def default_tools(args: argparse.Namespace) -> str:
    return SCALE_TOOLS if args.scale else DEFAULT_TOOLS


def default_python() -> str:
    """The repository's own virtualenv (``python3 -m venv .venv && .venv/bin/pip install -e .``), else this Python."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def default_peers() -> Path:
    """``../shared/peers`` from the repository root; from a worktree under ``wt/``, one level further up."""
    candidates = [REPO.parent / "shared" / "peers", REPO.parent.parent / "shared" / "peers"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def page_name(count: int, forks: int) -> str:
    """``10hosts-2026-12-01.md``; another forks than the default: ``100hosts-f50-2026-12-01.md``."""
    return f"{count}hosts{'' if forks == DEFAULT_FORKS else f'-f{forks}'}-{time.strftime('%Y-%m-%d')}.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10, help="lab hosts (default 10)")
    parser.add_argument("--scale", help="comma list of host counts, e.g. 1,10,30,100: one benchmark each, then a plot")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool (default 3)")
    parser.add_argument("--forks", default=str(DEFAULT_FORKS),
                        help=f"hosts in parallel, every tool; a comma list (e.g. 10,50) runs each "
                             f"(default {DEFAULT_FORKS})")
    parser.add_argument("--tools", help=f"comma list, in run order (default {DEFAULT_TOOLS}; with --scale "
                                        f"{SCALE_TOOLS})")
    parser.add_argument("--peers", type=Path, default=default_peers(),
                        help="the peers' workload folder (default: shared/peers beside the repository or its parent)")
    parser.add_argument("--venv", type=Path, default=HERE / ".venv-peers", help="peers' virtualenv")
    parser.add_argument("--python", default=default_python(),
                        help="the interpreter with provision's dependencies that runs provision, the floor and the lab "
                             "(default: the repository's .venv if it has one, else this one)")
    parser.add_argument("--state-dir", default=os.environ.get("PROVISION_BENCH_LAB_DIR", DEFAULT_STATE_DIR),
                        help=f"the benchmark's own lab (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"its /24 (default {DEFAULT_SUBNET})")
    parser.add_argument("--ref", default="HEAD", help="measure provision as committed at this git ref (default HEAD)")
    parser.add_argument("--worktree", action="store_true", help="measure the working tree (uncommitted edits too)")
    parser.add_argument("--reuse", action="store_true",
                        help="take today's result page for a run where it exists instead of running again")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab hosts running")
    parser.add_argument("--timeout", type=float, default=5400,
                        help="seconds allowed per run, i.e. per host count and forks (default 5400)")
    args = parser.parse_args(argv)
    args.peers = args.peers.resolve()
    args.venv = args.venv.absolute()
    args.tools = args.tools or default_tools(args)
    counts = sorted({int(n) for n in args.scale.split(",")}) if args.scale else [args.hosts]
    forks_list = sorted({int(n) for n in args.forks.split(",")})
    plan = scale_plan(counts, forks_list)
    results_dir = HERE / "results"
    args.source, args.commit = (None, "") if args.worktree else provision_snapshot(args.ref, results_dir)
    ensure_peers_venv(args.venv)
    args.peers_run = peers_copy(args, results_dir)
    versions = peer_versions(args.venv)
    tools = [t for t in args.tools.split(",") if t and ("mitogen" not in t or "mitogen" in versions)]
    tables: dict[tuple[int, int], list[BenchRow]] = {}
    measured: dict[tuple[int, int], str] = {}
    log("plan: " + ", ".join(f"{count} hosts forks {forks}" for count, forks in plan))
    try:
        for count, forks in plan:
            page = results_dir / page_name(count, forks)
            if args.reuse and page.exists():
                log(f"{count} hosts, forks {forks}: reusing {page}")
                tables[count, forks] = parse_bench_table(page.read_text())
                measured[count, forks] = page_provision(page.read_text()) or "provision (unknown commit)"
                continue
            log(f"lab up {count}")
            lab(["up", str(count)], args)
            work = results_dir / f"work-{count}"
            write_inventories(args, count, work)
            load_start = os.getloadavg()[0]
            table, cpu_log = bench(args, count, forks, tools, work)
            cpu = measured_cpu(cpu_log, tools, args.reps, count)
            text = result_page(table, cpu, count, forks, args, versions, load_start)
            tables[count, forks] = parse_bench_table(text)
            measured[count, forks] = describe_provision(args)
            page.write_text(text)
            log(f"wrote {page}")
    finally:
        if not args.keep_lab:
            log("lab down")
            lab(["down"], args, timeout=600)
    if args.scale:
        write_scale(results_dir, tables, tools, forks_list, args, versions, measured)
    return 0


def write_scale(results_dir: Path, tables: dict[tuple[int, int], list[BenchRow]], tools: list[str],
                forks_list: list[int], args: argparse.Namespace, versions: dict[str, str],
                measured: dict[tuple[int, int], str]) -> None:
    """scale.md (wall time and CPU per host by run) and scale.png (plotted in the peers' virtualenv)."""
    peers = ", ".join(f"{name} {version}" for name, version in versions.items())
    which = set(measured.values())
    provision = which.pop() if len(which) == 1 else "; ".join(
        f"{n} hosts forks {f}: {m}" for (n, f), m in sorted(measured.items()))
    flat = flatness(tables)
    forks_text = ",".join(map(str, forks_list))
    (results_dir / "scale.md").write_text(
        "# converge-50 by number of hosts: wall time and control-host CPU "
        f"({time.strftime('%Y-%m-%d', time.gmtime())})\n\n"
        f"Medians of {args.reps} repetitions, forks {forks_text}, same machine for controller and hosts; "
        f"{provision}; {peers}. "
        "A host count at or below the forks runs every host at once, so it is run once (column without forks). "
        "\"-\": not run. Per-run pages (with the targets): "
        + ", ".join(f"[{n} hosts forks {f}]({page_name(n, f)})" for n, f in sorted(tables))
        + ".\n\n"
        f"Reproduce: `python3 benchmarks/run.py --scale {','.join(str(n) for n in sorted({n for n, _ in tables}))} "
        f"--forks {forks_text} --reps {args.reps}{reproduce_options(args)}`\n\n"
        + scale_tables(tables, tools)
        + ("\nprovision's control-host CPU per host from 10 hosts to the most:\n\n"
           + "".join(f"- {line}\n" for line in flat) if flat else "")
        + "\n![scale](scale.png)\n")
    series: dict[str, object] = dict(scale_series(tables, forks_list))
    series["title"] = f"converge-50, {provision}, medians of {args.reps}"
    data = results_dir / "work-scale" / "series.json"
    data.parent.mkdir(exist_ok=True)
    data.write_text(json.dumps(series))
    run([str(args.venv / "bin" / "python"), str(HERE / "plot_scale.py"), str(data), str(results_dir / "scale.png")],
        timeout=300)
    log(f"wrote {results_dir / 'scale.md'} and scale.png")


if __name__ == "__main__":
    sys.exit(main())
