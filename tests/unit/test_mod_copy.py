"""copy and template: the upload plan from canned probe output, one-call writes, diffs, arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.copy import Copy, plan_upload, upload_probe
from provision.tasks.shell import DIFF_NOT_SHOWN, sha256_hex, write_input
from provision.tasks.template import Template
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

NEW = b"server {\n  listen 80;\n}\n"
SUM = sha256_hex(NEW)
OTHER = "0" * 64


def stat(kind: str = "file", mode: str = "644", owner: str = "root", sha: str = SUM, size: int = 30) -> str:
    return f"{kind}\t{mode}\t{owner}\troot\t{size}\t{sha if kind == 'file' else '-'}\t{'/t' if kind == 'link' else '-'}"


DIR = stat("directory")

# (id, dest, source name, probe, kwargs, (target, write, changed attrs, make_dir) or error)
PLANS: list[tuple[str, str, str | None, str, dict[str, Any], Any]] = [
    ("same content", "/etc/a", None, stat(), {}, ("/etc/a", False, [], None)),
    ("new file", "/etc/a", None, "absent", {}, ("/etc/a", True, [], None)),
    ("content differs", "/etc/a", None, stat(sha=OTHER), {}, ("/etc/a", True, [], None)),
    ("differs, force false", "/etc/a", None, stat(sha=OTHER), {"force": False}, ("/etc/a", False, [], None)),
    ("force false still sets mode", "/etc/a", None, stat(sha=OTHER), {"force": False, "mode": "600"},
     ("/etc/a", False, ["mode"], None)),
    ("mode only", "/etc/a", None, stat(), {"mode": "600"}, ("/etc/a", False, ["mode"], None)),
    ("owner and content", "/etc/a", None, stat(sha=OTHER), {"owner": "www"}, ("/etc/a", True, ["owner"], None)),
    ("dest is a directory", "/etc/nginx", "a.conf", f"{DIR}\n{stat()}", {}, ("/etc/nginx/a.conf", False, [], None)),
    ("dest directory, new file", "/etc/nginx", "a.conf", f"{DIR}\nabsent", {},
     ("/etc/nginx/a.conf", True, [], None)),
    ("dest ends with /, missing", "/srv/x/", "a.conf", "absent\nabsent", {}, ("/srv/x/a.conf", True, [], "/srv/x/")),
    ("dest ends with /, present", "/srv/x/", "a.conf", f"{DIR}\n{stat()}", {}, ("/srv/x/a.conf", False, [], None)),
    ("content into a directory", "/etc/nginx", None, DIR, {}, "name the file"),
    ("dest is a symlink", "/etc/a", None, stat("link"), {}, "symlink"),
    ("dest is a device", "/dev/null", None, stat("other"), {}, "not a file"),
]  # fmt: skip


@pytest.mark.parametrize(("dest", "name", "probe", "kwargs", "want"), [p[1:] for p in PLANS], ids=[p[0] for p in PLANS])
def test_plan_upload(dest: str, name: str | None, probe: str, kwargs: dict[str, Any], want: Any) -> None:
    plan = plan_upload(dest, name, probe, checksum=SUM, **kwargs)
    if isinstance(want, str):
        assert plan.error is not None and want in plan.error
        return
    assert plan.error is None
    assert (plan.target, plan.write, sorted(plan.changes), plan.make_dir) == want


def test_probe() -> None:
    assert upload_probe("/etc/a", None) == "pv_stat /etc/a sum"
    assert upload_probe("/etc/x", "a.conf") == (
        "pv_stat /etc/x sum\nif [ -d /etc/x ]; then pv_stat /etc/x/a.conf sum; fi"
    )
    assert upload_probe("/etc/x/", "a.conf") == "pv_stat /etc/x/ sum\npv_stat /etc/x/a.conf sum"


def copy_args(**raw: Any) -> dict[str, Any]:
    args = args_of(Copy, {"content": NEW.decode(), "dest": "/etc/a", **raw})
    Copy().check_args(args)
    return args


def test_converged_costs_no_call() -> None:
    ctx = FakeContext(diff=True)
    result = execute_module(Copy(), copy_args(), ctx, stat())
    assert result.status == "ok" and ctx.calls == []
    assert result.data == {"dest": "/etc/a", "checksum": SUM, "size": len(NEW)}


def test_write_is_one_call_with_content_on_stdin() -> None:
    ctx = FakeContext(results=[CommandResult(0, "/etc/a.20260101~\n", "")])
    result = execute_module(Copy(), copy_args(mode="0640", owner="www", backup=True, validate="nginx -t -c %s"), ctx,
                        stat(sha=OTHER))  # fmt: skip
    assert result.status == "changed" and result.msg == "updated /etc/a"
    assert result.data["backup_file"] == "/etc/a.20260101~"
    [(script, stdin, readonly)] = ctx.calls
    assert stdin == write_input(NEW) and not readonly
    assert "chmod 640" in script and "chown www" in script and "nginx -t -c" in script
    assert NEW.decode() not in script  # content travels on stdin, never inside the script


def test_attrs_only_sends_no_content() -> None:
    ctx = FakeContext()
    result = execute_module(Copy(), copy_args(mode="0600"), ctx, stat())
    assert result.status == "changed" and result.msg == "changed mode /etc/a"
    [(script, stdin, _)] = ctx.calls
    assert script == "chmod 600 -- /etc/a\n" and stdin is None


def test_check_mode_diff_reads_old_content_readonly() -> None:
    old = "server {\n  listen 8080;\n}\n"
    ctx = FakeContext(check=True, diff=True, results=[CommandResult(0, "present\n" + old, "")])
    result = execute_module(Copy(), copy_args(), ctx, stat(sha=OTHER))
    assert result.status == "changed" and result.msg == "would have updated /etc/a"
    assert [readonly for _, _, readonly in ctx.calls] == [True]
    assert result.diff == (
        "--- before: /etc/a\n+++ after: /etc/a\n@@ -1,3 +1,3 @@\n server {\n-  listen 8080;\n+  listen 80;\n }\n"
    )


def test_no_diff_read_without_diff_mode() -> None:
    ctx = FakeContext(check=True)
    execute_module(Copy(), copy_args(), ctx, stat(sha=OTHER))
    assert ctx.calls == []


def test_diff_of_new_file_needs_no_read() -> None:
    ctx = FakeContext(check=True, diff=True)
    result = execute_module(Copy(), copy_args(), ctx, "absent")
    assert ctx.calls == []
    assert result.diff is not None and result.diff.startswith("--- before: /etc/a\n+++ after: /etc/a\n@@ -0,0 +1,3 @@")


@pytest.mark.parametrize(
    ("old", "size"),
    [("bin\ufffdary", 10), ("x", 300 * 1024)],
    ids=["old binary", "old large"],
)
def test_diff_not_shown(old: str, size: int) -> None:
    ctx = FakeContext(check=True, diff=True, results=[CommandResult(0, "present\n" + old, "")])
    result = execute_module(Copy(), copy_args(), ctx, stat(sha=OTHER, size=size))
    assert DIFF_NOT_SHOWN in (result.diff or "")


def test_binary_new_content_not_diffed(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01\x02")
    ctx = FakeContext(check=True, diff=True)
    ctx.files["blob"] = blob
    args = args_of(Copy, {"src": "blob", "dest": "/opt/"})
    result = execute_module(Copy(), args, ctx, "absent\nabsent")
    assert result.data["dest"] == "/opt/blob"
    assert DIFF_NOT_SHOWN in (result.diff or "")


def test_validation_failure_keeps_old_file() -> None:
    ctx = FakeContext(results=[CommandResult(3, "", "emerg: unknown directive\nvalidation failed: nginx -t -c %s\n")])
    result = execute_module(Copy(), copy_args(validate="nginx -t -c %s"), ctx, stat(sha=OTHER))
    assert result.status == "failed"
    assert "old file is kept" in result.msg and "unknown directive" in result.msg


def test_missing_src_fails_cleanly() -> None:
    result = execute_module(Copy(), args_of(Copy, {"src": "nope.txt", "dest": "/x"}), FakeContext(), "absent")
    assert result.status == "failed" and "not found on the control host" in result.msg


def test_directory_tree_plan(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(NEW)
    (tmp_path / "sub" / "b").write_bytes(b"bee")
    tree_state = "\n".join([DIR, "absent", stat(), "absent"]) + "\n"  # dest, dest/sub, dest/a.txt, dest/sub/b
    ctx = FakeContext(results=[CommandResult(0, tree_state, "")])
    ctx.files["site/"] = tmp_path
    result = execute_module(Copy(), args_of(Copy, {"src": "site/", "dest": "/srv/site"}), ctx, None)
    assert result.status == "changed"
    assert result.data["changed_paths"] == ["/srv/site/sub/", "/srv/site/sub/b"]
    [(probe, _, readonly), (script, stdin, change_readonly)] = ctx.calls
    assert readonly and not change_readonly
    assert probe == "pv_stat /srv/site\npv_stat /srv/site/sub\npv_stat /srv/site/a.txt sum\npv_stat /srv/site/sub/b sum"
    assert "mkdir -p -- /srv/site/sub\n" in script and "head -c 3 >" in script and "a.txt" not in script
    assert stdin == write_input(b"bee")


def test_directory_tree_refuses_validate(tmp_path: Path) -> None:
    ctx = FakeContext()
    ctx.files["tree"] = tmp_path
    result = execute_module(Copy(), args_of(Copy, {"src": "tree", "dest": "/x", "validate": "true %s"}), ctx, "absent")
    assert result.status == "failed" and "validate is not supported" in result.msg and ctx.calls == []


BAD = [
    ({"dest": "/x"}, "exactly one of src"),
    ({"dest": "/x", "src": "a", "content": "b"}, "exactly one of src"),
    ({"dest": "/x", "content": "b", "mode": "rwx"}, "octal"),
    ({"dest": "/x", "content": "b", "validate": "nginx -t"}, "must contain %s"),
]


@pytest.mark.parametrize(("raw", "error"), BAD)
def test_bad_arguments(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        Copy().check_args(args_of(Copy, raw))


def test_template_renders_on_the_control_host_and_shares_copy() -> None:
    ctx = FakeContext(diff=True)
    ctx.templates["nginx.conf.j2"] = NEW.decode()
    args = args_of(Template, {"src": "nginx.conf.j2", "dest": "/etc/nginx/conf.d/"})
    Template().check_args(args)
    assert Template().probe(args) == "pv_stat /etc/nginx/conf.d/ sum\npv_stat /etc/nginx/conf.d/nginx.conf sum"
    converged = execute_module(Template(), args, ctx, f"{DIR}\n{stat()}")
    assert converged.status == "ok" and ctx.calls == []
    changed = execute_module(Template(), args, ctx, f"{DIR}\nabsent")
    assert changed.status == "changed" and changed.data["dest"] == "/etc/nginx/conf.d/nginx.conf"
    [(_, stdin, _)] = ctx.calls
    assert stdin == write_input(NEW)


def test_template_has_no_content_arg() -> None:
    with pytest.raises(ArgumentError, match="no argument 'content'"):
        Template.normalize({"src": "a.j2", "dest": "/x", "content": "y"})
