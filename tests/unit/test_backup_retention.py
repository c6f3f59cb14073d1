"""GFS retention: exactly the expected set after 400 daily runs, the newest always kept, failed Sundays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from provision.backup.manifest import StoredBackup, stamp
from provision.backup.retention import Policy, plan_retention
from provision.errors import InventoryError

pytestmark = pytest.mark.unit

LAST_DAY = date(2026, 12, 1)  # a Tuesday: the fixed clock of these tests


def runs(days: int = 400, *, skip: set[date] = frozenset(), unverified: set[date] = frozenset()) -> list[StoredBackup]:
    """One backup a day at 02:30 UTC, ending on LAST_DAY."""
    found = []
    for back in range(days):
        day = LAST_DAY - timedelta(days=back)
        if day in skip:
            continue
        taken = datetime(day.year, day.month, day.day, 2, 30, tzinfo=UTC)
        found.append(StoredBackup(Path(stamp(taken)), taken, {"verified": day not in unverified}))
    return sorted(found, key=lambda b: b.taken)


def days_of(names: set[str] | list[str]) -> set[date]:
    return {datetime.strptime(n[:8], "%Y%m%d").date() for n in names}


def test_400_daily_runs_leave_exactly_the_gfs_set() -> None:
    plan = plan_retention(runs(), Policy(last=1, daily=7, weekly=4, monthly=12, yearly=2))
    daily = {LAST_DAY - timedelta(days=n) for n in range(7)}                          # Nov 25 .. Dec 1
    weekly = {LAST_DAY, date(2026, 11, 29), date(2026, 11, 22), date(2026, 11, 15)}  # this week's newest + Sundays
    monthly = {LAST_DAY} | {date(2026, m + 1, 1) - timedelta(days=1) for m in range(1, 12)}  # Jan 31 .. Nov 30
    yearly = {LAST_DAY, date(2025, 12, 31)}
    assert days_of(plan.keep) == daily | weekly | monthly | yearly
    assert len(plan.keep) + len(plan.prune) == 400
    assert plan.keep[stamp(datetime(2026, 11, 29, 2, 30, tzinfo=UTC))] == ["daily 2026-11-29", "weekly 2026-W48"]
    assert "yearly 2025" in plan.keep[stamp(datetime(2025, 12, 31, 2, 30, tzinfo=UTC))]
    assert plan.keep[stamp(datetime(2026, 12, 1, 2, 30, tzinfo=UTC))][0] == "newest verified"


def test_policy_zero_still_keeps_the_newest_verified_backup() -> None:
    backups = runs(30, unverified={LAST_DAY})
    plan = plan_retention(backups, Policy(last=0, daily=0, weekly=0, monthly=0, yearly=0))
    assert days_of(plan.keep) == {LAST_DAY - timedelta(days=1)}  # the newest VERIFIED one
    assert days_of(plan.untouched) == {LAST_DAY}                  # an unverified one is neither kept nor pruned
    assert len(plan.prune) == 28


def test_a_week_whose_sunday_failed_still_has_a_weekly() -> None:
    failed_sunday = date(2026, 11, 22)
    plan = plan_retention(runs(skip={failed_sunday}), Policy(last=1, daily=7, weekly=4, monthly=0, yearly=0))
    weeklies = {name for name, reasons in plan.keep.items() if any(r.startswith("weekly") for r in reasons)}
    assert days_of(weeklies) == {LAST_DAY, date(2026, 11, 29), date(2026, 11, 21), date(2026, 11, 15)}


def test_backups_of_one_day_keep_the_newest_of_that_day_and_keep_last() -> None:
    base = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    backups = [StoredBackup(Path(stamp(base + timedelta(hours=h))), base + timedelta(hours=h), {"verified": True})
               for h in range(5)]
    plan = plan_retention(backups, Policy(last=2, daily=7, weekly=0, monthly=0, yearly=0))
    assert sorted(plan.keep) == [stamp(base + timedelta(hours=3)), stamp(base + timedelta(hours=4))]
    assert all("days" in why for why in plan.prune.values())


def test_policy_from_variables_rejects_bad_values() -> None:
    assert Policy.from_vars({"keep_daily": "3"}).daily == 3
    assert Policy.from_vars({}).weekly == 4
    with pytest.raises(InventoryError, match="keep_weekly must be a whole number"):
        Policy.from_vars({"keep_weekly": -1})
    with pytest.raises(InventoryError, match="keep_monthly"):
        Policy.from_vars({"keep_monthly": "many"})


def test_a_restores_safety_backup_outlives_the_days_rules() -> None:
    backups = runs(20)
    safety_day = LAST_DAY - timedelta(days=3)
    taken = datetime(safety_day.year, safety_day.month, safety_day.day, 14, 0, tzinfo=UTC)
    backups.append(StoredBackup(Path(stamp(taken)), taken, {"verified": True, "kind": "safety"}))
    old = taken - timedelta(days=10)
    backups.append(StoredBackup(Path(stamp(old)), old, {"verified": True, "kind": "safety"}))
    plan = plan_retention(sorted(backups, key=lambda b: b.taken), Policy(last=1, daily=1, weekly=0, monthly=0,
                                                                          yearly=0, safety_days=7))
    assert plan.keep[stamp(taken)] == ["safety backup before a restore (7 days)"]
    assert stamp(old) in plan.prune
