"""packages (alias apt): system packages through the host's package manager, in one call.

The probe reads the installed versions of the named packages and the age of the package lists,
so a converged run costs nothing more. apt is implemented and tested; dnf is designed in (probe
and commands written) but has not run against a real dnf host yet.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, PlanContext, TaskResult
from .base import Plan as TaskPlan
from .facts import Probe
from .shell import quote

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.:_-]*$")
# apt-get update sometimes fails on a flaky mirror: try it this many times in all.
UPDATE_TRIES = 3
# ... and sometimes hangs on a proxy that never answers (apt's own timeouts do not end that):
# each try is cut after this many seconds.
UPDATE_SECONDS = 300
STAMP = "/var/lib/apt/periodic/update-success-stamp"


@dataclass(frozen=True)
class Wanted:
    """A package as named in the task: ``nginx`` or ``nginx=1.22*``."""

    name: str
    version: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}" if self.version else self.name

    def satisfied_by(self, installed: str | None) -> bool:
        if installed is None:
            return False
        return self.version is None or fnmatch.fnmatchcase(installed, self.version)


@dataclass
class PackageState:
    """What the probe found: manager, installed versions, list age, candidates (state latest)."""

    manager: str
    installed: dict[str, str] = field(default_factory=dict)
    lists_age: int | None = None  # seconds; None when lists were never fetched
    upgradable: set[str] = field(default_factory=set)


def parse_wanted(names: list[str]) -> list[Wanted]:
    """Split ``pkg=1.2*`` pins; refuse names apt would read as options."""
    wanted = []
    for raw in names:
        name, _, version = str(raw).strip().partition("=")
        if not _NAME.match(name):
            raise ArgumentError(f"packages: {raw!r} is not a package name")
        wanted.append(Wanted(name, version or None))
    return wanted


class PackageManager:
    """What a package manager must provide: a probe, its parser, and the change script."""

    name = ""

    def probe(self, names: list[str], latest: bool) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> PackageState:
        raise NotImplementedError

    def change_script(self, *, update: bool, install: list[str], remove: list[str], args: dict[str, Any]) -> str:
        raise NotImplementedError


class Apt(PackageManager):
    """Debian/Ubuntu: dpkg-query for state, apt-get for changes."""

    name = "apt"

    def probe(self, names: list[str], latest: bool) -> str:
        q = " ".join(quote(n) for n in names)
        lines = [
            "echo manager=apt",
            "_pv_now=$(date +%s); _pv_m=0",
            f"for _pv_f in {STAMP} /var/lib/apt/lists/partial /var/lib/apt/lists; do",
            '  [ -e "$_pv_f" ] || continue',
            '  _pv_t=$(stat -c %Y "$_pv_f"); if [ "$_pv_t" -gt "$_pv_m" ]; then _pv_m=$_pv_t; fi',
            "done",
            "if ls /var/lib/apt/lists/ 2>/dev/null | grep -q _Packages; then echo \"age=$((_pv_now - _pv_m))\"; "
            "else echo age=never; fi",
            f"dpkg-query -W -f='pkg=${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {q} 2>/dev/null || true",
        ]
        if latest:
            # Installed vs candidate, from the current lists (no network).
            lines.append(f"LC_ALL=C apt-cache policy {q} 2>/dev/null | awk '/^[^ ]/{{p=$1; sub(/:$/, \"\", p)}} "
                         "/Installed:/{i=$2} /Candidate:/{if (i != $2 && i != \"(none)\") print \"upgradable=\" p}'")
        return "\n".join(lines) + "\n"

    def parse(self, text: str) -> PackageState:
        state = PackageState("apt")
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "age":
                state.lists_age = int(value) if value.isdigit() else None
            elif key == "pkg":
                fields = value.split("\t")
                if len(fields) >= 3 and len(fields[1]) >= 2 and fields[1][1] == "i":
                    state.installed[fields[0]] = fields[2]
            elif key == "upgradable":
                state.upgradable.add(value)
        return state

    def change_script(self, *, update: bool, install: list[str], remove: list[str], args: dict[str, Any]) -> str:
        apt = "DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout=300"
        lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive"]
        if update:
            lines += [
                "_pv_try=1",
                f"until timeout -k 10 {UPDATE_SECONDS} apt-get -y -o DPkg::Lock::Timeout=120 update >&2; do",
                f'  if [ "$_pv_try" -ge {UPDATE_TRIES} ]; then echo "apt-get update failed {UPDATE_TRIES} times '
                f'(each try is cut after {UPDATE_SECONDS} s)" >&2; exit 11; fi',
                "  _pv_try=$((_pv_try + 1)); sleep 3",
                "done",
                f"mkdir -p {STAMP.rsplit('/', 1)[0]} && touch {STAMP}",
            ]
        if install:
            options = "" if args["install_recommends"] else " --no-install-recommends"
            if any("=" in spec for spec in install):
                options += " --allow-downgrades"
            lines.append(f"{apt}{options} install {' '.join(quote(s) for s in install)} >&2")
        if remove:
            verb = "purge" if args["purge"] else "remove"
            lines.append(f"{apt} {verb} {' '.join(quote(s) for s in remove)} >&2")
        names = " ".join(quote(s.split("=")[0]) for s in install + remove)
        if names:
            lines.append(f"dpkg-query -W -f='pkg=${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {names} "
                         "2>/dev/null || true")
        return "\n".join(lines) + "\n"


class Dnf(PackageManager):
    """Fedora/RHEL. UNTESTED: written to the same contract as Apt, not yet run on a dnf host."""

    name = "dnf"

    def probe(self, names: list[str], latest: bool) -> str:
        q = " ".join(quote(n) for n in names)
        lines = [
            "echo manager=dnf",
            "_pv_m=$(stat -c %Y /var/cache/dnf/expired_repos.json /var/cache/dnf 2>/dev/null | sort -n | tail -1)",
            'if [ -n "$_pv_m" ]; then echo "age=$(( $(date +%s) - _pv_m ))"; else echo age=never; fi',
            f"rpm -q --qf 'pkg=%{{NAME}}\\tii\\t%{{VERSION}}-%{{RELEASE}}\\n' {q} 2>/dev/null | grep '^pkg=' || true",
        ]
        if latest:
            lines.append(f"dnf -q -C check-update {q} 2>/dev/null | awk 'NF==3{{sub(/\\..*/, \"\", $1); "
                         "print \"upgradable=\" $1}' || true")
        return "\n".join(lines) + "\n"

    def parse(self, text: str) -> PackageState:
        state = Apt().parse(text)
        state.manager = "dnf"
        return state

    def change_script(self, *, update: bool, install: list[str], remove: list[str], args: dict[str, Any]) -> str:
        dnf = "dnf -y"
        if not args["install_recommends"]:
            dnf += " --setopt=install_weak_deps=False"
        lines = ["set -e"]
        if update:
            lines.append("dnf -y makecache >&2 || { sleep 3; dnf -y makecache >&2; }")
        if install:
            # dnf takes name-version globs: nginx-1.22*
            specs = [s.replace("=", "-", 1) for s in install]
            lines.append(f"{dnf} install {' '.join(quote(s) for s in specs)} >&2")
            if args["state"] == "latest":
                lines.append(f"{dnf} upgrade {' '.join(quote(s.split('=')[0]) for s in install)} >&2")
        if remove:
            lines.append(f"{dnf} remove {' '.join(quote(s) for s in remove)} >&2")
        names = " ".join(quote(s.split("=")[0]) for s in install + remove)
        if names:
            lines.append(f"rpm -q --qf 'pkg=%{{NAME}}\\tii\\t%{{VERSION}}-%{{RELEASE}}\\n' {names} 2>/dev/null "
                         "| grep '^pkg=' || true")
        return "\n".join(lines) + "\n"


MANAGERS: dict[str, PackageManager] = {"apt": Apt(), "dnf": Dnf()}


@dataclass
class Plan:
    """What to do: install/remove specs and whether to refresh the lists first."""

    install: list[str]
    remove: list[str]
    update: bool


def make_plan(wanted: list[Wanted], current: PackageState, args: dict[str, Any]) -> Plan:
    """Compare the wanted packages with the probe's view."""
    state = args["state"]
    if state == "absent":
        return Plan([], [w.name for w in wanted if w.name in current.installed], False)
    install = [w.spec for w in wanted if not w.satisfied_by(current.installed.get(w.name))]
    stale = current.lists_age is None or current.lists_age > (args["cache_valid_time"] or 0)
    refresh_asked = bool(args["update_cache"] or args["cache_valid_time"])
    # state latest must compare against fresh lists; present only needs them to install something.
    update = refresh_asked and stale and (bool(install) or state == "latest")
    if state == "latest":
        # After a refresh any of them may have a newer candidate: apt-get install upgrades those only.
        install = [w.spec for w in wanted] if update else install + [
            w.spec for w in wanted if w.spec not in install and w.name in current.upgradable]
    return Plan(install, [], update)


