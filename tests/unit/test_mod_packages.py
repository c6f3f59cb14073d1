"""packages: plans and commands from canned dpkg-query / apt-cache output."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.packages import Apt, Packages, make_plan, parse_wanted
from tests.unit._modrun import FakeContext

pytestmark = pytest.mark.unit

PROBE = (
    "manager=apt\n"
    "age=600\n"
    "pkg=git\tii \t1:2.39.5-0+deb12u3\n"
    "pkg=nginx\tii \t1.22.1-9+deb12u11\n"
    "pkg=oldpkg\trc \t1.0\n"
)



def args(**raw: Any) -> dict[str, Any]:
    coerced = Packages.coerce(Packages.normalize(raw))
    Packages().check_args(coerced)
    return coerced


PLANS = [
    # (args, probe extra lines, install, remove, update)
    ({"name": "git,nginx"}, "", [], [], False),
    ({"name": ["git", "curl"]}, "", ["curl"], [], False),
    ({"name": "oldpkg"}, "", ["oldpkg"], [], False),  # config-files only is not installed
    ({"name": "git=1:2.39*"}, "", [], [], False),
    ({"name": "git=1:2.40*"}, "", ["git=1:2.40*"], [], False),
    ({"name": "git,curl", "update_cache": True}, "", ["curl"], [], True),
    ({"name": "git", "update_cache": True}, "", [], [], False),  # converged: no refresh
    ({"name": "curl", "cache_valid_time": 3600}, "", ["curl"], [], False),  # lists fresh enough
    ({"name": "curl", "cache_valid_time": 60}, "", ["curl"], [], True),
    ({"name": "git,curl", "state": "absent"}, "", [], ["git"], False),
    ({"name": "git,nginx", "state": "latest"}, "upgradable=nginx\n", ["nginx"], [], False),
    ({"name": "git,nginx", "state": "latest", "update_cache": True}, "", ["git", "nginx"], [], True),
]


@pytest.mark.parametrize(("raw", "extra", "install", "remove", "update"), PLANS)
def test_plan(raw: dict[str, Any], extra: str, install: list[str], remove: list[str], update: bool) -> None:
    a = args(**raw)
    plan = make_plan(parse_wanted(a["name"]), Apt().parse(PROBE + extra), a)
    assert (plan.install, plan.remove, plan.update) == (install, remove, update)


def test_never_fetched_lists_count_as_stale() -> None:
    a = args(name="curl", cache_valid_time=3600)
    plan = make_plan(parse_wanted(a["name"]), Apt().parse("manager=apt\nage=never\n"), a)
    assert plan.update


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Packages(), args(name="git,nginx", update_cache=True), ctx, PROBE)
    assert result.status == "ok" and ctx.calls == []


def test_install_in_one_call_with_versions_in_data() -> None:
    after = "pkg=curl\tii \t7.88.1\npkg=git\tii \t1:2.39.5-0+deb12u3\n"
    ctx = FakeContext(results=[CommandResult(0, after, "")])
    result = execute_module(Packages(), args(name="git,curl", update_cache=True, install_recommends=False), ctx, PROBE)
    assert result.status == "changed"
    assert result.data["installed"] == [{"name": "curl", "version": "7.88.1"}]
    [(script, _stdin, _ro)] = ctx.calls
    assert "apt-get -y -o DPkg::Lock::Timeout=120 update" in script
    assert "DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout=300 --no-install-recommends install curl" \
        in script
    assert script.index(" update") < script.index(" install ")


def test_latest_with_nothing_newer_is_ok() -> None:
    ctx = FakeContext(results=[CommandResult(0, PROBE, "")])
    result = execute_module(Packages(), args(name="git", state="latest", update_cache=True), ctx, PROBE)
    assert result.status == "ok" and result.data["cache_updated"] is True


def test_remove_and_purge() -> None:
    ctx = FakeContext(results=[CommandResult(0, "", "")])
    result = execute_module(Packages(), args(name="nginx", state="absent", purge=True), ctx, PROBE)
    assert result.status == "changed"
    assert result.data["removed"] == [{"name": "nginx", "version": "1.22.1-9+deb12u11"}]
    assert "apt-get -y -o DPkg::Lock::Timeout=300 purge nginx" in ctx.calls[0][0]


def test_check_mode_lists_what_would_be_installed() -> None:
    ctx = FakeContext(check=True)
    result = execute_module(Packages(), args(name="git,curl,jq"), ctx, PROBE)
    assert result.status == "changed" and result.data["would_install"] == ["curl", "jq"]
    assert "would install curl, jq" in result.msg and ctx.calls == []


def test_unknown_package_fails_with_fix() -> None:
    ctx = FakeContext(results=[CommandResult(100, "", "E: Unable to locate package nosuch")])
    result = execute_module(Packages(), args(name="nosuch"), ctx, PROBE)
    assert result.status == "failed" and "exit 100" in result.msg and "update_cache" in result.msg


def test_update_retried_then_fails() -> None:
    script = Apt().change_script(update=True, install=["curl"], remove=[], args=args(name="curl"))
    assert "until " in script and "sleep 3" in script and "exit 11" in script
    ctx = FakeContext(results=[CommandResult(11, "", "E: Failed to fetch")])
    result = execute_module(Packages(), args(name="curl", update_cache=True), ctx, PROBE)
    assert result.status == "failed" and "3 times" in result.msg


def test_an_update_that_hangs_is_cut_and_tried_again(tmp_path: Path) -> None:
    """A proxy that never answers held apt-get update until the task's 30 min bound; now one try is cut."""
    from provision.tasks.packages import UPDATE_SECONDS

    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "calls"
    # The first update hangs, the second succeeds; install and dpkg-query answer as apt would.
    (shim / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *update*) [ -e {tmp_path}/hung ] && exit 0; '
        f': > {tmp_path}/hung; exec sleep 60;; esac\nexit 0\n')
    (shim / "dpkg-query").write_text("#!/bin/sh\nexit 0\n")
    for tool in shim.iterdir():
        tool.chmod(0o755)
    script = Apt().change_script(update=True, install=["curl"], remove=[], args=args(name="curl"))
    assert f"timeout -k 10 {UPDATE_SECONDS} apt-get" in script
    quick = script.replace(f"timeout -k 10 {UPDATE_SECONDS} ", "timeout -k 1 1 ").replace("sleep 3", "sleep 0")
    quick = quick.replace("/var/lib/apt/periodic", str(tmp_path / "periodic"))
    done = subprocess.run(["sh", "-c", quick], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": f"{shim}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert [line.split()[-1] for line in calls.read_text().splitlines()] == ["update", "update", "curl"]


def test_no_manager() -> None:
    assert execute_module(Packages(), args(name="git"), FakeContext(), "manager=none\n").status == "failed"


@pytest.mark.parametrize("raw", [{"name": "-oFoo=bar"}, {"name": "git=1", "state": "absent"},
                                 {"name": "git", "manager": "yum"}])
def test_bad_args(raw: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        args(**raw)


def test_alias_and_comma_string() -> None:
    assert args(pkg="a, b")["name"] == ["a", "b"]


@pytest.mark.parametrize("manager", ["auto", "apt", "dnf"])
def test_probe_and_change_scripts_are_valid_sh(manager: str) -> None:
    a = args(name="git,curl=7*", state="latest", manager=manager)
    subprocess.run(["sh", "-n", "-c", Packages().probe(a)], check=True)
    for impl in ("apt", "dnf"):
        from provision.tasks.packages import MANAGERS

        script = MANAGERS[impl].change_script(update=True, install=["curl=7*"], remove=["x"], args=a)
        subprocess.run(["sh", "-n", "-c", script], check=True)


def test_apt_probe_reads_this_host() -> None:
    """The probe is read-only: run it here and parse it (dpkg exists on the Debian test machine)."""
    a = args(name="dpkg,surely-not-a-package")
    out = subprocess.run(["sh", "-c", Packages().probe(a)], capture_output=True, text=True, check=True).stdout
    state = Apt().parse(out)
    assert "dpkg" in state.installed and "surely-not-a-package" not in state.installed
