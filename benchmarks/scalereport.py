"""Pure helpers of ``run.py --scale``: which (hosts, forks) runs to make, and the tables and plot data
(wall time and control-host CPU per host by host count and forks). No I/O, unit-tested."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from benchreport import CPU_COLUMN, FLOOR_TOOL, REFERENCE_TOOL, BenchRow, format_cpu, format_ratio, ratio

PHASES = ("cold", "warm")
Run = tuple[int, int]  # (hosts, forks)


def scale_plan(counts: Iterable[int], forks: Iterable[int]) -> list[Run]:
    """The (hosts, forks) runs for ``--scale`` x ``--forks``, smallest first.

    Forks at or above the host count all run every host at once: only the smallest such value is
    run (1 or 10 hosts with forks 10 and 50 is one run each, shown under both).
    """
    wanted = sorted(set(forks))
    plan: list[Run] = []
    for count in sorted(set(counts)):
        for fork in wanted:
            plan.append((count, fork))
            if fork >= count:
                break
    return plan


def run_for(results: Mapping[Run, Sequence[BenchRow]], count: int, fork: int) -> Run | None:
    """The run that stands for ``count`` hosts at ``fork`` forks: itself, or the smallest forks >= count."""
    if (count, fork) in results:
        return count, fork
    if fork >= count:
        covering = sorted(f for c, f in results if c == count and f >= count)
        if covering:
            return count, covering[0]
    return None


def _column(count: int, fork: int) -> str:
    hosts = f"{count} host{'s' if count != 1 else ''}"
    return hosts if fork >= count else f"{hosts}, forks {fork}"


def _find(rows: Sequence[BenchRow], tool: str, phase: str) -> BenchRow | None:
    return next((r for r in rows if r.tool == tool and r.phase == phase), None)


def scale_tables(results: Mapping[Run, Sequence[BenchRow]], tools: Iterable[str]) -> str:
    """Two markdown tables, columns per run of the plan: median wall time (with its ratio to the
    OpenSSH floor of the same run), and control-host CPU seconds per host."""
    runs = sorted(results)
    headers = [_column(count, fork) for count, fork in runs]
    wall = ["| tool | phase | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(runs)]
    cpu = list(wall)
    for tool in tools:
        for phase in PHASES:
            wall_cells, cpu_cells = [], []
            for run in runs:
                row = _find(results[run], tool, phase)
                if row is None:
                    wall_cells.append("-")
                    cpu_cells.append("-")
                    continue
                to_floor = ratio(results[run], row, FLOOR_TOOL)
                wall_cells.append(f"{row.median_s:.2f} s" + (f" ({format_ratio(to_floor)})"
                                                              if tool != FLOOR_TOOL and to_floor else ""))
                cpu_cells.append(format_cpu(row.number(CPU_COLUMN)))
            if any(cell != "-" for cell in wall_cells):
                wall.append(f"| {tool} | {phase} | " + " | ".join(wall_cells) + " |")
                cpu.append(f"| {tool} | {phase} | " + " | ".join(cpu_cells) + " |")
    return ("Wall time, median (in brackets: over the OpenSSH floor of the same run)\n\n" + "\n".join(wall)
            + "\n\nControl-host CPU seconds per host, median (user + system of the tool's whole process tree)\n\n"
            + "\n".join(cpu) + "\n")


def flatness(results: Mapping[Run, Sequence[BenchRow]], tool: str = REFERENCE_TOOL, low: int = 10) -> list[str]:
    """Sentences: ``tool``'s CPU per host at the largest host count over that at ``low`` hosts, per forks and phase."""
    counts = sorted({count for count, _ in results})
    if low not in counts or counts[-1] <= low:
        return []
    high = counts[-1]
    out = []
    for fork in sorted({f for _, f in results}):
        low_run, high_run = run_for(results, low, fork), run_for(results, high, fork)
        if low_run is None or high_run is None:
            continue
        for phase in PHASES:
            a, b = _find(results[low_run], tool, phase), _find(results[high_run], tool, phase)
            first = a.number(CPU_COLUMN) if a else None
            last = b.number(CPU_COLUMN) if b else None
            if first and last is not None:
                out.append(f"{tool} {phase}, forks {fork}: {format_cpu(first)} CPU s/host at {low} hosts, "
                           f"{format_cpu(last)} at {high} ({last / first:.2f}x)")
    return out


def scale_series(results: Mapping[Run, Sequence[BenchRow]],
                 forks: Iterable[int]) -> dict[str, dict[str, list[float | None]]]:
    """``{"<tool> <phase> f<forks>": {"hosts", "seconds", "cpu_per_host"}}`` for the plot (JSON-friendly).

    A host count at or below ``forks`` uses the run that covers it (see ``run_for``).
    """
    counts = sorted({count for count, _ in results})
    names = dict.fromkeys((r.tool, r.phase) for rows in results.values() for r in rows)
    series: dict[str, dict[str, list[float | None]]] = {}
    for fork in sorted(set(forks)):
        for tool, phase in names:
            hosts: list[float | None] = []
            seconds: list[float | None] = []
            cpu: list[float | None] = []
            for count in counts:
                run = run_for(results, count, fork)
                row = _find(results[run], tool, phase) if run else None
                if row is None:
                    continue
                hosts.append(float(count))
                seconds.append(row.median_s)
                cpu.append(row.number(CPU_COLUMN))
            if hosts:
                series[f"{tool} {phase} f{fork}"] = {"hosts": hosts, "seconds": seconds, "cpu_per_host": cpu}
    return series
