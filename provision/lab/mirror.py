"""The Debian mirror this machine already uses, read from its apt sources at run time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from provision.errors import LabError

APT_DIR = Path("/etc/apt")
# Suites of the Debian archive itself; a third-party repository that reuses a codename is
# told apart by its components (Debian's always include "main") and its keyring.
DEBIAN_CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "stable", "testing")
_SUITE_SUFFIXES = ("", "-updates", "-security")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry: a mirror URI, a suite and its components."""

    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


def parse_deb822(text: str) -> list[AptSource]:
    """Entries of a deb822 ``.sources`` file (one stanza per blank-line separated block)."""
    sources: list[AptSource] = []
    for stanza in _stanzas(text):
        if "deb" not in stanza.get("types", "").split() or stanza.get("enabled", "yes").lower() == "no":
            continue
        if not _debian_keyring(stanza.get("signed-by", "")):
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            sources.extend(AptSource(uri, suite, components) for suite in stanza.get("suites", "").split())
    return sources


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a one-line ``sources.list`` (``deb [options] URI SUITE COMPONENT...``)."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        options = ""
        rest = line[4:].strip()
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
        fields = rest.split()
        if len(fields) < 3:
            continue
        signed_by = next((o.split("=", 1)[1] for o in options.split() if o.startswith("signed-by=")), "")
        if _debian_keyring(signed_by):
            sources.append(AptSource(fields[0], fields[1], tuple(fields[2:])))
    return sources


def debian_sources(sources: Iterable[AptSource], codename: str) -> list[AptSource]:
    """The Debian archive entries, moved to ``codename`` (e.g. a trixie machine building a bookworm base)."""
    result: list[AptSource] = []
    for source in sources:
        release, dash, suffix = source.suite.partition("-")
        if release not in DEBIAN_CODENAMES or "main" not in source.components or f"{dash}{suffix}" not in \
                _SUITE_SUFFIXES:
            continue
        moved = AptSource(source.uri.rstrip("/"), f"{codename}{dash}{suffix}", source.components)
        if moved not in result:
            result.append(moved)
    return result


def machine_sources(codename: str, apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Debian mirror entries of this machine's apt sources, for ``codename``; a LabError if there are none."""
    found: list[AptSource] = []
    listing = apt_dir / "sources.list"
    if listing.is_file():
        found += parse_one_line(listing.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                found += parse_deb822(path.read_text(errors="replace"))
            elif path.suffix == ".list":
                found += parse_one_line(path.read_text(errors="replace"))
    result = debian_sources(found, codename)
    if not any(s.suite == codename for s in result):
        raise LabError(
            f"no Debian mirror found in {apt_dir}/sources.list or {parts}/*.sources",
            hint="configure a Debian mirror for apt on this machine (the lab reads it at run time)",
        )
    return result


def render_sources_list(sources: Iterable[AptSource]) -> str:
    """A one-line ``sources.list`` for a lab host."""
    return "".join(f"{s.line()}\n" for s in sources)


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif raw.lstrip().startswith("#"):
            continue
        elif raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
        elif ":" in raw:
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def _debian_keyring(signed_by: str) -> bool:
    """True when no keyring is named (apt's trusted keys) or the named one is Debian's archive keyring."""
    return not signed_by or "debian-archive-" in signed_by
