"""Which task module a playbook's module name means; a module's file is imported on first use only.

The engine finds modules here, by name, and never imports ``provision.tasks`` itself: a new module
is a file in ``provision/tasks/`` and one line below.
"""

from __future__ import annotations

import importlib

from .contract import Module

# module name -> "file:Class". Aliases (shell → command) point at the same class.
_REGISTRY: dict[str, str] = {
    "command": "command:Command",
    "shell": "command:Shell",
    "file": "file:File",
    "copy": "copy:Copy",
    "template": "template:Template",
    "lineinfile": "lineinfile:LineInFile",
    "packages": "packages:Packages",
    "apt": "packages:Packages",
    "user": "user:User",
    "group": "user:Group",
    "git": "git:Git",
    "venv": "venv:Venv",
    "pip": "venv:Pip",
    "service": "service:Service",
    "supervisor": "supervisor:Supervisor",
    "cron": "cron:Cron",
    "wait_for": "wait_for:WaitFor",
    "http_check": "wait_for:HttpCheck",
    "fetch": "fetch:Fetch",
    "debug": "control:Debug",
    "assert": "control:Assert",
    "set_fact": "control:SetFact",
    "fail": "control:Fail",
    "pause": "control:Pause",
    "meta": "control:Meta",
    "ping": "control:Ping",
    "mariadb": "mariadb:MariaDB",
    "site": "site:Site",
    "certificate": "certificate:Certificate",
    "firewall": "firewall:Firewall",
}

_loaded: dict[str, type[Module]] = {}


def module_names() -> list[str]:
    """Every module name a task may use."""
    return sorted(_REGISTRY)


def get_module(name: str) -> type[Module] | None:
    """The module class for ``name``, or None if there is none."""
    if name in _loaded:
        return _loaded[name]
    target = _REGISTRY.get(name)
    if target is None:
        return None
    file, cls_name = target.split(":")
    cls: type[Module] = getattr(importlib.import_module(f"provision.tasks.{file}"), cls_name)
    _loaded[name] = cls
    return cls