class Packages(Module):
    """Install, upgrade or remove system packages (apt; dnf designed in, untested).

    name: packages, a list or "a,b"; "pkg=1.2*" pins a version (glob)
    state: present | absent | latest
    update_cache: refresh the package lists first (only when something is to be installed, or latest)
    cache_valid_time: seconds; refresh only when the lists are older (implies update_cache)
    install_recommends: install recommended packages too (default true, as apt)
    purge: with state absent, purge config files as well
    manager: auto | apt | dnf
    """

    name = "packages"
    args = {
        "name": Arg(list, required=True, aliases=("pkg", "names"),
                    help="packages, a list or \"a,b\"; \"pkg=1.2*\" pins a version (glob)"),
        "state": Arg(str, default="present", choices=("present", "absent", "latest"), help="present | absent | latest"),
        "update_cache": Arg(bool, default=False,
                            help="refresh the package lists first (only when something is to be installed, or latest)"),
        "cache_valid_time": Arg(int, default=0,
                                help="seconds; refresh only when the lists are older (implies update_cache)"),
        "install_recommends": Arg(bool, default=True, help="install recommended packages too (default true, as apt)"),
        "purge": Arg(bool, default=False, help="with state absent, purge config files as well"),
        "manager": Arg(str, default="auto", choices=("auto", "apt", "dnf"), help="auto | apt | dnf"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        wanted = parse_wanted(args["name"])
        if args["state"] == "absent" and any(w.version for w in wanted):
            raise ArgumentError("packages: state absent takes names without versions")
        if (args["cache_valid_time"] or 0) < 0:
            raise ArgumentError("packages: cache_valid_time must be >= 0")

    def facts(self, args: dict[str, Any]) -> Probe[str]:
        return Probe(self._probe(args), str)

    def _probe(self, args: dict[str, Any]) -> str:
        names = [w.name for w in parse_wanted(args["name"])]
        latest = args["state"] == "latest"
        if args["manager"] != "auto":
            return MANAGERS[args["manager"]].probe(names, latest)
        return (
            "if command -v dpkg-query >/dev/null 2>&1; then\n" + Apt().probe(names, latest)
            + "elif command -v dnf >/dev/null 2>&1; then\n" + Dnf().probe(names, latest)
            + "else echo manager=none; fi\n"
        )

    def plan(self, args: dict[str, Any], facts: str, ctx: PlanContext) -> TaskPlan:
        text = facts
        manager_name = next((ln[8:] for ln in text.splitlines() if ln.startswith("manager=")), "none")
        manager = MANAGERS.get(manager_name)
        if manager is None:
            return TaskPlan(error="packages: no supported package manager on the host (apt or dnf)")
        wanted = parse_wanted(args["name"])
        current = manager.parse(text)
        plan = make_plan(wanted, current, args)
        if not plan.install and not plan.remove and not plan.update:
            return TaskPlan(f"{len(wanted)} package(s) {args['state']}", data={"installed": [], "removed": []})
        what = [f"install {', '.join(plan.install)}"] if plan.install else []
        what += [f"remove {', '.join(plan.remove)}"] if plan.remove else []
        what += ["update the package lists"] if plan.update else []

        def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult:
            if not result.ok:
                failed = TaskResult.from_command(f"{manager.name} ({', '.join(plan.install + plan.remove)})", result)
                if result.rc == 11:
                    failed.msg = ("apt-get update failed 3 times\n" + result.tail()
                                  + "\n  fix: check the host's apt sources")
                elif "Unable to locate package" in result.stderr and not plan.update:
                    failed.msg += "\n  fix: add update_cache: true (the package lists may be missing or old)"
                return failed
            after = manager.parse(result.stdout).installed
            return summarize(current.installed, after, plan, result.stdout, result.stderr)

        script = manager.change_script(update=plan.update, install=plan.install, remove=plan.remove, args=args)
        return TaskPlan("changed packages", script=script, check_msg="would " + "; ".join(what), outcome=outcome,
                        data={"would_install": plan.install, "would_remove": plan.remove, "installed": [],
                              "removed": []}, timeout=3600)


def summarize(before: dict[str, str], after: dict[str, str], plan: Plan, stdout: str, stderr: str) -> TaskResult:
    """The result after a change: what got installed/upgraded/removed, with versions."""
    installed = [{"name": n, "version": v} for n, v in sorted(after.items()) if before.get(n) != v]
    removed = [{"name": n, "version": before.get(n, "")} for n in plan.remove if n not in after]
    parts = [f"{p['name']} {p['version']}" for p in installed]
    parts += [f"removed {p['name']}" for p in removed]
    data: dict[str, Any] = {"installed": installed, "removed": removed, "cache_updated": plan.update,
                            "stdout": stdout, "stderr": stderr}
    if not parts:
        return TaskResult.ok("package lists updated; nothing to install", **data)
    return TaskResult.changed(", ".join(parts), **data)
