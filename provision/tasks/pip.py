"""pip: Python distributions in a virtualenv (or for an interpreter), editable projects included.

The probe reads ``*.dist-info`` names from the venv's site-packages with sh (no Python start), so a
converged run costs nothing beyond the batched probe. Editable projects and requirements files
are reinstalled only when their metadata changed: the sha256 of each project's metadata files
(and of each requirements file) is kept in a marker file inside the venv, under ``.provision/``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .shell import quote

_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*"
    r"(?P<spec>(?:(?:==|>=|<=|~=|!=|>|<)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*)$"
)
METADATA_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
MARKER_DIR = ".provision"
PIP_ENV = "export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1\n"


def probe_values(state: str | None) -> dict[str, list[str]]:
    """``key=value`` lines, every value of a key in order."""
    values: dict[str, list[str]] = {}
    for line in (state or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    return values


def normalize_name(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_dists(stems: list[str]) -> dict[str, str]:
    """``name-version`` stems (dist-info, egg-info, egg-link) → {normalized name: version}."""
    dists: dict[str, str] = {}
    for stem in stems:
        name, _, rest = stem.partition("-")
        dists[normalize_name(name)] = rest.split("-py")[0] if rest else ""
    return dists


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:4])


def satisfies(installed: str, spec: str) -> bool:
    """A small subset of PEP 440: ==, !=, >=, <=, >, <, ~= on release numbers (== allows a * glob)."""
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op = re.match(r"==|>=|<=|~=|!=|>|<", clause)
        if not op:
            return False
        wanted = clause[op.end():].strip()
        have, want = _release(installed), _release(wanted)
        prefix = max(len(want) - 1, 1)
        ok = {
            "==": installed == wanted or (wanted.endswith("*") and installed.startswith(wanted.rstrip("*"))),
            "!=": installed != wanted,
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
            "~=": have >= want and have[:prefix] == want[:prefix],
        }[op.group()]
        if not ok:
            return False
    return True


def editable_marker(path: str) -> str:
    """Marker file name of an editable project (by its directory name)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", path.rstrip("/").rsplit("/", 1)[-1])
    return f"pip-editable-{base}.sha256"


def requirements_marker(path: str) -> str:
    """Marker file name of a requirements file (by a hash of its path)."""
    return f"pip-requirements-{hashlib.sha256(path.encode()).hexdigest()[:16]}.sha256"


@dataclass
class PipPlan:
    """What to install or remove, and the markers to write afterwards."""

    names: list[str] = field(default_factory=list)
    requirements: bool = False
    editables: list[str] = field(default_factory=list)
    uninstall: list[str] = field(default_factory=list)
    markers: dict[str, str] = field(default_factory=dict)  # marker file name -> content

    @property
    def empty(self) -> bool:
        return not (self.names or self.requirements or self.editables or self.uninstall)


def make_plan(args: dict[str, Any], values: dict[str, list[str]]) -> PipPlan:
    """Compare the wanted state with the probe's values."""
    dists = parse_dists(values.get("dist", []))
    plan = PipPlan()
    wanted = [_REQUIREMENT.match(n) for n in args["name"] or []]
    if args["state"] == "absent":
        plan.uninstall = [m["name"] for m in wanted if m and normalize_name(m["name"]) in dists]
        return plan
    latest = args["state"] == "latest"
    for match in wanted:
        assert match is not None  # check_args refused the others
        have = dists.get(normalize_name(match["name"]))
        if latest or have is None or (match["spec"] and not satisfies(have, match["spec"])):
            plan.names.append(match.group(0))
    if args["requirements"]:
        digest, mark = values.get("req", [""])[0], values.get("reqmark", [""])[0]
        if latest or digest != mark:
            plan.requirements = True
            plan.markers[requirements_marker(args["requirements"])] = digest
    digests, names, marks = values.get("edit", []), values.get("editname", []), values.get("editmark", [])
    for index, path in enumerate(args["editable"] or []):
        digest = digests[index] if index < len(digests) else ""
        name = (names[index] if index < len(names) else "") or path.rstrip("/").rsplit("/", 1)[-1]
        mark = marks[index] if index < len(marks) else ""
        if mark != f"{digest} {path}" or normalize_name(name) not in dists:
            plan.editables.append(path)
            plan.markers[editable_marker(path)] = f"{digest} {path}"
    return plan


