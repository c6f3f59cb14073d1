"""The control host's crontab entries for ``provision backup`` (and the weekly ``backup verify``).

Each entry is two lines, as Ansible's cron module writes them: a marker comment naming it, then
the schedule. Installing replaces the entry with the same marker and leaves every other line
alone, so a second install with the same options changes nothing. The command runs in the
project directory with absolute paths (cron's PATH is short and its directory is $HOME), writes
one log per run through ``--log-dir`` and keeps the last ``--keep-logs``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackupError, OptionsError

MARKER = "# provision:"
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class CronEntry:
    """One managed entry: its marker name and its schedule line."""

    name: str
    line: str

    def lines(self) -> list[str]:
        return [f"{MARKER}{self.name}", self.line]


def parse_at(text: str) -> tuple[int, int]:
    match = _AT.match(text.strip())
    if not match:
        raise OptionsError(f"--at {text!r} is not a time HH:MM",
                           hint="e.g. --at 02:30 (24-hour, the control host's time)")
    return int(match.group(1)), int(match.group(2))


def backup_entries(group: str, at: str, *, project_dir: Path, inventory: Path, log_dir: Path, keep_logs: int,
                   verify_weekly: bool, python: str | None = None,
                   vault_password_file: Path | None = None) -> list[CronEntry]:
    """The entries ``cron install backup GROUP`` manages.

    cron's environment has none of the operator's variables: a vaulted inventory needs its password
    file named on the line (a path, never the password).
    """
    hour, minute = parse_at(at)
    python = python or sys.executable
    base = (f"cd {shlex.quote(str(project_dir))} && {shlex.quote(python)} -m provision backup")
    common = (f"-i {shlex.quote(str(inventory))} --log-dir {shlex.quote(str(log_dir))} --keep-logs {keep_logs}")
    if vault_password_file is not None:
        common += f" --vault-password-file {shlex.quote(str(vault_password_file))}"
    errors = shlex.quote(str(log_dir / "cron-errors.log"))
    entries = [CronEntry(f"backup:{group}",
                         f"{minute} {hour} * * * {base} {shlex.quote(group)} {common} >/dev/null 2>>{errors}")]
    if verify_weekly:
        entries.append(CronEntry(f"backup-verify:{group}",
                                 f"{minute} {(hour + 2) % 24} * * 0 {base} verify {shlex.quote(group)} {common} "
                                 f">/dev/null 2>>{errors}"))
    return entries


def merge_entries(current: str, entries: list[CronEntry], *, remove: bool = False) -> str:
    """The crontab text with ``entries`` in place of any managed entries of the same names (or without them)."""
    names = {e.name for e in entries}
    lines = current.splitlines()
    kept: list[str] = []
    skip_next = False
    for line in lines:
        if skip_next:
            skip_next = False
            continue
        if line.startswith(MARKER) and line[len(MARKER):].strip() in names:
            skip_next = True
            continue
        kept.append(line)
    if not remove:
        for entry in entries:
            kept.extend(entry.lines())
    return "\n".join(kept) + "\n" if kept else ""


def managed_entries(current: str) -> list[CronEntry]:
    """Every entry of the crontab this tool manages."""
    lines = current.splitlines()
    return [CronEntry(line[len(MARKER):].strip(), lines[i + 1]) for i, line in enumerate(lines[:-1])
            if line.startswith(MARKER)]


def _crontab(args: list[str], user: str | None, text: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["crontab", *(["-u", user] if user else []), *args]
    try:
        return subprocess.run(argv, input=text, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise BackupError("crontab is not installed on this control host", hint="apt-get install cron") from None


def read_crontab(user: str | None = None) -> str:
    proc = _crontab(["-l"], user)
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise BackupError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout


def write_crontab(text: str, user: str | None = None) -> None:
    proc = _crontab(["-"], user, text)
    if proc.returncode != 0:
        raise BackupError(f"crontab refused the new table: {proc.stderr.strip()}")


def install(entries: list[CronEntry], *, user: str | None = None, remove: bool = False) -> bool:
    """Install (or remove) entries; True when the crontab changed."""
    current = read_crontab(user)
    wanted = merge_entries(current, entries, remove=remove)
    if wanted == current or (not wanted.strip() and not current.strip()):
        return False
    write_crontab(wanted, user)
    return True


def keep_last_logs(log_dir: Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` logs named ``<prefix>-*.log``; returns the deleted ones."""
    logs = sorted(log_dir.glob(f"{prefix}-*.log"))
    old = logs[: max(0, len(logs) - keep)]
    for path in old:
        path.unlink()
    return old
