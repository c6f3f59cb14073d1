"""Job sub-commands beyond the engine's own (update, backup, onboard, vault, ...), one module each.

Each module here defines ``register(commands, common)``: it adds its sub-parser(s) to ``commands``
(with ``parents=[common]`` where the engine's run options apply) and sets ``func`` on each to a
function of the parsed ``args`` returning an exit code. Heavy imports stay inside those functions,
so that ``provision --help`` loads argparse and little else. Modules are registered in name order.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any


def register_all(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add every job module's sub-commands to ``commands`` (argparse's sub-parsers action)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(commands, common)
