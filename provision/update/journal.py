"""The journal of one update or rollback on a host, and what the next run does with a cut one.

Each operation appends JSON lines to ``<shared>/journal/<run_id>.jsonl`` on the host: a step is
written (and fsynced) before it starts and again when it ends, so a run cut anywhere — SSH
dropped, the control host killed, Ctrl-C — leaves a journal that says how far it got. The next
``update``/``deploy``/``rollback`` on the host reads it under the host lock and, from the journal
and the live link (the truth about which release serves), decides (``recovery_plan``):

- nothing switched yet: *abort* — end maintenance for the sites that entered it; the live release
  never changed and no database was migrated;
- switched and every planned migrate finished: *complete* — restart, health gate, maintenance off
  (a failing gate rolls back);
- anything else (a migrate cut or failed, a rollback under way): *roll back* — switch back, restore
  the databases whose migrate had started from the step's backups, maintenance off.

Never two releases serving one host's sites (there is one link), never a site left in maintenance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from shlex import quote
from typing import Any, Literal

# Step names, in the order an update writes them.
BEGIN = "begin"
MAINTENANCE_ON = "maintenance_on"
DRAIN = "drain"
BACKUP = "backup"
SWITCH = "switch"
MIGRATE = "migrate"
RESTART = "restart"
HEALTH = "health"
MAINTENANCE_OFF = "maintenance_off"
ROLLBACK = "rollback"
SWITCH_BACK = "switch_back"
RESTORE = "restore"
END = "end"

Phase = Literal["start", "done", "failed"]
Action = Literal["none", "abort", "complete", "rollback"]

KEEP_JOURNALS = 30


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    step: str
    phase: Phase
    site: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: float = 0.0
    run_id: str = ""

    def to_json(self) -> str:
        record: dict[str, Any] = {"ts": round(self.ts or time.time(), 3), "run_id": self.run_id,
                                  "step": self.step, "phase": self.phase}
        if self.site is not None:
            record["site"] = self.site
        if self.data:
            record["data"] = dict(self.data)
        return json.dumps(record, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Entry | None:
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            return None  # a line cut by a crash mid-write
        if not isinstance(raw, dict) or "step" not in raw or raw.get("phase") not in ("start", "done", "failed"):
            return None
        return cls(step=str(raw["step"]), phase=raw["phase"], site=raw.get("site"), data=raw.get("data") or {},
                   ts=float(raw.get("ts") or 0), run_id=str(raw.get("run_id") or ""))


@dataclass(frozen=True)
class Recovery:
    """What the next run does with a journal that has no end."""

    action: Action
    reason: str
    from_path: str = ""
    to_path: str = ""
    from_release: str = ""
    to_release: str = ""
    maintenance_sites: tuple[str, ...] = ()
    restore_sites: tuple[str, ...] = ()
    backups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    run_id: str = ""


def parse(text: str) -> list[Entry]:
    """The entries of a journal file; unreadable lines (a write cut by a crash) are skipped."""
    return [entry for line in text.splitlines() if line.strip() and (entry := Entry.from_json(line))]


def _sites(entries: Iterable[Entry], step: str, phase: str | None = None) -> list[str]:
    found: list[str] = []
    for entry in entries:
        if entry.step == step and entry.site and (phase is None or entry.phase == phase) and entry.site not in found:
            found.append(entry.site)
    return found


def recovery_plan(entries: list[Entry], live_path: str) -> Recovery:
    """Decide how to finish a journal from its entries and the path the live link points at now."""
    begin = next((e for e in entries if e.step == BEGIN), None)
    if begin is None:
        return Recovery("none", "the journal has no begin entry: nothing was done")
    if any(e.step == END for e in entries):
        return Recovery("none", "the operation ended")
    data = begin.data
    from_path, to_path = str(data.get("from_path", "")), str(data.get("to_path", ""))
    common: dict[str, Any] = {
        "from_path": from_path, "to_path": to_path, "from_release": str(data.get("from_release", "")),
        "to_release": str(data.get("to_release", "")), "run_id": begin.run_id,
    }
    entered = _sites(entries, MAINTENANCE_ON)
    left = _sites(entries, MAINTENANCE_OFF, "done")
    in_maintenance = tuple(s for s in entered if s not in left)
    backups = {e.site: dict(e.data) for e in entries if e.step == BACKUP and e.phase == "done" and e.site}
    restored = set(_sites(entries, RESTORE, "done"))
    migrate_started = _sites(entries, MIGRATE, "start")
    restore = tuple(s for s in migrate_started if s not in restored)
    planned = [str(s) for s in data.get("migrate_sites", [])]
    migrated = set(_sites(entries, MIGRATE, "done"))
    failed = [e for e in entries if e.phase == "failed" and e.step in (MIGRATE, RESTART, HEALTH, SWITCH)]
    switched = live_path == to_path and to_path != from_path
    if any(e.step == ROLLBACK for e in entries):
        return Recovery("rollback", "a rollback was under way", maintenance_sites=tuple(entered),
                        restore_sites=restore, backups=backups, **common)
    if not switched:
        if migrate_started and live_path != from_path:
            return Recovery("rollback", f"the live link points at neither release ({live_path})",
                            maintenance_sites=tuple(entered), restore_sites=restore, backups=backups, **common)
        if migrate_started:
            # switched back already, but a migrated database may not be restored yet
            return Recovery("rollback", "the switch was undone but migrated databases were not restored",
                            maintenance_sites=tuple(entered), restore_sites=restore, backups=backups, **common)
        return Recovery("abort", "cut before the switch: the live release never changed",
                        maintenance_sites=in_maintenance, backups=backups, **common)
    if failed:
        step = failed[-1]
        return Recovery("rollback", f"{step.step} failed{' on ' + step.site if step.site else ''}",
                        maintenance_sites=tuple(entered), restore_sites=restore, backups=backups, **common)
    if all(site in migrated for site in planned):
        return Recovery("complete", "switched and every planned migrate finished",
                        maintenance_sites=in_maintenance, backups=backups, **common)
    unfinished = [s for s in planned if s not in migrated]
    return Recovery("rollback", f"cut during migrate ({', '.join(unfinished)} not finished)",
                    maintenance_sites=tuple(entered), restore_sites=restore, backups=backups, **common)


# -- host scripts ----------------------------------------------------------------------------------


def journal_dir(shared_path: str) -> str:
    return f"{shared_path}/journal"


def append_script(shared_path: str, run_id: str) -> str:
    """Append the lines on stdin to the run's journal, fsynced before the script returns."""
    path = f"{journal_dir(shared_path)}/{run_id}.jsonl"
    return (
        f"mkdir -p {quote(journal_dir(shared_path))} && chmod 0750 {quote(journal_dir(shared_path))}\n"
        "python3 -c '\n"
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)\n"
        "os.write(fd, sys.stdin.buffer.read())\n"
        "os.fsync(fd)\n"
        "os.close(fd)\n"
        f"' {quote(path)}\n"
    )


