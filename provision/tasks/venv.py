"""venv: a Python virtualenv, recreated when its interpreter's version changes.

``Pip`` (the ``pip`` module) lives in ``pip.py`` and is re-exported here.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .pip import Pip, probe_values
from .shell import quote

__all__ = ["Pip", "Venv"]

_VERSION = re.compile(r"(?:Python\s+)?(\d+)\.(\d+)")


def major_minor(text: str) -> str:
    """"Python 3.11.7" or "3.11.7" → "3.11" ("" when there is no version)."""
    match = _VERSION.match((text or "").strip())
    return f"{match.group(1)}.{match.group(2)}" if match else ""


class Venv(Module):
    """Create (or remove) a Python virtualenv; recreate it when the interpreter's version differs.

    path: the virtualenv directory
    python: interpreter that creates it (default python3)
    system_site_packages: give it access to the system's site-packages
    state: present | absent
    """

    name = "venv"
    args = {
        "path": Arg(str, required=True, aliases=("dest", "virtualenv"), help="the virtualenv directory"),
        "python": Arg(str, default="python3", help="interpreter that creates it (default python3)"),
        "system_site_packages": Arg(bool, default=False, help="give it access to the system's site-packages"),
        "state": Arg(str, default="present", choices=("present", "absent"), help="present | absent"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if not args["path"].startswith("/") or args["path"].rstrip("/") == "":
            raise ArgumentError("venv: path must be an absolute path (not /)")

    def facts(self, args: dict[str, Any]) -> Probe[dict[str, list[str]]]:
        return Probe(self._probe(args), probe_values)

    def _probe(self, args: dict[str, Any]) -> str:
        v = quote(args["path"])
        return (
            f"_pv_v={v}\n"
            'if [ -f "$_pv_v/pyvenv.cfg" ]; then echo venv=yes; '
            "sed -n 's/^version\\(_info\\)\\{0,1\\} *= *\\(.*\\)$/version=\\2/p; "
            "s/^include-system-site-packages *= *\\(.*\\)$/ssp=\\1/p' \"$_pv_v/pyvenv.cfg\"; "
            '[ -x "$_pv_v/bin/python" ] || echo broken=yes; '
            'elif [ -d "$_pv_v" ] && [ -z "$(ls -A "$_pv_v")" ]; then echo venv=no; '
            'elif [ -e "$_pv_v" ]; then echo venv=other; else echo venv=no; fi\n'
            f'echo "want=$({quote(args["python"])} --version 2>&1 | head -1)"\n'
        )

    def plan(self, args: dict[str, Any], facts: dict[str, list[str]], ctx: PlanContext) -> Plan:
        path = args["path"]
        values = facts
        kind = values.get("venv", ["no"])[0]
        have = major_minor(values.get("version", [""])[0])
        want = major_minor(values.get("want", [""])[0])
        data: dict[str, Any] = {"path": path, "python_version": have, "recreated": False}
        if args["state"] == "absent":
            if kind == "no":
                return Plan(f"{path} absent", data=data)
            if kind == "other":
                return Plan(error=f"{path} is not a virtualenv; not removing it", data=data)
            return self._change(f"rm -rf -- {quote(path)}\n", f"removed {path}", data)
        if kind == "other":
            return Plan(error=f"{path} exists and is not a virtualenv\n  fix: remove it or use another path")
        if not want:
            return Plan(error=f"interpreter {args['python']!r} not found on the host: "
                              f"{values.get('want', [''])[0]}\n  fix: install it or set python:")
        create = f"{quote(args['python'])} -m venv{' --system-site-packages' if args['system_site_packages'] else ''}"
        ssp = "true" if args["system_site_packages"] else "false"
        if kind == "no":
            msg, script = f"created {path} (Python {want})", f"{create} {quote(path)}\n"
        elif have != want or "broken" in values:
            why = f"Python {have} -> {want}" if have != want else "its interpreter is gone"
            msg = f"recreated {path} ({why})"
            script = f"rm -rf -- {quote(path)}\n{create} {quote(path)}\n"
            data["recreated"] = True
        elif values.get("ssp", ["false"])[0].strip().lower() != ssp:
            msg = f"{path}: include-system-site-packages = {ssp}"
            script = (f"sed -i 's/^include-system-site-packages *=.*/include-system-site-packages = {ssp}/' "
                      f"{quote(path + '/pyvenv.cfg')}\n")
        else:
            return Plan(f"{path} (Python {have})", data=data)
        data.update(python_version=want, before_version=have or None)
        return self._change("set -e\n" + script, msg, data, check_msg="would: " + msg)

    @staticmethod
    def _change(script: str, msg: str, data: dict[str, Any], check_msg: str | None = None) -> Plan:
        def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult | None:
            if result.ok:
                return None
            failed = TaskResult.from_command(msg, result)
            if "ensurepip" in result.stdout + result.stderr:
                failed.msg += "\n  fix: install the python3-venv package"
            failed.data.update(data)
            return failed

        return Plan(msg, script=script, data=data, check_msg=check_msg, outcome=outcome, timeout=600)
