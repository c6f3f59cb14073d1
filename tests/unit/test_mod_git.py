"""git: decisions from canned probe and ls-remote output."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.git import Git, Target, parse_ls_remote, parse_probe
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

HEAD = "a" * 40
NEW = "b" * 40
LS_REMOTE = (
    "ref: refs/heads/develop\tHEAD\n"
    f"{NEW}\tHEAD\n"
    f"{NEW}\trefs/heads/develop\n"
    f"{HEAD}\trefs/heads/version-15\n"
    f"{'c' * 40}\trefs/tags/v15.0.0\n"
    f"{HEAD}\trefs/tags/v15.0.0^{{}}\n"
)


def probe_out(*, head: str = HEAD, branch: str = "version-15", tags: tuple[str, ...] = (),
              dirty: tuple[str, ...] = (), url: str = "https://example.invalid/frappe.git") -> str:
    lines = ["present=repo", "owner=frappe", "me=frappe", f"head={head}", f"url={url}", f"branch={branch}"]
    lines += [f"tag={t}" for t in tags] + [f"dirty={d}" for d in dirty]
    return "\n".join(lines) + "\n"


def gargs(**raw: Any) -> dict[str, Any]:
    a = args_of(Git, {"repo": "https://example.invalid/frappe.git", "dest": "/home/frappe/apps/frappe", **raw})
    Git().check_args(a)
    return a


@pytest.mark.parametrize(("version", "expected"), [
    ("HEAD", Target("branch", "develop", NEW)),
    ("develop", Target("branch", "develop", NEW)),
    ("v15.0.0", Target("tag", "v15.0.0", HEAD)),
    ("nope", None),
])
def test_parse_ls_remote(version: str, expected: Target | None) -> None:
    assert parse_ls_remote(LS_REMOTE, version) == expected


def test_parse_probe() -> None:
    checkout = parse_probe(probe_out(tags=("v1", "v2"), dirty=(" M a.py",)))
    assert checkout.tags == ["v1", "v2"] and checkout.dirty == [" M a.py"] and checkout.head == HEAD


def test_tag_at_head_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Git(), gargs(version="v15.0.0"), ctx, probe_out(tags=("v15.0.0",)))
    assert result.status == "ok" and ctx.calls == []


def test_commit_at_head_costs_no_call() -> None:
    ctx = FakeContext()
    assert execute_module(Git(), gargs(version=HEAD[:8]), ctx, probe_out()).status == "ok" and ctx.calls == []


def test_branch_costs_one_readonly_ls_remote() -> None:
    ctx = FakeContext(results=[CommandResult(0, LS_REMOTE, "")])
    result = execute_module(Git(), gargs(version="version-15"), ctx, probe_out())
    assert result.status == "ok"
    [(script, _stdin, readonly)] = ctx.calls
    assert readonly and "git ls-remote" in script and "GIT_TERMINAL_PROMPT=0" in script


def test_moved_branch_fetches_and_reports_before_after() -> None:
    ctx = FakeContext(results=[CommandResult(0, LS_REMOTE, ""), CommandResult(0, f"after={NEW}\n", "")])
    result = execute_module(Git(), gargs(version="develop", remote="upstream"), ctx, probe_out())
    assert result.status == "changed" and (result.data["before"], result.data["after"]) == (HEAD, NEW)
    script = ctx.changes[0][0]
    assert "git fetch -q upstream +refs/heads/develop:refs/remotes/upstream/develop" in script
    assert "git checkout -q -B develop refs/remotes/upstream/develop" in script


def test_check_mode_only_reads() -> None:
    ctx = FakeContext(check=True, results=[CommandResult(0, LS_REMOTE, "")])
    result = execute_module(Git(), gargs(version="develop"), ctx, probe_out())
    assert result.status == "changed" and ctx.changes == []


def test_clone_script() -> None:
    ctx = FakeContext(results=[CommandResult(0, f"after={NEW}\n", "")])
    result = execute_module(Git(), gargs(version="version-15", remote="upstream", depth=1), ctx, "present=no\n")
    assert result.status == "changed" and result.data["after"] == NEW
    script = ctx.changes[0][0]
    assert "git clone -q --origin upstream --depth 1 --branch version-15 -- https://example.invalid/frappe.git" \
        in script


def test_dubious_ownership_names_owner() -> None:
    state = "present=repo\nowner=frappe\nme=root\nerror=fatal: detected dubious ownership in repository\n"
    result = execute_module(Git(), gargs(), FakeContext(), state)
    assert result.status == "failed" and "become_user: frappe" in result.msg


@pytest.mark.parametrize("raw", [{"dest": "relative/path"}, {"depth": 0}, {"version": "--upload-pack=x"}])
def test_bad_args(raw: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        gargs(**raw)


def test_probe_is_valid_sh() -> None:
    subprocess.run(["sh", "-n", "-c", Git().probe(gargs())], check=True)
