"""Module plans decided from real fact output, read over the real sshd the way the engine reads it.

Each case sets up a path on this machine (the sshd's host), reads the module's fact in one probe
batch over SSH (``pv_stat`` deferred to the batch's flush, as in a run), and checks the plan the
module makes from it: converged, a change (with its message), or an error. Nothing is applied
here; applying is the engine's job and is covered by test_modules_ssh.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provision.apply import PlanReader
from provision.connection import SSHConnection
from provision.context import HostContext
from provision.contract import Module, Plan, RenderedTemplate
from provision.inventory import Inventory
from provision.probes import batch_script, new_nonce, split_answers
from provision.tasks.copy import Copy
from provision.tasks.file import File
from provision.tasks.lineinfile import LineInFile
from provision.tasks.shell import write_input
from provision.tasks.template import Template

from .conftest import SshServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ssh(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostContext]:
    inventory = Inventory.load(sshd.inventory(tmp_path_factory.mktemp("inv") / "inventory.yml"))
    connection = SSHConnection(inventory.host("node1").connection(), known_hosts=[sshd.known_hosts])
    connection.open()
    try:
        yield HostContext(connection, host="node1", variables={})
    finally:
        connection.close()


@pytest.fixture()
def work() -> Iterator[Path]:
    path = Path(subprocess.run(["mktemp", "-d", "/tmp/provision-plan-XXXXXX"], capture_output=True, text=True,
                               check=True).stdout.strip())
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)


class _Files:
    """The control-host side of a plan: a template's text, a file under files/."""

    def __init__(self, ctx: HostContext, files: dict[str, Path], templates: dict[str, str]) -> None:
        self.ctx, self.files, self.templates = ctx, files, templates
        self.host, self.variables = ctx.host, ctx.variables

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.ctx.run(*args, **kwargs)

    def find_file(self, name: str) -> Path:
        return self.files[name]

    def render_template(self, name: str) -> RenderedTemplate:
        return RenderedTemplate(self.templates[name], name)


def plan_over_ssh(ctx: HostContext, module: Module, raw: dict[str, Any], *, files: dict[str, Path] | None = None,
                  templates: dict[str, str] | None = None) -> Plan:
    """normalize → coerce → check_args → the fact read in a real batch over SSH → plan."""
    args = type(module).coerce(type(module).normalize(raw))
    module.check_args(args)
    fact = module.facts(args)
    assert fact is not None
    nonce = new_nonce()
    # Two probes, so the fact's answer is cut out of a real batch (with its deferred stat/sum).
    result = ctx.run(batch_script(["echo other", fact.command()], nonce), readonly=True)
    assert result.ok, result.stderr
    output = split_answers(result.stdout, 2, nonce)[1]
    assert output is not None
    reader = PlanReader(_Files(ctx, files or {}, templates or {}))  # type: ignore[arg-type]
    return module.plan(args, fact.parse(output), reader)


def test_file_plans(ssh: HostContext, work: Path) -> None:
    (work / "d").mkdir(mode=0o755)
    os.chmod(work / "d", 0o755)
    assert plan_over_ssh(ssh, File(), {"path": str(work / "d"), "state": "directory", "mode": "0755"}).script == ""
    plan = plan_over_ssh(ssh, File(), {"path": str(work / "d"), "state": "directory", "mode": "0700"})
    assert plan.msg == "changed mode" and f"chmod 700 -- {work}/d" in plan.script
    plan = plan_over_ssh(ssh, File(), {"path": str(work / "new"), "state": "directory"})
    assert plan.msg == f"created directory {work}/new" and plan.data["state"] == "directory"
    plan = plan_over_ssh(ssh, File(), {"path": str(work / "d"), "state": "file"})
    assert plan.error is not None and "is a directory, not a file" in plan.error
    plan = plan_over_ssh(ssh, File(), {"path": str(work / "l"), "state": "link", "src": str(work / "missing")})
    assert plan.error is not None and "does not exist" in plan.error and plan.pending is not None
    os.symlink(work / "d", work / "l")
    assert plan_over_ssh(ssh, File(), {"path": str(work / "l"), "state": "link", "src": str(work / "d")}).script == ""
    (work / "d" / "f").write_text("x")
    os.chmod(work / "d" / "f", 0o600)
    plan = plan_over_ssh(ssh, File(), {"path": str(work / "d"), "state": "directory", "mode": "0755", "recurse": True})
    assert plan.data["after"].get("tree") == "set recursively" and "chmod -R 755" in plan.script


