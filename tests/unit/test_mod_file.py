"""file: decisions from canned probe output, argument checks, the attribute diff."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.file import File, file_probe, missing_parents, plan_file
from provision.tasks.shell import chain
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit

FILE = "file\t644\troot\troot\t5\t-\t-"
DIR = "directory\t755\troot\troot\t4096\t-\t-"
LINK = "link\t777\troot\troot\t3\t-\t/srv/a"


def plan(raw: dict[str, Any], probe: str) -> Any:
    args = args_of(File, raw)
    File().check_args(args)
    return plan_file(args, probe)


# (id, args, probe output, expected script lines (in order) or [] for converged, error substring)
CASES: list[tuple[str, dict[str, Any], str, list[str], str | None]] = [
    ("file exists, attrs right", {"path": "/f", "mode": "0644", "owner": "root"}, FILE, [], None),
    ("file mode differs", {"path": "/f", "mode": "0600"}, FILE, ["chmod 600 -- /f"], None),
    ("file mode int from YAML 0600", {"path": "/f", "mode": 0o600}, FILE, ["chmod 600 -- /f"], None),
    ("file owner and group", {"path": "/f", "owner": "www", "group": "www"}, FILE, ["chown www:www -- /f"], None),
    ("file group only", {"path": "/f", "group": "adm"}, FILE, ["chown :adm -- /f"], None),
    ("state file on missing path", {"path": "/f", "state": "file"}, "absent", [], "does not exist"),
    ("default state on missing path", {"path": "/f"}, "absent", [], "does not exist"),
    ("default state takes the directory", {"path": "/d", "mode": "0700"}, DIR, ["chmod 700 -- /d"], None),
    ("state file on a directory", {"path": "/d", "state": "file"}, DIR, [], "is a directory, not a file"),
    ("directory exists", {"path": "/d", "state": "directory"}, DIR, [], None),
    ("directory on a file", {"path": "/f", "state": "directory"}, FILE, [], "is a file, not a directory"),
    ("directory created with parents", {"path": "/a/b", "state": "directory", "mode": "0750"}, "absent",
     ["{ [ -e /a ] || { mkdir -m 750 -- /a; }; }", "{ [ -e /a/b ] || { mkdir -m 750 -- /a/b; }; }"], None),
    # chown may clear set-id bits, so with an owner such a mode is set after it, not by mkdir -m.
    ("setgid directory with an owner", {"path": "/s", "state": "directory", "mode": "2775", "owner": "frappe"},
     "absent", ["{ [ -e /s ] || { mkdir -- /s && chown frappe -- /s && chmod 2775 -- /s; }; }"], None),
    ("recurse: tree differs", {"path": "/d", "state": "directory", "owner": "root", "recurse": True},
     DIR + "\ntree differs", ["chown -R root -- /d"], None),
    ("recurse: tree same", {"path": "/d", "state": "directory", "owner": "root", "recurse": True},
     DIR + "\ntree same", [], None),
    ("absent removes a tree", {"path": "/d", "state": "absent"}, DIR, ["rm -rf -- /d"], None),
    ("absent on missing", {"path": "/d", "state": "absent"}, "absent", [], None),
    ("touch creates", {"path": "/t", "state": "touch", "mode": "0600"}, "absent", [": > /t", "chmod 600 -- /t"], None),
    ("touch existing keeps it", {"path": "/t", "state": "touch"}, FILE, [], None),
    ("link exists", {"path": "/l", "state": "link", "src": "/srv/a"}, LINK + "\nsrc present", [], None),
    ("link retargeted", {"path": "/l", "state": "link", "src": "/srv/b"}, LINK + "\nsrc present",
     ["rm -f -- /.l.provision-link", "ln -s -- /srv/b /.l.provision-link", "mv -T -f -- /.l.provision-link /l"],
     None),
    ("link owner on the link itself", {"path": "/l", "state": "link", "src": "/srv/a", "owner": "www"},
     LINK + "\nsrc present", ["chown -h www -- /l"], None),
    ("link over a file refused", {"path": "/l", "state": "link", "src": "/srv/a"}, FILE + "\nsrc present", [],
     "force: true"),
    ("link over a file forced", {"path": "/l", "state": "link", "src": "/srv/a", "force": True},
     FILE + "\nsrc present", ["mv -T -f -- /.l.provision-link /l"], None),
    ("link over a directory refused", {"path": "/l", "state": "link", "src": "/srv/a", "force": True},
     DIR + "\nsrc present", [], "is a directory"),
    ("dangling link refused", {"path": "/l", "state": "link", "src": "/srv/x"}, "absent\nsrc absent", [],
     "does not exist"),
    ("dangling link forced", {"path": "/l", "state": "link", "src": "/srv/x", "force": True}, "absent\nsrc absent",
     ["ln -s -- /srv/x /.l.provision-link"], None),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "probe", "script", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(raw: dict[str, Any], probe: str, script: list[str], error: str | None) -> None:
    result = plan(raw, probe)
    if error:
        assert result.error is not None and error in f"{result.error} {result.msg}"
        assert result.script == ""
        return
    assert result.error is None
    lines = result.script.splitlines()
    assert [line for line in lines if line in script] == script, result.script
    assert bool(result.script) == bool(script)


def test_missing_parents() -> None:
    assert missing_parents("/a/b/c/") == ["/a", "/a/b", "/a/b/c"]
    assert missing_parents("rel/x") == ["rel", "rel/x"]


def test_probe_recurse_and_link() -> None:
    probe = file_probe(args_of(File, {"path": "/d", "state": "directory", "mode": "0750", "recurse": True,
                                      "owner": "www"}))  # fmt: skip
    assert probe.startswith("pv_stat /d\n")
    assert "! -user www -o ! -perm 750" in probe and "! -type l" in probe
    link = file_probe(args_of(File, {"path": "/etc/x/l", "state": "link", "src": "../y"}))
    assert "[ -e /etc/x/../y ]" in link


BAD = [
    ({"path": "/l", "state": "link"}, "needs src"),
    ({"path": "/l", "src": "/x"}, "only for state: link"),
    ({"path": "/l", "state": "link", "src": "/x", "mode": "0644"}, "no mode"),
    ({"path": "/d", "recurse": True}, "recurse needs state: directory"),
    ({"path": "/", "state": "absent"}, "refusing to remove /"),
    ({"path": "/f", "mode": "u+x"}, "not an octal mode"),
    ({"path": "/f", "state": "hard"}, "must be one of"),
]


@pytest.mark.parametrize(("raw", "error"), BAD)
def test_bad_arguments(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        File().check_args(args_of(File, raw))


def test_aliases() -> None:
    assert args_of(File, {"dest": "/x"})["path"] == "/x"
    assert args_of(File, {"name": "/x"})["path"] == "/x"


def test_run_converged_costs_nothing() -> None:
    ctx = FakeContext()
    result = execute_module(File(), args_of(File, {"path": "/f", "mode": "0644"}), ctx, FILE)
    assert result.status == "ok" and ctx.calls == []


def test_run_check_mode_with_diff() -> None:
    ctx = FakeContext(check=True, diff=True)
    result = execute_module(File(), args_of(File, {"path": "/f", "mode": "0600", "owner": "www"}), ctx, FILE)
    assert result.status == "changed" and ctx.calls == []
    assert result.diff == (
        "--- before: /f (attributes)\n+++ after: /f (attributes)\n@@ -1,3 +1,3 @@\n"
        " state: file\n-mode: 644\n-owner: root\n+mode: 600\n+owner: www\n"
    )
    assert result.data["before"] == {"state": "file", "mode": "644", "owner": "root"}
    assert result.data["after"] == {"state": "file", "mode": "600", "owner": "www"}


def test_run_applies_in_one_call() -> None:
    ctx = FakeContext()
    result = execute_module(File(), args_of(File, {"path": "/f", "state": "absent"}), ctx, FILE)
    assert result.status == "changed"
    [(script, _, readonly)] = ctx.calls
    assert script == "rm -rf -- /f\n" and not readonly


def test_the_script_stops_at_the_first_failure_without_set_e(tmp_path: Path) -> None:
    """The file module's scripts are chains (``Plan.inline``): a batch may run them in its own shell."""
    target = tmp_path / "a" / "b"
    result = plan({"path": str(target), "state": "directory", "mode": "0700", "owner": "no-such-user-pv"}, "absent")
    done = subprocess.run(["sh", "-c", chain(result.script.splitlines())], capture_output=True, text=True,
                          timeout=30, check=False)
    # The first directory is made, its chown fails: nothing after it runs, and that failure is the status.
    assert done.returncode != 0 and "invalid user" in done.stderr
    assert (tmp_path / "a").is_dir() and not target.exists()


def test_run_error_is_failed_with_fix() -> None:
    result = execute_module(File(), args_of(File, {"path": "/f"}), FakeContext(), "absent")
    assert result.status == "failed" and "state: touch" in result.msg
