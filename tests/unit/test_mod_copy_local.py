"""copy and template: the real modules on this machine, in a temp dir."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest

from provision.context import HostContext
from provision.tasks.base import Module, RenderedTemplate
from provision.tasks.copy import Copy
from provision.tasks.template import Template
from tests.unit._modrun import local_context, run_task, sessions, tree

pytestmark = pytest.mark.unit


def converge(cls: type[Module], raw: dict[str, Any], root: Path, make: Any = local_context) -> Any:
    """Check mode (nothing changes), a real run (changed), a second run (ok, no upload)."""
    before = tree(root)
    dry = run_task(cls, raw, make(check=True, diff=True))
    assert dry.status == "changed", dry.msg
    assert tree(root) == before
    first = run_task(cls, raw, make(diff=True))
    assert first.status == "changed", first.msg
    assert first.diff == dry.diff
    ctx = make()
    second = run_task(cls, raw, ctx)
    assert second.status == "ok", second.msg
    assert sessions(ctx) == 1  # the probe only: nothing re-uploaded
    return first


def test_content_new_then_changed_with_backup(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    first = converge(Copy, {"content": "a=1\n", "dest": str(dest), "mode": "0640"}, tmp_path)
    assert dest.read_text() == "a=1\n" and stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert "+a=1\n" in first.diff
    second = converge(Copy, {"content": "a=2\n", "dest": str(dest), "backup": True}, tmp_path)
    assert "-a=1\n+a=2\n" in second.diff
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # mode kept when not given
    backup = Path(second.data["backup_file"])
    assert backup.read_text() == "a=1\n" and backup.parent == tmp_path


def test_src_into_directory(tmp_path: Path) -> None:
    files = tmp_path / "project" / "files"
    files.mkdir(parents=True)
    (files / "motd").write_bytes(b"hello\n")
    out = tmp_path / "out"
    out.mkdir()

    def make(**kw: Any) -> HostContext:
        return local_context(file_dirs=(tmp_path / "project",), **kw)

    result = converge(Copy, {"src": "motd", "dest": str(out)}, out, make)
    assert (out / "motd").read_bytes() == b"hello\n" and result.data["dest"] == str(out / "motd")


def test_validate_failure_keeps_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "sudoers"
    dest.write_text("good\n")
    raw = {"content": "bad\n", "dest": str(dest), "validate": "grep -q good %s"}
    result = run_task(Copy, raw, local_context())
    assert result.status == "failed" and "old file is kept" in result.msg
    assert dest.read_text() == "good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sudoers"]  # temp file cleaned up


def test_force_false_only_creates(tmp_path: Path) -> None:
    dest = tmp_path / "secret.key"
    dest.write_text("original")
    result = run_task(Copy, {"content": "new", "dest": str(dest), "force": False}, local_context())
    assert result.status == "ok" and dest.read_text() == "original"


def test_binary_content_diff_not_shown(tmp_path: Path) -> None:
    dest = tmp_path / "blob"
    dest.write_bytes(b"\xff\xfe\x00old")
    result = run_task(Copy, {"content": "text\n", "dest": str(dest)}, local_context(check=True, diff=True))
    assert "(binary or >256 KiB: not shown)" in (result.diff or "")


def test_template(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "site.conf.j2").write_text("server_name {{ site }};\n")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )

    def renderer(name: str, variables: Mapping[str, Any]) -> RenderedTemplate:
        return RenderedTemplate(env.get_template(name).render(**variables), name)

    out = tmp_path / "out"
    out.mkdir()

    def make(**kw: Any) -> HostContext:
        ctx = local_context(renderer=renderer, **kw)
        ctx.variables = {"site": "a.example"}
        return ctx

    result = converge(Template, {"src": "site.conf.j2", "dest": str(out) + "/"}, out, make)
    assert (out / "site.conf").read_text() == "server_name a.example;\n"
    assert "+server_name a.example;\n" in result.diff


@pytest.mark.parametrize(("src", "prefix"), [("conf", "conf/"), ("conf/", "")], ids=["dir itself", "contents"])
def test_directory_tree(tmp_path: Path, src: str, prefix: str) -> None:
    files = tmp_path / "project" / "files" / "conf"
    (files / "sub" / "deep").mkdir(parents=True)
    (files / "a.txt").write_text("a\n")
    (files / "sub" / "b.bin").write_bytes(b"\x00\x01")
    (files / "sub" / "deep" / "empty").write_bytes(b"")
    out = tmp_path / "out"

    def make(**kw: Any) -> HostContext:
        return local_context(file_dirs=(tmp_path / "project",), **kw)

    raw = {"src": src, "dest": str(out), "mode": "0640"}
    before = tree(tmp_path)
    dry = run_task(Copy, raw, make(check=True, diff=True))
    assert dry.status == "changed" and tree(tmp_path) == before
    first = run_task(Copy, raw, make(diff=True))
    assert first.status == "changed", first.msg
    assert (out / f"{prefix}a.txt").read_text() == "a\n"
    assert (out / f"{prefix}sub/b.bin").read_bytes() == b"\x00\x01"
    assert (out / f"{prefix}sub/deep/empty").read_bytes() == b""
    assert stat.S_IMODE((out / f"{prefix}sub/b.bin").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / f"{prefix}sub").stat().st_mode) == 0o755
    assert "+a\n" in (first.diff or "")
    ctx = make()
    assert run_task(Copy, raw, ctx).status == "ok"
    assert sessions(ctx) == 2  # the batched probe and the tree read; nothing uploaded
    (files / "a.txt").write_text("changed\n")
    again = run_task(Copy, raw, make())
    assert again.status == "changed" and again.data["changed_paths"] == [str(out / f"{prefix}a.txt")]
    assert (out / f"{prefix}a.txt").read_text() == "changed\n"