class Pip(Module):
    """Install Python distributions with pip, into a virtualenv.

    name: distributions, "pkg==1.2" (or >=, ~=, ...) pins
    requirements: a requirements file on the host (reinstalled when its sha256 changes)
    editable: local project paths installed with -e (reinstalled when their metadata files change)
    virtualenv: the venv to install into (created with python3 -m venv when missing)
    state: present | latest | absent
    extra_args: more pip install arguments ("--no-index --find-links /srv/wheels")
    executable: the pip to run when there is no virtualenv argument
    """

    name = "pip"
    args = {
        "name": Arg(list, help="distributions, \"pkg==1.2\" (or >=, ~=, ...) pins"),
        "requirements": Arg(str, help="a requirements file on the host (reinstalled when its sha256 changes)"),
        "editable": Arg(list,
                        help="local project paths installed with -e (reinstalled when their metadata files change)"),
        "virtualenv": Arg(str, aliases=("venv",),
                          help="the venv to install into (created with python3 -m venv when missing)"),
        "state": Arg(str, default="present", choices=("present", "latest", "absent"), help="present | latest | absent"),
        "extra_args": Arg(str, default="", help="more pip install arguments (\"--no-index --find-links /srv/wheels\")"),
        "executable": Arg(str, help="the pip to run when there is no virtualenv argument"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if not (args["name"] or args["requirements"] or args["editable"]):
            raise ArgumentError("pip: give name, requirements or editable")
        for name in args["name"] or []:
            if not _REQUIREMENT.match(str(name)):
                raise ArgumentError(f"pip: {name!r} is not a distribution name with an optional version pin",
                                    hint="put URLs and VCS links in a requirements file")
        if args["state"] == "absent" and (args["requirements"] or args["editable"]):
            raise ArgumentError("pip: state absent takes names only")
        paths = [args["virtualenv"], args["requirements"], *(args["editable"] or [])]
        if any(p and not str(p).startswith("/") for p in paths):
            raise ArgumentError("pip: virtualenv, requirements and editable paths must be absolute")
        try:
            shlex.split(args["extra_args"] or "")
        except ValueError as exc:
            raise ArgumentError(f"pip: extra_args cannot be split: {exc}") from None

    def _locate(self, args: dict[str, Any]) -> str:
        """Shell that sets _pv_venv (maybe empty) and _pv_mk (the marker directory)."""
        if args["virtualenv"]:
            lines = [f"_pv_venv={quote(args['virtualenv'].rstrip('/'))}"]
        elif args["executable"]:
            lines = [f'_pv_e=$(command -v {quote(args["executable"])} || true); _pv_venv=""',
                     'if [ -n "$_pv_e" ] && [ -f "$(dirname "$(dirname "$_pv_e")")/pyvenv.cfg" ]; then '
                     '_pv_venv=$(dirname "$(dirname "$_pv_e")"); fi']
        else:
            lines = ['_pv_venv=""']
        lines.append(f'if [ -n "$_pv_venv" ]; then _pv_mk="$_pv_venv/{MARKER_DIR}"; '
                     'else _pv_mk="${XDG_STATE_HOME:-$HOME/.local/state}/provision"; fi')
        return "\n".join(lines) + "\n"

    def _listing(self, args: dict[str, Any]) -> str:
        """Shell printing ``dist=name-version`` for every installed distribution."""
        return (
            'if [ -n "$_pv_venv" ]; then\n'
            '  for _pv_s in "$_pv_venv"/lib/python*/site-packages; do [ -d "$_pv_s" ] && ls "$_pv_s"; done '
            "| sed -n 's/\\.dist-info$//p; s/\\.egg-info$//p; s/\\.egg-link$//p' | sed 's/^/dist=/'\n"
            f"else {self._pip(args)} list --format=freeze 2>/dev/null "
            "| sed -n 's/^\\([^=]*\\)==\\(.*\\)$/dist=\\1-\\2/p'; fi\n"
        )

    def _pip(self, args: dict[str, Any]) -> str:
        if args["virtualenv"]:
            return quote(args["virtualenv"].rstrip("/") + "/bin/python") + " -m pip"
        return quote(args["executable"]) if args["executable"] else "python3 -m pip"

    def facts(self, args: dict[str, Any]) -> Probe[dict[str, list[str]]]:
        return Probe(self._probe(args), probe_values)

    def _probe(self, args: dict[str, Any]) -> str:
        lines = [self._locate(args) + self._listing(args)]
        if args["requirements"]:
            r = quote(args["requirements"])
            lines.append(f'if [ -f {r} ]; then echo "req=$(sha256sum < {r} | cut -c1-64)"; else echo req=missing; fi')
            lines.append(f'echo "reqmark=$(cat "$_pv_mk"/{requirements_marker(args["requirements"])} 2>/dev/null)"')
        for path in args["editable"] or []:
            p = quote(path.rstrip("/"))
            files = " ".join(METADATA_FILES)
            lines += [
                f"if [ -d {p} ]; then",
                f'  echo "edit=$(for _pv_f in {files}; do if [ -f {p}/"$_pv_f" ]; then echo "$_pv_f"; '
                f'cat {p}/"$_pv_f"; fi; done | sha256sum | cut -c1-64)"',
                f"  printf editname=; sed -n 's/^name *= *//p' {p}/pyproject.toml {p}/setup.cfg 2>/dev/null "
                "| head -n1 | tr -d '\"\\047 \\r'; echo",
                "else echo edit=missing; echo editname=; fi",
                f'echo "editmark=$(cat "$_pv_mk"/{editable_marker(path)} 2>/dev/null)"',
            ]
        return "\n".join(lines) + "\n"

    def plan(self, args: dict[str, Any], facts: dict[str, list[str]], ctx: PlanContext) -> Plan:
        values = facts
        if values.get("req") == ["missing"]:
            return Plan(error=f"requirements file {args['requirements']} not found on the host")
        missing = [p for p, d in zip(args["editable"] or [], values.get("edit", []), strict=False) if d == "missing"]
        if missing:
            return Plan(error=f"editable project(s) not found on the host: {', '.join(missing)}")
        plan = make_plan(args, values)
        before = parse_dists(values.get("dist", []))
        if plan.empty:
            return Plan(f"{len(before)} distribution(s) installed, nothing to do", data={"installed": []})
        what = self._describe(plan)
        return Plan(what, script=self._change_script(args, plan), check_msg="would " + what, timeout=3600,
                    data={"would_install": plan.names + plan.editables, "would_uninstall": plan.uninstall,
                          "installed": []},
                    outcome=lambda result, _data: self._outcome(args, plan, what, before, result))

    def _outcome(self, args: dict[str, Any], plan: PipPlan, what: str, before: dict[str, str],
                 result: CommandResult) -> TaskResult:
        """What the change did, read from the listing at its end."""
        if not result.ok:
            failed = TaskResult.from_command(f"pip ({what})", result)
            if "externally-managed-environment" in result.stderr:
                failed.msg += "\n  fix: install into a virtualenv (virtualenv: /path/to/env)"
            return failed
        after = parse_dists(probe_values(result.stdout).get("dist", []))
        changed = [{"name": n, "version": v} for n, v in sorted(after.items()) if before.get(n) != v]
        removed = sorted(set(before) - set(after))
        data: dict[str, Any] = {"installed": changed, "removed": removed, "stdout": result.stdout,
                                "stderr": result.stderr}
        if args["state"] == "latest" and not changed and not plan.editables:
            return TaskResult.ok("already at the latest versions", **data)
        return TaskResult.changed(what, **data)

    def _describe(self, plan: PipPlan) -> str:
        parts = []
        if plan.names:
            parts.append("install " + ", ".join(plan.names))
        if plan.requirements:
            parts.append("install the requirements file")
        if plan.editables:
            parts.append("install editable " + ", ".join(plan.editables))
        if plan.uninstall:
            parts.append("uninstall " + ", ".join(plan.uninstall))
        return "; ".join(parts)

    def _change_script(self, args: dict[str, Any], plan: PipPlan) -> str:
        pip = self._pip(args)
        lines = ["set -e", PIP_ENV.rstrip("\n"), self._locate(args).rstrip("\n")]
        if args["virtualenv"]:
            v = quote(args["virtualenv"].rstrip("/"))
            lines.append(f"[ -x {v}/bin/python ] || python3 -m venv {v} >&2")
        if plan.uninstall:
            lines.append(f"{pip} uninstall -y {' '.join(quote(n) for n in plan.uninstall)} >&2")
        else:
            words = ["install"] + (["-U"] if args["state"] == "latest" else [])
            words += [quote(w) for w in shlex.split(args["extra_args"] or "")]
            if plan.requirements:
                words += ["-r", quote(args["requirements"])]
            words += [quote(n) for n in plan.names]
            for path in plan.editables:
                words += ["-e", quote(path)]
            lines.append(f"{pip} {' '.join(words)} >&2")
            if plan.markers:
                lines.append('mkdir -p "$_pv_mk"')
            for marker, content in plan.markers.items():
                lines.append(f'printf "%s\\n" {quote(content)} > "$_pv_mk"/{marker}')
        lines.append(self._listing(args).rstrip("\n"))
        return "\n".join(lines) + "\n"
