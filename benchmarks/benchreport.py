"""Pure helpers of the benchmark runner: inventories in, markdown tables out (no I/O, unit-tested)."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REFERENCE_TOOL = "provision"
PYINFRA_TOOL = "pyinfra"
TARGET_HOSTS = 10
TARGET_REPS = 3


FLOOR_TOOL = "openssh-floor"
RATIO_COLUMNS = ((FLOOR_TOOL, "x floor"), (REFERENCE_TOOL, "x provision"))
CPU_COLUMN = "CPU s/host"
SESSIONS_COLUMN = "sessions/host"


@dataclass(frozen=True)
class BenchRow:
    """One line of run_bench.py's table: a tool's median wall time in one phase (and the other cells)."""

    tool: str
    phase: str
    median_s: float
    cells: tuple[str, ...]
    header: tuple[str, ...] = ()

    def number(self, column: str) -> float | None:
        """The cell under ``column`` as a number (``-``, ``?`` or a missing column: None)."""
        if column not in self.header:
            return None
        try:
            return float(self.cells[self.header.index(column)].rstrip("x"))
        except (IndexError, ValueError):
            return None


def first_hosts(tsv_text: str, count: int) -> str:
    """The first ``count`` host lines of a lab hosts.tsv (comments and blanks dropped)."""
    lines = [line for line in tsv_text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) < count:
        raise ValueError(f"hosts.tsv lists {len(lines)} hosts, {count} wanted")
    return "\n".join(lines[:count]) + "\n"


def provision_inventory(neutral: Mapping[str, Any]) -> str:
    """A provision (Ansible YAML) inventory from gen_inventory.py's hosts.json, same 5 host vars."""
    out = ["# Written by benchmarks/run.py from gen_inventory.py's hosts.json.", "all:", "  children:",
           "    lab:", "      hosts:"]
    for host in neutral["hosts"]:
        out.append(f"        {host['name']}:")
        out.append(f"          ssh_host: {json.dumps(host['address'])}")
        out.append(f"          ssh_port: {int(host['port'])}")
        out.extend(f"          {name}: {json.dumps(value)}" for name, value in host["vars"].items())
    out += ["      vars:",
            f"        ssh_user: {json.dumps(neutral['user'])}",
            f"        ssh_private_key_file: {json.dumps(neutral['key'])}",
            f"        ssh_known_hosts_file: {json.dumps(neutral['known_hosts'])}"]
    return "\n".join(out) + "\n"


def _cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


def _row(line: str, header: tuple[str, ...] = ()) -> BenchRow | None:
    if not line.startswith("| ") or line.startswith("| tool "):
        return None
    cells = _cells(line)
    try:
        return BenchRow(cells[0], cells[1], float(cells[2]), cells, header)
    except (IndexError, ValueError):
        return None


def parse_bench_table(markdown: str) -> list[BenchRow]:
    """The rows of run_bench.py's medians table (columns: tool, phase, median, …), each with the header."""
    rows: list[BenchRow] = []
    header: tuple[str, ...] = ()
    for line in markdown.splitlines():
        if line.startswith("| tool "):
            header = _cells(line)
        elif not line.startswith("|"):
            header = ()  # the table ended: the rows of another one (the targets) are not tools
        row = _row(line, header) if header else None
        if row is not None:
            rows.append(row)
    return rows


def ratio(rows: Sequence[BenchRow], row: BenchRow, reference: str = REFERENCE_TOOL) -> float | None:
    """``row``'s median divided by the reference tool's median in the same phase."""
    base = next((r.median_s for r in rows if r.tool == reference and r.phase == row.phase), None)
    if base is None or base <= 0:
        return None
    return row.median_s / base


def with_ratio_column(markdown: str, cpu_per_host: Mapping[tuple[str, str], float] | None = None) -> str:
    """run_bench.py's table with, after the median, "x floor" and "x provision" (each tool's median over
    the OpenSSH floor's and over provision's in the same phase) and "CPU s/host" (``cpu_per_host``:
    control-host CPU seconds per host by (tool, phase); ``-`` where not measured)."""
    rows = parse_bench_table(markdown)
    added = [name for _, name in RATIO_COLUMNS] + [CPU_COLUMN]
    out = []
    for line in markdown.splitlines():
        row = _row(line)
        if line.startswith("| tool "):
            cells = list(_cells(line))
            line = "| " + " | ".join([*cells[:3], *added, *cells[3:]]) + " |"
        elif line.startswith("|---"):
            line = "|---" * len(added) + line
        elif row is not None:
            cells = list(row.cells)
            ratios = [format_ratio(ratio(rows, row, tool)) for tool, _ in RATIO_COLUMNS]
            cpu = (cpu_per_host or {}).get((row.tool, row.phase))
            line = "| " + " | ".join([*cells[:3], *ratios, format_cpu(cpu), *cells[3:]]) + " |"
        out.append(line)
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def format_cpu(seconds: float | None) -> str:
    """``0.052`` (three decimals: a converged host costs tens of milliseconds), or ``-``."""
    return "-" if seconds is None else f"{seconds:.3f}"


