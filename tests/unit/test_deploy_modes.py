"""``bench_mode``: the deploy's checks of it, and which parts of the deploy each mode runs.

The checks are the deploy's own assert tasks, evaluated with the engine's templating over the
deploy defaults plus what an inventory would set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.playbook import Task, load_playbook, walk_tasks
from provision.templating import Templar

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "playbooks" / "vars" / "deploy_defaults.yml").read_text())
PLAYS = load_playbook(ROOT / "playbooks" / "deploy.yml").plays
# Every task of the deploy's plays (a one-host bench runs them all; see deploy.yml).
TASKS = [t for play in PLAYS for t in walk_tasks(play.tasks)]
HANDLERS = [h for play in PLAYS for h in play.handlers]
TEMPLAR = Templar()


def site(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "admin_password": "x", **extra}


def check(task_name: str, **inventory: Any) -> bool:
    """True when the deploy's assert task ``task_name`` passes (or is skipped) for these variables."""
    task = next(t for t in TASKS if t.name == task_name)
    assert task.module == "assert"
    values = {**DEFAULTS, "groups": {"all": ["h1"], "ungrouped": ["h1"]}, "inventory_hostname": "h1",
              "release": "r-new", "live_release_path": "", "release_path": "/b/r-new/frappe-bench",
              **inventory}
    if not all(TEMPLAR.evaluate(str(w), values) for w in task.when):
        return True
    that = task.args["that"]
    return all(TEMPLAR.evaluate(str(c), values) for c in (that if isinstance(that, list) else [that]))


MODE = "bench_mode is production or development"
NO_TLS = "development mode has no TLS (no nginx in front of bench serve)"
FIRST_RELEASE = "development mode keeps its first release (changed app refs need bench_mode production)"


def test_bench_mode_defaults_to_production_and_takes_only_the_two_modes() -> None:
    assert DEFAULTS["bench_mode"] == "production"
    assert check(MODE) and check(MODE, bench_mode="development")
    assert not check(MODE, bench_mode="dev")
    assert not check(MODE, bench_mode=True)


@pytest.mark.parametrize(("inventory", "passes"), [
    ({}, True),
    ({"tls": False}, True),  # YAML's unquoted off
    ({"tls": "acme"}, False),
    ({"sites": [site("a.local", tls="off"), site("b.local")]}, True),
    ({"sites": [site("a.local"), site("b.local", tls="manual")]}, False),
    ({"sites": [site("a.local", ssl_certificate="/etc/ssl/a.pem")]}, False),
    ({"sites": [site("a.local", ssl_certificate="")]}, True),
])
def test_development_mode_refuses_tls(inventory: dict[str, Any], passes: bool) -> None:
    assert check(NO_TLS, bench_mode="development", **inventory) is passes
    assert check(NO_TLS, bench_mode="production", **inventory), "production keeps its own TLS checks"


def test_development_mode_never_builds_a_second_release() -> None:
    assert check(FIRST_RELEASE, bench_mode="development")
    assert check(FIRST_RELEASE, bench_mode="development", live_release_path="/b/r-new/frappe-bench")
    assert not check(FIRST_RELEASE, bench_mode="development", live_release_path="/b/r-old/frappe-bench")
    assert check(FIRST_RELEASE, bench_mode="production", live_release_path="/b/r-old/frappe-bench")


def runs(task: Task, mode: str) -> bool:
    """Whether the task's bench_mode conditions let it run in ``mode`` (other conditions ignored)."""
    conditions = [str(w) for w in task.when if "bench_mode" in str(w)]
    return all(TEMPLAR.evaluate(c, {"bench_mode": mode, "bench_host": True}) for c in conditions)


def sources(mode: str) -> set[str]:
    """The one-host bench's parts (the multi-server roles and replicas have their own files)."""
    return {Path(t.source.file).name for t in TASKS if runs(t, mode) and Path(t.source.file).parent.name == "includes"
            and not Path(t.source.file).name.startswith("db_replica")}


def test_each_mode_runs_its_own_parts_of_the_deploy() -> None:
    production, development = sources("production"), sources("development")
    # tls.yml and tls_issue.yml run in both: with tls off (which development mode requires) they change nothing
    common = {"preflight.yml", "live_release.yml", "system.yml", "services.yml", "user.yml", "bench.yml",
              "tls.yml", "sites.yml", "tls_issue.yml", "update_plan.yml",
              "nginx_check.yml"}  # also the lb role's (which has no bench_mode)
    assert production == common | {"configs.yml", "verify.yml"}
    assert development == common | {"development.yml"}


def test_development_mode_restarts_nothing_through_supervisor() -> None:
    restart = next(h for h in HANDLERS if h.name == "restart bench")
    assert runs(restart, "production") and not runs(restart, "development")
