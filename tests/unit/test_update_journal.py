"""The journal's recovery decisions: a cut update is finished or rolled back, never left half done."""

from __future__ import annotations

import pytest

from provision.update import journal
from provision.update.journal import Entry, parse, parse_open_journals, recovery_plan

pytestmark = pytest.mark.unit

OLD, NEW = "/b/r-old/frappe-bench", "/b/r-new/frappe-bench"


def begin(*migrate: str) -> Entry:
    return Entry(journal.BEGIN, "start", data={"from_path": OLD, "to_path": NEW, "sites": ["s1", "s2"],
                                               "migrate_sites": list(migrate)}, run_id="run1")


def steps(*items: tuple[str, str, str | None]) -> list[Entry]:
    return [Entry(step, phase, site, {"dir": f"/bk/{site}", "dump": f"/bk/{site}.sql.gz"} if step == "backup" else {})
            for step, phase, site in items]


def test_no_begin_or_an_end_means_nothing_to_do() -> None:
    assert recovery_plan([], OLD).action == "none"
    assert recovery_plan([begin(), Entry(journal.END, "done")], NEW).action == "none"


def test_cut_before_the_switch_aborts_and_ends_maintenance() -> None:
    entries = [begin("s1"), *steps(("maintenance_on", "start", "s1"), ("maintenance_on", "done", "s1"),
                                   ("backup", "start", "s1"))]
    plan = recovery_plan(entries, OLD)
    assert plan.action == "abort" and plan.maintenance_sites == ("s1",) and plan.restore_sites == ()


def test_cut_during_the_switch_with_the_link_still_old_aborts() -> None:
    entries = [begin("s1"), *steps(("maintenance_on", "done", "s1"), ("backup", "done", "s1"),
                                   ("switch", "start", None))]
    assert recovery_plan(entries, OLD).action == "abort"


def test_cut_during_migrate_rolls_back_and_restores_the_started_sites() -> None:
    entries = [begin("s1", "s2"), *steps(("maintenance_on", "done", "s1"), ("backup", "done", "s1"),
                                         ("maintenance_on", "done", "s2"), ("backup", "done", "s2"),
                                         ("switch", "start", None), ("switch", "done", None),
                                         ("migrate", "start", "s1"), ("migrate", "done", "s1"),
                                         ("migrate", "start", "s2"))]
    plan = recovery_plan(entries, NEW)
    assert plan.action == "rollback"
    assert plan.restore_sites == ("s1", "s2")
    assert plan.maintenance_sites == ("s1", "s2")
    assert plan.backups["s2"]["dump"] == "/bk/s2.sql.gz"
    assert plan.from_path == OLD and plan.to_path == NEW


def test_every_migrate_done_completes() -> None:
    entries = [begin("s1"), *steps(("maintenance_on", "done", "s1"), ("backup", "done", "s1"),
                                   ("switch", "done", None), ("migrate", "start", "s1"), ("migrate", "done", "s1"),
                                   ("restart", "start", None))]
    plan = recovery_plan(entries, NEW)
    assert plan.action == "complete" and plan.maintenance_sites == ("s1",)


def test_a_failed_step_after_the_switch_rolls_back() -> None:
    entries = [begin("s1"), *steps(("switch", "done", None), ("migrate", "start", "s1"), ("migrate", "done", "s1"),
                                   ("health", "start", None), ("health", "failed", None))]
    assert recovery_plan(entries, NEW).action == "rollback"


def test_a_rollback_under_way_continues_without_restoring_twice() -> None:
    entries = [begin("s1", "s2"), *steps(("switch", "done", None), ("migrate", "start", "s1"),
                                         ("migrate", "failed", "s1"), ("rollback", "start", None),
                                         ("switch_back", "done", None), ("restore", "start", "s1"),
                                         ("restore", "done", "s1"))]
    plan = recovery_plan(entries, OLD)
    assert plan.action == "rollback" and plan.restore_sites == ()


def test_switched_back_but_not_restored_still_rolls_back() -> None:
    entries = [begin("s1"), *steps(("switch", "done", None), ("migrate", "start", "s1"))]
    plan = recovery_plan(entries, OLD)
    assert plan.action == "rollback" and plan.restore_sites == ("s1",)


def test_no_migrating_site_switched_completes() -> None:
    entries = [begin(), *steps(("switch", "done", None))]
    assert recovery_plan(entries, NEW).action == "complete"


def test_lines_cut_by_a_crash_are_skipped() -> None:
    text = begin().to_json() + "\n" + '{"step": "maint' + "\n"
    assert [e.step for e in parse(text)] == ["begin"]


def test_parse_open_journals() -> None:
    output = f"{journal.OPEN_MARK} run1\n{begin().to_json()}\n\n{journal.OPEN_MARK} run2\n"
    found = parse_open_journals(output)
    assert list(found) == ["run1", "run2"] and found["run1"][0].step == "begin" and found["run2"] == []
