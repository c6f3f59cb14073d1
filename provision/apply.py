"""The engine's side of the module contract: it decides what check mode means for a module.

A module says whether it can tell what it would change (``supports_check``); the engine skips one
that cannot in check mode, as Ansible does, so no module spells its own check-mode branch for it.
"""

from __future__ import annotations

from typing import Any

from .contract import Module, TaskContext, TaskResult


def execute_module(module: Module, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
    """Run one module on coerced arguments and its probe answer, in the context's mode."""
    if ctx.check and not module.supports_check:
        return TaskResult.skipped(module.check_mode_msg(args))
    return module.run(args, ctx, state)