def format_ratio(value: float | None) -> str:
    """``4.20x`` (two significant digits below 10), or ``-``."""
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def page_provision(page: str) -> str | None:
    """Which provision a result page measured ("provision at commit abc123…"), if it says."""
    match = re.search(r"provision (at commit [0-9a-f]+|from the working tree)", page)
    return match.group(0) if match else None


# -- control-host CPU (cpu_wrap.py's records) ------------------------------------------------------------


def wrapper_label(tool: str) -> str:
    """The label cpu_wrap.py writes for ``tool``: the peers' Ansible tools all run ``ansible-playbook``."""
    return "ansible-playbook" if tool.startswith("ansible") else tool


def assign_cpu(records: Sequence[Mapping[str, Any]], order: Sequence[str], reps: int,
               phases: Sequence[str] = ("cold", "warm")) -> dict[tuple[str, str], list[float]]:
    """CPU seconds per (tool, phase), one per repetition, from cpu_wrap.py's records in the order written.

    run_bench.py runs repetition by repetition, each tool of ``order`` in turn, each phase in turn, so
    the n-th record is that run's. A ValueError when the records do not fit that sequence (a tool
    that never started, a stray run): better no CPU figure than one given to the wrong tool.
    """
    expected = [(tool, phase) for _ in range(reps) for tool in order for phase in phases]
    if len(records) != len(expected):
        raise ValueError(f"{len(records)} CPU records for {len(expected)} runs")
    out: dict[tuple[str, str], list[float]] = {}
    for record, (tool, phase) in zip(records, expected, strict=True):
        if record.get("label") != wrapper_label(tool):
            raise ValueError(f"CPU record {record.get('label')!r} where {wrapper_label(tool)!r} ran")
        out.setdefault((tool, phase), []).append(float(record["cpu_s"]))
    return out


def cpu_per_host(assigned: Mapping[tuple[str, str], Sequence[float]], hosts: int) -> dict[tuple[str, str], float]:
    """The median CPU seconds of each (tool, phase) divided by the number of hosts."""
    return {key: statistics.median(values) / hosts for key, values in assigned.items() if values}


# -- the targets of issue 17 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One target: provision's ``measure`` in ``phase`` must be at most ``limit``."""

    phase: str
    measure: str  # "x pyinfra", "x floor" or "sessions/host"
    limit: float
    text: str


TARGETS = (
    Target("cold", "x pyinfra", 0.25, "first run at most 1/4 of pyinfra's time"),
    Target("cold", "x floor", 1.5, "first run at most 1.5x the OpenSSH floor (all changes as one script)"),
    Target("cold", SESSIONS_COLUMN, 3, "first run at most 3 SSH sessions per host"),
    Target("warm", "x floor", 1.2, "converged run at most 1.2x the OpenSSH floor (the checks as one script)"),
    Target("warm", SESSIONS_COLUMN, 2, "converged run at most 2 SSH sessions per host"),
)


def target_value(rows: Sequence[BenchRow], target: Target) -> float | None:
    """provision's measured value for ``target`` from a table's medians, or None if a row is missing."""
    mine = next((r for r in rows if r.tool == REFERENCE_TOOL and r.phase == target.phase), None)
    if mine is None:
        return None
    if target.measure == SESSIONS_COLUMN:
        return mine.number(SESSIONS_COLUMN)
    other = PYINFRA_TOOL if target.measure == "x pyinfra" else FLOOR_TOOL
    base = next((r.median_s for r in rows if r.tool == other and r.phase == target.phase), None)
    return mine.median_s / base if base else None


def targets_section(rows: Sequence[BenchRow], *, hosts: int, reps: int) -> str:
    """Markdown: each target, provision's measured median and "met" / "not met" / "not measured"."""
    lines = ["## Targets (issue 17)", ""]
    caveats = []
    if hosts != TARGET_HOSTS:
        caveats.append(f"the targets are set for {TARGET_HOSTS} hosts; this run has {hosts}")
    if reps < TARGET_REPS:
        caveats.append(f"medians of {reps} repetition{'s' if reps != 1 else ''}, the targets want at least "
                       f"{TARGET_REPS}: provisional")
    if caveats:
        lines += ["Note: " + "; ".join(caveats) + ".", ""]
    lines += ["| target | phase | limit | measured | verdict |", "|---|---|---|---|---|"]
    met = missing = 0
    for target in TARGETS:
        value = target_value(rows, target)
        limit = f"{target.limit:g}" if target.measure == SESSIONS_COLUMN else format_ratio(target.limit)
        if value is None:
            shown, verdict = "-", "not measured"
            missing += 1
        else:
            shown = f"{value:g}" if target.measure == SESSIONS_COLUMN else format_ratio(value)
            verdict = "met" if value <= target.limit else "not met"
            met += verdict == "met"
        lines.append(f"| {target.text} | {target.phase} | {limit} | {shown} | {verdict} |")
    lines += ["", f"{met} of {len(TARGETS)} targets met" + (f" ({missing} not measured)." if missing else ".")]
    return "\n".join(lines) + "\n"
