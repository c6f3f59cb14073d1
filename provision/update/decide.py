"""Whether a site needs ``migrate``: from the files that changed between the live and target commits.

The rules are Frappe Cloud's agent's (``get_should_run_update_phase``) and press's: a changed
``hooks.py``, any ``*.json`` (doctypes, fixtures), anything under ``patches`` (or ``patches.txt``),
``fixtures/`` or ``custom/`` means migrate. When the change cannot be told (no diff, an app that is
new or gone, an unknown installed app), the answer is migrate. A site migrates when any app
installed on it does; the reason names the app and the first files that decided it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Shown in a reason at most; the rest is counted.
_SHOWN_PATHS = 3


@dataclass(frozen=True)
class AppChange:
    """One app between the live and the target release.

    ``paths`` is ``None`` when the diff could not be computed (then the app is treated as changed).
    """

    app: str
    live_commit: str | None
    target_commit: str | None
    paths: tuple[str, ...] | None = ()


@dataclass(frozen=True)
class AppDecision:
    app: str
    migrate: bool
    reason: str
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteDecision:
    """What happens to one site, and why."""

    site: str
    migrate: bool
    reason: str
    apps: tuple[AppDecision, ...] = field(default_factory=tuple)


def path_needs_migrate(path: str) -> bool:
    """True for a changed path that changes the schema or runs code on migrate."""
    name = posixpath.basename(path)
    parts = path.split("/")
    if name == "hooks.py" or name.endswith(".json"):
        return True
    if name == "patches.txt" or any(part == "patches" for part in parts[:-1]):
        return True
    return any(part in ("fixtures", "custom") for part in parts[:-1])


def decide_app(change: AppChange) -> AppDecision:
    """Migrate or not for one app, with the reason."""
    app = change.app
    if change.live_commit is None:
        return AppDecision(app, True, f"{app} is new in this release")
    if change.target_commit is None:
        return AppDecision(app, True, f"{app} is not in the target release")
    if change.live_commit == change.target_commit:
        return AppDecision(app, False, f"{app} unchanged ({change.live_commit[:10]})")
    span = f"{change.live_commit[:10]}..{change.target_commit[:10]}"
    if change.paths is None:
        return AppDecision(app, True, f"{app} {span}: cannot compare the commits, migrating to be safe")
    deciding = tuple(p for p in change.paths if path_needs_migrate(p))
    if deciding:
        shown = ", ".join(deciding[:_SHOWN_PATHS])
        more = f" (+{len(deciding) - _SHOWN_PATHS} more)" if len(deciding) > _SHOWN_PATHS else ""
        return AppDecision(app, True, f"{app} {span}: {shown}{more} changed", deciding)
    return AppDecision(app, False, f"{app} {span}: {len(change.paths)} file(s) changed, none needs migrate",
                       change.paths)


def decide_site(site: str, installed: Sequence[str] | None, changes: Mapping[str, AppChange]) -> SiteDecision:
    """Migrate ``site`` if any app installed on it needs it; ``installed=None`` means unknown (migrate)."""
    if installed is None:
        return SiteDecision(site, True, "cannot list the site's installed apps, migrating to be safe")
    decisions: list[AppDecision] = []
    for app in installed:
        change = changes.get(app)
        if change is None:
            decisions.append(AppDecision(app, True, f"{app} is installed on the site but not part of the release"))
        else:
            decisions.append(decide_app(change))
    migrating = [d for d in decisions if d.migrate]
    if migrating:
        return SiteDecision(site, True, "; ".join(d.reason for d in migrating), tuple(decisions))
    changed = [d for d in decisions if d.paths]
    reason = "; ".join(d.reason for d in changed) if changed else "no installed app changed"
    return SiteDecision(site, False, reason, tuple(decisions))


def decide_sites(installed: Mapping[str, Sequence[str] | None], changes: Iterable[AppChange]) -> list[SiteDecision]:
    """One decision per site, sites in name order."""
    by_app = {change.app: change for change in changes}
    return [decide_site(site, installed[site], by_app) for site in sorted(installed)]
