"""Plot converge-50 by number of hosts, per tool: ``plot_scale.py SERIES.json OUT.png``.

Runs in the peers' virtualenv (it has matplotlib); SERIES.json is what run.py writes for ``--scale``:
``{"<tool> <phase> f<forks>": {"hosts": [...], "seconds": [...], "cpu_per_host": [...]}, "title": "..."}``.
Four panels: wall time (top) and control-host CPU seconds per host (bottom), cold and warm; one
colour per tool, a solid line for the smallest forks, dashed for the next.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

STYLES = ("-", "--", ":", "-.")


def plot(series: dict[str, Any], out: str) -> None:
    # Imported by name: matplotlib lives in the peers' virtualenv, not beside provision.
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    title = series.pop("title", "converge-50")
    parsed = [(name.rsplit(" ", 2), data) for name, data in series.items()]
    tools = sorted({tool for (tool, _, _), _ in parsed})
    forks = sorted({fork for (_, _, fork), _ in parsed}, key=lambda f: int(f.lstrip("f")))
    colours = {tool: f"C{i}" for i, tool in enumerate(tools)}
    colours["provision"] = "black"
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    for column, phase in enumerate(("cold", "warm")):
        for row, (key, label) in enumerate((("seconds", "wall time, median (s, log)"),
                                            ("cpu_per_host", "control CPU s per host, median (log)"))):
            ax = axes[row][column]
            for (tool, which, fork), data in sorted(parsed):
                if which != phase:
                    continue
                points = [(h, v) for h, v in zip(data["hosts"], data.get(key, []), strict=False) if v]
                if not points:
                    continue
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colours[tool],
                        linestyle=STYLES[forks.index(fork) % len(STYLES)],
                        linewidth=2.4 if tool == "provision" else 1.3, label=f"{tool} forks {fork[1:]}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title("cold run (everything changes)" if phase == "cold" else "warm run (converged)")
            else:
                ax.set_xlabel("hosts")
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        plot(json.load(fh), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
