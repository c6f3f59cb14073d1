"""git: the real module, run locally against real repositories in a temp dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.tasks.git import Git
from tests.unit._modrun import local_context, run_task, tree

pytestmark = pytest.mark.unit

ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}


def git(cwd: Path, *words: str) -> str:
    return subprocess.run(["git", *words], cwd=cwd, env=ENV, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"{name}: {text}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "a.txt", "one")
    git(repo, "tag", "v1")
    git(repo, "tag", "-a", "v1-annotated", "-m", "annotated")
    commit(repo, "a.txt", "two")
    git(repo, "branch", "develop")
    return repo


def task(origin: Path | str, dest: Path, **extra: object) -> dict[str, object]:
    return {"repo": str(origin), "dest": str(dest), "remote": "upstream", **extra}


def test_clone_then_idempotent_then_follow_branch(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "apps" / "frappe"
    first = run_task(Git, task(origin, dest, version="main"), local_context())
    assert first.status == "changed", first.msg
    head = git(origin, "rev-parse", "HEAD")
    assert first.data["before"] is None and first.data["after"] == head
    assert git(dest, "remote") == "upstream"

    again = run_task(Git, task(origin, dest, version="main"), local_context())
    assert again.status == "ok", again.msg
    assert again.data["after"] == head

    new = commit(origin, "b.txt", "three")
    check = local_context(check=True)
    before = tree(dest)
    would = run_task(Git, task(origin, dest, version="main"), check)
    assert would.status == "changed" and new[:12] in would.msg
    assert tree(dest) == before

    moved = run_task(Git, task(origin, dest, version="main"), local_context())
    assert moved.status == "changed" and moved.data["before"] == head and moved.data["after"] == new
    assert f"{head[:12]} -> {new[:12]}" in moved.msg
    assert git(dest, "symbolic-ref", "--short", "HEAD") == "main"


def test_tag_and_commit_need_no_network_when_there(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    assert run_task(Git, task(origin, dest, version="v1-annotated"), local_context()).status == "changed"
    tagged = git(dest, "rev-parse", "HEAD")
    assert tagged == git(origin, "rev-parse", "v1^{commit}")
    # The origin is gone: a converged tag or commit must not need it.
    moved_origin = origin.rename(tmp_path / "elsewhere")
    assert run_task(Git, task(origin, dest, version="v1-annotated"), local_context()).status == "ok"
    assert run_task(Git, task(origin, dest, version=tagged[:10]), local_context()).status == "ok"
    moved_origin.rename(origin)

    back = run_task(Git, task(origin, dest, version="develop"), local_context())
    assert back.status == "changed" and back.data["after"] == git(origin, "rev-parse", "develop")
    first = git(origin, "rev-list", "--max-parents=0", "HEAD")
    pinned = run_task(Git, task(origin, dest, version=first), local_context())
    assert pinned.status == "changed" and pinned.data["after"] == first


def test_local_modifications_fail_unless_force(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_task(Git, task(origin, dest, version="v1"), local_context())
    (dest / "a.txt").write_text("local edit\n")
    failed = run_task(Git, task(origin, dest, version="main"), local_context())
    assert failed.status == "failed" and "a.txt" in failed.msg and "force: true" in failed.msg
    assert (dest / "a.txt").read_text() == "local edit\n"

    # At the wanted version already: reported, not failed.
    same = run_task(Git, task(origin, dest, version="v1"), local_context())
    assert same.status == "ok" and same.data["local_modifications"]

    forced = run_task(Git, task(origin, dest, version="main", force=True), local_context())
    assert forced.status == "changed" and (dest / "a.txt").read_text() == "two"
    assert git(dest, "status", "--porcelain") == ""


def test_remote_url_change_and_shallow_clone(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    # git ignores --depth for plain-path clones: file:// makes it a real (shallow) transport.
    first = run_task(Git, task(f"file://{origin}", dest, version="main", depth=1), local_context())
    assert first.status == "changed", first.msg
    assert git(dest, "rev-parse", "--is-shallow-repository") == "true"
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--mirror", str(origin), str(mirror)], env=ENV, check=True, timeout=60)
    new = commit(origin, "b.txt", "three")
    git(mirror, "fetch", "-q", str(origin), "+refs/heads/*:refs/heads/*")
    moved = run_task(Git, task(f"file://{mirror}", dest, version="main", depth=1), local_context())
    assert moved.status == "changed" and moved.data["remote_url_changed"] is True, moved.msg
    assert moved.data["after"] == new
    assert git(dest, "config", "--get", "remote.upstream.url") == f"file://{mirror}"
    assert run_task(Git, task(f"file://{mirror}", dest, version="main", depth=1), local_context()).status == "ok"


def test_unknown_version_and_non_repo_dest(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_task(Git, task(origin, dest), local_context())
    missing = run_task(Git, task(origin, dest, version="no-such-branch"), local_context())
    assert missing.status == "failed" and "no-such-branch" in missing.msg
    other = tmp_path / "other"
    other.mkdir()
    (other / "file").write_text("x")
    assert run_task(Git, task(origin, other), local_context()).status == "failed"


def test_no_clone_and_no_update(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    assert run_task(Git, task(origin, dest, clone=False), local_context()).status == "ok"
    assert not dest.exists()
    run_task(Git, task(origin, dest, version="v1"), local_context())
    assert run_task(Git, task(origin, dest, version="main", update=False), local_context()).status == "ok"
    assert git(dest, "rev-parse", "HEAD") == git(origin, "rev-parse", "v1^{commit}")


def test_diverged_branch_fails_unless_force(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_task(Git, task(origin, dest, version="main"), local_context())
    local = commit(dest, "local.txt", "mine")
    commit(origin, "b.txt", "three")
    failed = run_task(Git, task(origin, dest, version="main"), local_context())
    assert failed.status == "failed" and "not on upstream/main" in failed.msg, failed.msg
    assert git(dest, "rev-parse", "HEAD") == local
    forced = run_task(Git, task(origin, dest, version="main", force=True), local_context())
    assert forced.status == "changed" and forced.data["after"] == git(origin, "rev-parse", "main")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the temp checkout to another user")
def test_checkout_of_another_user_names_the_fix(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_task(Git, task(origin, dest), local_context())
    subprocess.run(["chown", "-R", "nobody", str(dest)], check=True, timeout=30)
    failed = run_task(Git, task(origin, dest), local_context())
    assert failed.status == "failed" and "become_user: nobody" in failed.msg, failed.msg


def test_force_discards_changes_at_the_wanted_tag_without_network(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_task(Git, task(origin, dest, version="v1"), local_context())
    (dest / "a.txt").write_text("local edit\n")
    origin.rename(tmp_path / "gone")
    reset = run_task(Git, task(origin, dest, version="v1", force=True), local_context())
    assert reset.status == "changed", reset.msg
    assert (dest / "a.txt").read_text() == "one"
    assert run_task(Git, task(origin, dest, version="v1", force=True), local_context()).status == "ok"
