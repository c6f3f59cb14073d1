"""Release records on a host, which releases to keep, and the scripts that read and mark them.

A release is ``<frappe_home>/benches/<release>/<bench_name>``; its record is
``benches/<release>/release.json`` (written by the build: apps with refs and commits, built at)
with a ``state``: ``built`` (never served), ``good`` (passed the health gate) or ``bad`` (failed
its update). Ages come from ``built_at`` in the record, never from file times (touching an old
release must not make it "new"). A bad release is never a rollback target.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from shlex import quote
from typing import Any

RELEASE_NAME = re.compile(r"^r-[0-9a-f]{12}$")
GOOD, BAD, BUILT = "good", "bad", "built"


@dataclass(frozen=True)
class Release:
    """One release directory on a host and what its record says."""

    name: str
    state: str = BUILT
    built_at: str = ""
    apps: tuple[dict[str, str], ...] = ()
    reason: str = ""
    marked_at: str = ""
    live: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def refs(self) -> str:
        return ", ".join(f"{a.get('name')}@{a.get('ref')} ({str(a.get('commit', ''))[:10]})" for a in self.apps)


def prune(releases: Sequence[Release], live: str, keep: int) -> list[str]:
    """Names of the releases to delete: keep the live one, the newest ``keep`` good ones (live
    counted), the newest bad one (to look at), and anything newer than the live one (being built).
    """
    keep = max(keep, 1)
    ordered = sorted(releases, key=lambda r: (r.built_at, r.name), reverse=True)
    live_release = next((r for r in ordered if r.name == live), None)
    live_at = live_release.built_at if live_release else ""
    others = [r for r in ordered if r.state == GOOD and r.name != live]
    kept = {r.name for r in others[:keep - 1]} | {live}
    bad = [r for r in ordered if r.state == BAD]
    if bad:
        kept.add(bad[0].name)
    doomed: list[str] = []
    for release in ordered:
        if release.name in kept or not RELEASE_NAME.match(release.name):
            continue
        if release.state not in (GOOD, BAD) and live_at and release.built_at > live_at:
            continue  # built after the live one: maybe the next update's, never served yet
        doomed.append(release.name)
    return doomed


def rollback_target(releases: Sequence[Release], live: str, wanted: str | None = None) -> Release | None:
    """The release a rollback goes to: ``wanted`` if it is good, else the newest good one before live."""
    by_name = {r.name: r for r in releases}
    if wanted is not None:
        release = by_name.get(wanted)
        return release if release is not None and release.state == GOOD and release.name != live else None
    live_at = by_name[live].built_at if live in by_name else "~"
    older = [r for r in releases if r.state == GOOD and r.name != live and r.built_at <= live_at]
    return max(older, key=lambda r: (r.built_at, r.name), default=None)


# -- host scripts ----------------------------------------------------------------------------------

_MARK = "@@provision-release@@"


def list_script(frappe_home: str, bench_path: str) -> str:
    """Print the live link's target, then each release's name and record."""
    benches = quote(f"{frappe_home}/benches")
    return (
        f"echo \"live=$(readlink {quote(bench_path)})\"\n"
        f"for d in {benches}/*/; do\n"
        '  [ -d "$d" ] || continue\n'
        f'  echo "{_MARK} $(basename "$d")"\n'
        '  cat "$d/release.json" 2>/dev/null; echo\n'
        "done\n"
    )


def parse_list(output: str) -> tuple[str, list[Release]]:
    """(live release name, releases) from ``list_script``'s output."""
    live_path = ""
    chunks: dict[str, list[str]] = {}
    current: str | None = None
    for line in output.splitlines():
        if current is None and line.startswith("live="):
            live_path = line[5:].strip()
        elif line.startswith(_MARK):
            current = line[len(_MARK):].strip()
            chunks[current] = []
        elif current is not None:
            chunks[current].append(line)
    live = release_of(live_path)
    releases = []
    for name, lines in chunks.items():
        try:
            record = json.loads("\n".join(lines)) if "".join(lines).strip() else {}
        except json.JSONDecodeError:
            record = {}
        releases.append(Release(
            name=name, state=str(record.get("state", BUILT)), built_at=str(record.get("built_at", "")),
            apps=tuple(a for a in record.get("apps", []) if isinstance(a, dict)), reason=str(record.get("reason", "")),
            marked_at=str(record.get("marked_at", "")), live=name == live,
        ))
    return live, sorted(releases, key=lambda r: (r.built_at, r.name))


def release_of(path: str) -> str:
    """The release name in a release's bench path (``.../benches/<release>/<bench>``)."""
    parts = [p for p in path.rstrip("/").split("/") if p]
    if len(parts) >= 3 and parts[-3] == "benches":
        return parts[-2]
    if len(parts) >= 2 and parts[-2] == "benches":
        return parts[-1]  # the layout before releases ended in the bench's name
    return ""


def mark_script(release_dir: str, state: str, reason: str = "", *, only_if_built: bool = False) -> str:
    """Set a release record's state (atomically), keeping the rest of the record; with
    ``only_if_built``, only a release that was never marked (a first deploy's) changes."""
    record = f"{release_dir}/release.json"
    guard = "if data.get(\"state\", \"built\") != \"built\":\n    sys.exit(0)\n" if only_if_built else ""
    return (
        "python3 -c '\n"
        "import json, os, sys, time\n"
        "path, state, reason = sys.argv[1:4]\n"
        "try:\n"
        "    data = json.load(open(path))\n"
        "except (OSError, ValueError):\n"
        "    data = {}\n"
        f"{guard}"
        "data.update(state=state, reason=reason, marked_at=time.strftime(\"%Y-%m-%dT%H:%M:%SZ\", time.gmtime()))\n"
        "with open(path + \".tmp\", \"w\") as fh:\n"
        "    json.dump(data, fh, indent=1, sort_keys=True)\n"
        "    fh.write(\"\\n\")\n"
        "    fh.flush()\n"
        "    os.fsync(fh.fileno())\n"
        "os.replace(path + \".tmp\", path)\n"
        f"' {quote(record)} {quote(state)} {quote(reason)}\n"
    )


def delete_script(frappe_home: str, bench_path: str, names: Iterable[str], live: str) -> str:
    """Remove release directories by name; the host checks again that none is the live one."""
    lines = [f"live_dir=$(dirname \"$(readlink -f {quote(bench_path)})\")"]
    for name in names:
        if not RELEASE_NAME.match(name) or name == live:
            continue
        path = quote(f"{frappe_home}/benches/{name}")
        lines.append(f"if [ \"$live_dir\" != \"$(readlink -f {path})\" ]; then "
                     f"rm -rf -- {path} && echo deleted {name}; fi")
    return "\n".join(lines) + "\n"
