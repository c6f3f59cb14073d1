"""Host patterns (``--limit``, a play's ``hosts:``) and host-name syntax (ranges, ``host:port``).

Patterns follow Ansible: ``web``, ``app*``, ``*.example.com``, ``~regex``, ``all`` or ``*``;
``a:b`` or ``a,b`` is a union, ``a:&b`` an intersection, ``a:!b`` an exclusion, applied in that
order whatever the order written (Ansible's ``order_patterns``). Unlike Ansible, the result is
always in inventory order, and a part that matches nothing is an error naming the closest known
names: a typo in ``!prod`` must not silently deploy to prod.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import string
from collections.abc import Mapping, Sequence

from .errors import InventoryError, Source

ALL = "all"
UNGROUPED = "ungrouped"

# A colon-separated pattern list, keeping [x:y] brackets whole (Ansible's split_host_pattern).
_COLON_PARTS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
# host:port where host has no bare colon (IPv6 must be written [addr]:port).
_HOST_PORT = re.compile(r"(?P<host>(?:[^:\[\]]|\[[^\]]*\])+):(?P<port>[0-9]+)")
_BRACKETED_IPV6 = re.compile(r"\[(?P<host>[0-9A-Fa-f:.]+:[0-9A-Fa-f:.]*)\](?::(?P<port>[0-9]+))?")
_GLOB_CHARS = frozenset("*?[")
# Host names one range line may expand to (a 50k-host inventory fits; app[0:99999999] does not).
MAX_RANGE_HOSTS = 100_000


def split_patterns(pattern: str) -> list[str]:
    """``"web:&prod,!db"`` style text as its parts; commas win over colons when both appear."""
    if "," in pattern:
        parts = pattern.split(",")
    elif ":" in pattern:
        parts = _COLON_PARTS.findall(pattern)
    else:
        parts = [pattern]
    return [part.strip() for part in parts if part.strip()]


def select_hosts(
    pattern: str | Sequence[str] | None,
    hosts: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    *,
    source: Source | None = None,
) -> list[str]:
    """Names of the ``hosts`` (in their order) that ``pattern`` selects.

    Args:
        pattern: the pattern text, or a list of them (a play's ``hosts: [web, db]``);
            ``None`` or empty selects every host.
        hosts: every host name, in inventory order.
        groups: every group name (``all`` included) mapped to all its hosts, children's included.
        source: where the pattern was written, for the error.
    """
    texts = [pattern] if isinstance(pattern, str) else list(pattern or [])
    parts = [part for text in texts for part in split_patterns(str(text))]
    if not parts:
        return list(hosts)
    pattern = ",".join(texts)
    regular = [p for p in parts if p[0] not in "&!"]
    intersect = [p[1:] for p in parts if p[0] == "&"]
    exclude = [p[1:] for p in parts if p[0] == "!"]
    selected: set[str] = set()
    for part in regular or [ALL]:
        selected |= _match_one(part, hosts, groups, pattern, source)
    for part in intersect:
        selected &= _match_one(part, hosts, groups, pattern, source)
    for part in exclude:
        selected -= _match_one(part, hosts, groups, pattern, source)
    return [name for name in hosts if name in selected]


def _match_one(
    part: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]], whole: str, source: Source | None
) -> set[str]:
    if not part:
        raise InventoryError(
            f"host pattern {whole!r} has an empty part", source=source, hint="write a name after '&' or '!'"
        )
    if part in (ALL, "*"):
        return set(hosts)
    if part in groups:
        return set(groups[part])
    if part in hosts:
        return {part}
    if part.startswith("~"):
        try:
            regex = re.compile(part[1:])
        except re.error as exc:
            raise InventoryError(
                f"host pattern {part!r} is not a valid regular expression: {exc}", source=source
            ) from None
    elif _GLOB_CHARS & set(part):
        regex = re.compile(fnmatch.translate(part))
    else:
        raise _no_match(part, hosts, groups, whole, source)
    found: set[str] = set()
    # A glob that names only empty groups is not a typo: it selects nothing.
    matched_group = False
    for group, members in groups.items():
        if group not in (ALL, UNGROUPED) and regex.match(group):
            matched_group = True
            found.update(members)
    found.update(name for name in hosts if regex.match(name))
    if not found and not matched_group:
        raise _no_match(part, hosts, groups, whole, source)
    return found


def _no_match(
    part: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]], whole: str, source: Source | None
) -> InventoryError:
    known = [g for g in groups if g not in (ALL, UNGROUPED)] + list(hosts)
    close = difflib.get_close_matches(part.lstrip("~"), known, n=5, cutoff=0.5)
    where = f" in {whole!r}" if whole != part else ""
    message = f"host pattern {part!r}{where} matches no host or group"
    if close:
        hint = f"did you mean {', '.join(close)}?"
    else:
        listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        hint = f"known groups and hosts: {listed}" if known else "the inventory has no hosts"
    if part in ("localhost", "127.0.0.1", "::1"):
        hint = "add localhost to the inventory, with 'ansible_connection: local' (or 'connection: local')"
    return InventoryError(message, source=source, hint=hint)


def parse_host_address(text: str) -> tuple[str, int | None]:
    """Split ``host:port`` (``[v6addr]:port`` for IPv6); a bare IPv6 address has no port."""
    match = _BRACKETED_IPV6.fullmatch(text)
    if match:
        port = match.group("port")
        return match.group("host"), int(port) if port else None
    match = _HOST_PORT.fullmatch(text)
    if match:
        return match.group("host"), int(match.group("port"))
    return text, None


def expand_host_range(name: str, *, limit: int | None = None) -> list[str]:
    """``app[01:03].x`` → ``app01.x app02.x app03.x``; ``db-[a:c]``; steps ``[1:9:2]``; several ranges.

    At most ``limit`` names (``MAX_RANGE_HOSTS``), counted before any is built: ``app[0:99999999]``
    is an error, not gigabytes of names. Raises ``ValueError`` with the reason; the caller adds the
    file and line.
    """
    limit = MAX_RANGE_HOSTS if limit is None else limit
    parts: list[str | Sequence[str]] = []
    rest = name
    count = 1
    while True:
        start = rest.find("[")
        if start < 0:
            parts.append(rest)
            break
        end = rest.find("]", start)
        if end < 0:
            raise ValueError("'[' without a closing ']'")
        items = _range_items(rest[start + 1 : end])
        count *= len(items)
        if count > limit:
            raise ValueError(f"it expands to more than {limit:,} host names (at most {limit:,} per line)")
        parts.extend((rest[:start], items))
        rest = rest[end + 1 :]
    names = [""]
    for part in parts:
        if isinstance(part, str):
            names = [f"{head}{part}" for head in names]
        else:
            names = [f"{head}{item}" for head in names for item in part]
    return names


class _Padded(Sequence[str]):
    """Numbers of a range as names, made only when read (its length is known at once)."""

    def __init__(self, numbers: range, width: int) -> None:
        self.numbers = numbers
        self.width = width

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return str(self.numbers[index]).zfill(self.width)


def _range_items(body: str) -> Sequence[str]:
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"range [{body}] must be [begin:end] or [begin:end:step]")
    begin, last = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not last:
        raise ValueError(f"range [{body}] has no end")
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError(f"range [{body}] step must be a positive integer")
    step = int(step_text)
    items: Sequence[str]
    if begin in string.ascii_letters and last in string.ascii_letters:
        first, final = string.ascii_letters.index(begin), string.ascii_letters.index(last)
        items = list(string.ascii_letters[first : final + 1 : step])
    elif begin.isdigit() and last.isdigit():
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and width != len(last):
            raise ValueError(f"range [{body}] pads its begin and end to different widths")
        items = _Padded(range(int(begin), int(last) + 1, step), width)
    else:
        raise ValueError(f"range [{body}] must be numbers ([01:10]) or single letters ([a:f])")
    if not items:
        raise ValueError(f"range [{body}] is empty (begin after end)")
    return items
