"""GFS retention of one site's backups on the control host.

For each rule (daily, weekly, monthly, yearly) with a count N, the newest verified backup of each of
the N most recent periods that HAVE a verified backup is kept, and ``keep_last`` newest ones whatever
their day (default 1). A period is a calendar day, an ISO week, a month or a year, in UTC. So a
failed Sunday leaves Saturday's backup as that week's weekly, and a site whose backups stopped
keeps its last ones instead of ageing out. The newest verified backup is always kept, whatever the
policy, and a restore's safety backup (the data it replaced) for ``keep_safety_days`` (default 7).
Backups that are not verified are never kept by a rule and never pruned either (a directory
without a readable manifest is left for a person to look at).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InventoryError
from .manifest import StoredBackup

RULES: tuple[tuple[str, Callable[[datetime], str]], ...] = (
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: f"{t.isocalendar()[0]:04d}-W{t.isocalendar()[1]:02d}"),
    ("monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", lambda t: t.strftime("%Y")),
)


@dataclass(frozen=True)
class Policy:
    """How many periods of each kind keep a backup."""

    last: int = 1
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    yearly: int = 2
    safety_days: int = 7

    @classmethod
    def from_vars(cls, variables: Mapping[str, Any]) -> Policy:
        """From inventory variables ``keep_daily`` ... ``keep_yearly`` (defaults 7/4/12/2)."""
        values = {}
        for kind in ("last", *(name for name, _ in RULES), "safety_days"):
            raw = variables.get(f"keep_{kind}", getattr(cls, kind))
            try:
                number = int(raw)
            except (TypeError, ValueError):
                number = -1
            if number < 0 or isinstance(raw, bool):
                raise InventoryError(f"keep_{kind} must be a whole number >= 0, got {raw!r}",
                                     hint=f"set keep_{kind}: 7 (or 0 to keep no {kind} backups)")
            values[kind] = number
        return cls(**values)


@dataclass
class RetentionPlan:
    """Which backups stay (with every reason) and which go (with why)."""

    keep: dict[str, list[str]] = field(default_factory=dict)
    prune: dict[str, str] = field(default_factory=dict)
    untouched: dict[str, str] = field(default_factory=dict)


def plan_retention(backups: Sequence[StoredBackup], policy: Policy) -> RetentionPlan:
    """Decide what to keep of one site's backups."""
    plan = RetentionPlan()
    verified = sorted((b for b in backups if b.verified), key=lambda b: (b.taken, b.name), reverse=True)
    for backup in backups:
        if not backup.verified:
            plan.untouched[backup.name] = "not a verified backup (no readable manifest saying so): left alone"
    if not verified:
        return plan
    plan.keep[verified[0].name] = ["newest verified"]
    for backup in verified[1:policy.last]:
        plan.keep.setdefault(backup.name, []).append("last")
    for kind, period_of in RULES:
        limit = getattr(policy, kind)
        seen: set[str] = set()
        for backup in verified:
            if len(seen) >= limit:
                break
            period = period_of(backup.taken)
            if period in seen:
                continue
            seen.add(period)
            plan.keep.setdefault(backup.name, []).append(f"{kind} {period}")
    # A restore's safety backup holds the data the restore replaced: it outlives the day's rules.
    for backup in verified:
        if backup.manifest.get("kind") == "safety" and (verified[0].taken - backup.taken).days < policy.safety_days:
            plan.keep.setdefault(backup.name, []).append(f"safety backup before a restore ({policy.safety_days} days)")
    for backup in verified:
        if backup.name not in plan.keep:
            plan.prune[backup.name] = (f"not one of the {policy.last} newest, nor the newest of any of the last "
                                       f"{policy.daily} days, {policy.weekly} weeks, {policy.monthly} months, "
                                       f"{policy.yearly} years")
    return plan
