"""Pure helpers of ``jobs.py``: seconds a site did not answer, where a run's time went, the result page.

No I/O, unit-tested in tests/unit/test_benchmarks.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobRun:
    """One measured ``provision`` run: what it was, how long, what it did, where the time went."""

    name: str
    command: str
    wall_s: float
    rc: int
    sessions: dict[str, int]  # SSH sessions per host (sshd log)
    recap: dict[str, dict[str, int]]  # per host: ok, changed, failed, ...
    stamped: list[tuple[float, dict[str, Any]]]  # (seconds since start, JSON event) as they arrived
    unanswered: dict[str, float] = field(default_factory=dict)  # site -> seconds it did not answer
    requests: dict[str, int] = field(default_factory=dict)  # site -> requests sent


def unanswered_seconds(samples: Sequence[tuple[float, bool]]) -> float:
    """Seconds a site did not answer, from (time, answered) samples of a request loop in time order.

    An outage runs from its first failed request to the next answered one (or the last sample):
    the time between two samples on either side of it is counted, so the figure is an upper bound
    by at most one loop interval per outage.
    """
    total = 0.0
    down_since: float | None = None
    for when, answered in samples:
        if not answered and down_since is None:
            down_since = when
        elif answered and down_since is not None:
            total += when - down_since
            down_since = None
    if down_since is not None and samples:
        total += samples[-1][0] - down_since
    return total


def task_events(stamped: Sequence[tuple[float, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    return [event for _, event in stamped if event.get("event") == "task"]


def slowest(stamped: Sequence[tuple[float, Mapping[str, Any]]], count: int = 8) -> list[tuple[str, str, float, str]]:
    """The ``count`` slowest tasks or steps: (host, task [item], seconds, status), slowest first."""
    rows = []
    for event in task_events(stamped):
        name = str(event.get("task", "?"))
        label = event.get("label")
        if label:
            name = f"{name} [{label}]"
        rows.append((str(event.get("host", "?")), name, float(event.get("duration") or 0.0),
                     str(event.get("status", "?"))))
    return sorted(rows, key=lambda row: -row[2])[:count]


def first_task_at(stamped: Sequence[tuple[float, Mapping[str, Any]]]) -> float | None:
    """When the first task result arrived: start-up, inventory, connects and facts come before it."""
    return next((when for when, event in stamped if event.get("event") == "task"), None)


def totals(recap: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """ok / changed / failed summed over the hosts of a recap."""
    out = {"ok": 0, "changed": 0, "failed": 0}
    for stats in recap.values():
        for key in out:
            out[key] += int(stats.get(key, 0))
    return out


def _per_host(values: Mapping[str, int | float]) -> str:
    return ", ".join(f"{host} {value:g}" for host, value in sorted(values.items())) or "-"


def summary_table(runs: Sequence[JobRun]) -> str:
    """Markdown: one row per run."""
    lines = ["| run | wall s | rc | sessions per host | tasks ok / changed / failed | first task result at |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        counts = totals(run.recap)
        first = first_task_at(run.stamped)
        lines.append(f"| {run.name} | {run.wall_s:.1f} | {run.rc} | {_per_host(run.sessions)} | "
                     f"{counts['ok']} / {counts['changed']} / {counts['failed']} | "
                     f"{'-' if first is None else f'{first:.1f} s'} |")
    return "\n".join(lines) + "\n"


def where_time_goes(run: JobRun, count: int = 8) -> str:
    """Markdown: a run's slowest tasks or steps (durations from its JSON events)."""
    rows = slowest(run.stamped, count)
    if not rows:
        return f"### {run.name}\n\nno task events.\n"
    lines = [f"### {run.name} ({run.wall_s:.1f} s)", "", "| host | task or step | seconds | status |",
             "|---|---|---|---|"]
    lines += [f"| {host} | {name.replace('|', '/')} | {seconds:.2f} | {status} |"
              for host, name, seconds, status in rows]
    return "\n".join(lines) + "\n"


def unanswered_table(run: JobRun) -> str:
    """Markdown: per site, requests sent during the run and the seconds it did not answer."""
    lines = ["| site | requests | seconds not answered |", "|---|---|---|"]
    lines += [f"| {site} | {run.requests.get(site, 0)} | {seconds:.1f} |"
              for site, seconds in sorted(run.unanswered.items())]
    return "\n".join(lines) + "\n"
