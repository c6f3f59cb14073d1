"""Pure helpers of the benchmark runner: inventories in, markdown tables out (no I/O, unit-tested)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REFERENCE_TOOL = "provision"


@dataclass(frozen=True)
class BenchRow:
    """One line of run_bench.py's table: a tool's median wall time in one phase."""

    tool: str
    phase: str
    median_s: float
    cells: tuple[str, ...]


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


def _row(line: str) -> BenchRow | None:
    if not line.startswith("| ") or line.startswith("| tool "):
        return None
    cells = _cells(line)
    try:
        return BenchRow(cells[0], cells[1], float(cells[2]), cells)
    except (IndexError, ValueError):
        return None


def parse_bench_table(markdown: str) -> list[BenchRow]:
    """The rows of run_bench.py's medians table (columns: tool, phase, median, …)."""
    return [row for row in map(_row, markdown.splitlines()) if row is not None]


def ratio(rows: Sequence[BenchRow], row: BenchRow, reference: str = REFERENCE_TOOL) -> float | None:
    """``row``'s median divided by the reference tool's median in the same phase."""
    base = next((r.median_s for r in rows if r.tool == reference and r.phase == row.phase), None)
    if base is None or base <= 0:
        return None
    return row.median_s / base


def with_ratio_column(markdown: str, reference: str = REFERENCE_TOOL) -> str:
    """run_bench.py's table with a column "x provision" after the median: each tool's median over
    provision's in the same phase."""
    rows = parse_bench_table(markdown)
    out = []
    for line in markdown.splitlines():
        row = _row(line)
        if line.startswith("| tool "):
            cells = list(_cells(line))
            line = "| " + " | ".join([*cells[:3], f"x {reference}", *cells[3:]]) + " |"
        elif line.startswith("|---"):
            line = "|---" + line
        elif row is not None:
            cells = list(row.cells)
            line = "| " + " | ".join([*cells[:3], format_ratio(ratio(rows, row, reference)), *cells[3:]]) + " |"
        out.append(line)
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def format_ratio(value: float | None) -> str:
    """``4.20x`` (two significant digits below 10), or ``-``."""
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def scale_table(results: Mapping[int, Sequence[BenchRow]], tools: Iterable[str]) -> str:
    """Markdown: median seconds per tool and phase (rows) for each host count (columns)."""
    counts = sorted(results)
    lines = ["| tool | phase | " + " | ".join(f"{n} host{'s' if n != 1 else ''}" for n in counts) + " |",
             "|---|---|" + "---|" * len(counts)]
    for tool in tools:
        for phase in ("cold", "warm"):
            cells = []
            for count in counts:
                row = next((r for r in results[count] if r.tool == tool and r.phase == phase), None)
                if row is None:
                    cells.append("-")
                    continue
                value = ratio(results[count], row)
                cells.append(f"{row.median_s:.2f} s" + (f" ({format_ratio(value)})" if tool != REFERENCE_TOOL
                                                        and value is not None else ""))
            if any(cell != "-" for cell in cells):
                lines.append(f"| {tool} | {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scale_series(results: Mapping[int, Sequence[BenchRow]]) -> dict[str, dict[str, list[float | None]]]:
    """``{"<tool> <phase>": {"hosts": [...], "seconds": [...]}}`` for the plot (JSON-friendly)."""
    counts = sorted(results)
    names = dict.fromkeys((r.tool, r.phase) for n in counts for r in results[n])
    series: dict[str, dict[str, list[float | None]]] = {}
    for tool, phase in names:
        seconds: list[float | None] = []
        for count in counts:
            row = next((r for r in results[count] if r.tool == tool and r.phase == phase), None)
            seconds.append(row.median_s if row else None)
        series[f"{tool} {phase}"] = {"hosts": [float(n) for n in counts], "seconds": seconds}
    return series


def page_provision(page: str) -> str | None:
    """Which provision a result page measured ("provision at commit abc123…"), if it says."""
    match = re.search(r"provision (at commit [0-9a-f]+|from the working tree)", page)
    return match.group(0) if match else None
