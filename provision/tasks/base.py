"""The module contract, as the task modules import it (it lives in ``provision.contract``)."""

from __future__ import annotations

from ..contract import (
    Arg,
    CommandResult,
    Fact,
    FactReadFailed,
    Module,
    Plan,
    PlanContext,
    RenderedTemplate,
    TaskContext,
    TaskResult,
    key_value_args,
    type_name,
)

__all__ = ["Arg", "CommandResult", "Fact", "FactReadFailed", "Module", "Plan", "PlanContext", "RenderedTemplate",
           "TaskContext", "TaskResult", "key_value_args", "type_name"]