def test_copy_plans(ssh: HostContext, work: Path, tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("hello\n")
    files = {"motd": tmp_path / "motd"}
    dest = work / "motd"
    plan = plan_over_ssh(ssh, Copy(), {"src": "motd", "dest": str(dest)}, files=files)
    assert plan.msg == f"created {dest}" and plan.stdin == write_input(b"hello\n")
    dest.write_text("hello\n")
    os.chmod(dest, 0o644)
    assert plan_over_ssh(ssh, Copy(), {"src": "motd", "dest": str(dest), "mode": "0644"}, files=files).script == ""
    plan = plan_over_ssh(ssh, Copy(), {"content": "bye\n", "dest": str(dest), "backup": True}, files=files)
    assert plan.msg == f"updated {dest}" and plan.outcome is not None
    assert plan.diff is not None and "-hello\n+bye\n" in plan.diff(PlanReader(ssh))  # the old text read over SSH
    plan = plan_over_ssh(ssh, Copy(), {"src": "motd", "dest": str(work) + "/"}, files=files)
    assert plan.data["dest"] == str(dest) and plan.script == ""  # a directory dest: the file inside it
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a").write_text("a\n")
    plan = plan_over_ssh(ssh, Copy(), {"src": "tree/", "dest": str(work / "t")}, files={"tree/": tmp_path / "tree"})
    assert plan.data["changed_paths"] == [f"{work}/t/", f"{work}/t/a"]


def test_template_plans(ssh: HostContext, work: Path) -> None:
    dest = work / "app.conf"
    templates = {"app.conf.j2": "port=80\n"}
    plan = plan_over_ssh(ssh, Template(), {"src": "app.conf.j2", "dest": str(dest)}, templates=templates)
    assert plan.msg == f"created {dest}"
    dest.write_text("port=80\n")
    assert plan_over_ssh(ssh, Template(), {"src": "app.conf.j2", "dest": str(work)}, templates=templates).data[
        "dest"] == str(dest)
    assert plan_over_ssh(ssh, Template(), {"src": "app.conf.j2", "dest": str(dest)}, templates=templates).script == ""


def test_lineinfile_plans(ssh: HostContext, work: Path) -> None:
    path = work / "settings.ini"
    plan = plan_over_ssh(ssh, LineInFile(), {"path": str(path), "line": "workers=4"})
    assert plan.error == f"{path} does not exist (fix: set create: true to create it)"
    path.write_text("[main]\nworkers=2\n\n")  # trailing blank line survives the read
    plan = plan_over_ssh(ssh, LineInFile(), {"path": str(path), "regexp": "^workers=", "line": "workers=4"})
    assert plan.stdin == write_input(b"[main]\nworkers=4\n\n") and plan.check_msg == "would have: line replaced"
    path.write_text("[main]\nworkers=4\n")
    assert plan_over_ssh(ssh, LineInFile(), {"path": str(path), "regexp": "^workers=", "line": "workers=4"}
                         ).script == ""
    plan = plan_over_ssh(ssh, LineInFile(), {"path": str(path), "line": "workers=4", "state": "absent"})
    assert plan.data["found"] == 1 and plan.stdin == write_input(b"[main]\n")


# -- the other planned modules: read-only cases on this machine ---------------------------------------


def test_command_plans(ssh: HostContext, work: Path) -> None:
    from provision.tasks.command import Command

    plan = plan_over_ssh(ssh, Command(), {"cmd": "touch x", "creates": str(work / "x")})
    assert plan.script and plan.check_skips
    (work / "x").touch()
    plan = plan_over_ssh(ssh, Command(), {"cmd": "touch x", "creates": str(work / "x")})
    assert plan.script == "" and "exists" in plan.msg


def test_fetch_plans(ssh: HostContext, work: Path, tmp_path: Path) -> None:
    from provision.tasks.fetch import Fetch

    (work / "f").write_text("data\n")
    reader = _Files(ssh, {}, {})
    args = {"src": str(work / "f"), "dest": str(tmp_path) + "/", "flat": True}
    plan = plan_over_ssh(ssh, Fetch(), args)
    assert plan.control_host is not None and plan.msg.startswith(f"fetched {work}/f")
    assert plan.control_host(reader.ctx).status == "changed"  # type: ignore[arg-type]
    assert (tmp_path / "f").read_text() == "data\n"
    assert plan_over_ssh(ssh, Fetch(), args).changes is False
    plan = plan_over_ssh(ssh, Fetch(), {"src": str(work / "missing"), "dest": str(tmp_path) + "/"})
    assert plan.error is not None and plan.pending is not None and plan.check_skips


def test_packages_user_group_cron_service_plans_read_this_machine(ssh: HostContext) -> None:
    from provision.tasks.cron import Cron
    from provision.tasks.packages import Packages
    from provision.tasks.service import Service
    from provision.tasks.user import Group, User

    assert plan_over_ssh(ssh, Packages(), {"name": ["bash"]}).changes is False
    plan = plan_over_ssh(ssh, Packages(), {"name": ["bash"], "state": "absent"})
    assert plan.changes and plan.check_msg == "would remove bash"
    assert plan_over_ssh(ssh, User(), {"name": "root"}).msg == "user root up to date"
    assert plan_over_ssh(ssh, User(), {"name": "pv-nobody-here", "state": "absent"}).changes is False
    assert plan_over_ssh(ssh, Group(), {"name": "root", "gid": 0}).msg == "group root present (gid 0)"
    plan = plan_over_ssh(ssh, Cron(), {"name": "pv plan test", "state": "absent"})
    assert plan.error is None and plan.changes is False
    plan = plan_over_ssh(ssh, Service(), {"name": "pv-no-such-service", "state": "started"})
    assert plan.error is not None and "not found" in plan.error and plan.pending is not None


def test_git_venv_pip_plans(ssh: HostContext, work: Path) -> None:
    from provision.tasks.git import Git
    from provision.tasks.venv import Pip, Venv

    origin = work / "origin"
    origin.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(work), "PATH": "/usr/bin:/bin"}
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "one"], ["tag", "v1"]):
        subprocess.run(["git", *argv], cwd=origin, env=env, check=True, capture_output=True)
    args = {"repo": str(origin), "dest": str(work / "checkout"), "version": "main"}
    plan = plan_over_ssh(ssh, Git(), args)
    assert plan.check_msg == f"would clone {origin} at main into {work}/checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(work / "checkout")], env=env, check=True)
    plan = plan_over_ssh(ssh, Git(), args)  # reads the branch with ls-remote, finds it at HEAD
    assert plan.changes is False and plan.msg.startswith(f"{work}/checkout at ")
    plan = plan_over_ssh(ssh, Git(), {**args, "version": "no-such-ref"})
    assert plan.error == f"version 'no-such-ref' is neither a branch nor a tag of {origin}"

    env_dir = work / "env"
    plan = plan_over_ssh(ssh, Venv(), {"path": str(env_dir), "python": "/usr/bin/python3"})
    assert plan.msg.startswith(f"created {env_dir} (Python 3.")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(env_dir)], check=True)
    assert plan_over_ssh(ssh, Venv(), {"path": str(env_dir), "python": "/usr/bin/python3"}).changes is False
    plan = plan_over_ssh(ssh, Pip(), {"name": ["pv-no-such-dist"], "virtualenv": str(env_dir)})
    assert plan.changes and "install pv-no-such-dist" in (plan.check_msg or "")
