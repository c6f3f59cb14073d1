"""Task modules, one file each, found by name (see ``provision.registry``).

A playbook names a module (``file:``, ``template:``, ``packages:`` …); ``get_module`` imports its
file on first use only, so the CLI's start-up stays small.
"""

from __future__ import annotations

from ..registry import get_module, module_names
from .base import Arg, CommandResult, Module, TaskContext, TaskResult

__all__ = ["Arg", "CommandResult", "Module", "TaskContext", "TaskResult", "get_module", "module_names"]