OPEN_MARK = "@@provision-journal@@"


def open_journals_script(shared_path: str) -> str:
    """Print every journal that has no end entry, each after a mark line with its file name."""
    directory = quote(journal_dir(shared_path))
    return (
        f"[ -d {directory} ] || exit 0\n"
        f"for f in {directory}/*.jsonl; do\n"
        '  [ -f "$f" ] || continue\n'
        "  grep -q '\"step\":\"end\"' \"$f\" && continue\n"
        f'  echo "{OPEN_MARK} $(basename "$f" .jsonl)"; cat "$f"; echo\n'
        "done\n"
        # old, ended journals go: the newest ones stay for people to read
        f"ls -1t {directory}/*.jsonl 2>/dev/null | tail -n +{KEEP_JOURNALS + 1} | while read -r old; do\n"
        "  grep -q '\"step\":\"end\"' \"$old\" && rm -f -- \"$old\"\n"
        "done\n"
        "exit 0\n"
    )


def parse_open_journals(output: str) -> dict[str, list[Entry]]:
    """``{run_id: entries}`` from ``open_journals_script``'s output."""
    journals: dict[str, list[str]] = {}
    current: str | None = None
    for line in output.splitlines():
        if line.startswith(OPEN_MARK):
            current = line[len(OPEN_MARK):].strip()
            journals[current] = []
        elif current is not None:
            journals[current].append(line)
    return {run_id: parse("\n".join(lines)) for run_id, lines in journals.items()}
