"""Plot how converge-50's wall time grows with hosts, per tool: ``plot_scale.py SERIES.json OUT.png``.

Runs in the peers' virtualenv (it has matplotlib); SERIES.json is what run.py writes for ``--scale``:
``{"<tool> <phase>": {"hosts": [...], "seconds": [...]}, "title": "..."}``.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any


def plot(series: dict[str, Any], out: str) -> None:
    """Two panels (cold, warm), one line per tool, log time axis (the tools differ by 10-50x)."""
    # Imported by name: matplotlib lives in the peers' virtualenv, not beside provision.
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    title = series.pop("title", "converge-50")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, phase in zip(axes, ("cold", "warm"), strict=True):
        for name, data in sorted(series.items()):
            tool, _, which = name.rpartition(" ")
            if which != phase:
                continue
            points = [(h, s) for h, s in zip(data["hosts"], data["seconds"], strict=True) if s is not None]
            if not points:
                continue
            style = {"linewidth": 2.6, "color": "black"} if tool == "provision" else {"linewidth": 1.4}
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=tool, **style)
        ax.set_title(f"{phase} run (converged)" if phase == "warm" else f"{phase} run (everything changes)")
        ax.set_xlabel("hosts")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("wall time, median (s, log scale)")
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
