"""The fix to suggest for a YAML syntax error, from the error and the line it points at.

A tab gets "use spaces", a duplicate key names both lines, and the quoting advice for ``{{``
is given only when a value on that line (or the one before) really starts with ``{{``.
"""

from __future__ import annotations

import re

_DUPLICATE = re.compile(r"duplicate key ('.*') \(also on line (\d+)\)")
_BRACES_VALUE = re.compile(r"(?::|^\s*-)\s+\{\{")
GENERIC = "check indentation and quoting on that line"


def yaml_hint(text: str, line: int | None, problem: str) -> str:
    """A hint that fits ``problem`` at ``line`` (1-based) of ``text``."""
    lines = text.splitlines()
    here = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
    before = lines[line - 2] if line is not None and 1 < line <= len(lines) + 1 else ""
    if "\\t" in problem or "\t" in problem or "\t" in here[: len(here) - len(here.lstrip())]:
        return "indent with spaces: YAML does not allow tabs for indentation"
    duplicate = _DUPLICATE.search(problem)
    if duplicate:
        key, first = duplicate.groups()
        return f"keep one of the two {key} lines ({first} and {line}): a key appears once per mapping"
    if any(_BRACES_VALUE.search(candidate) for candidate in (here, before)):
        return "a value that starts with '{{' must be quoted: key: \"{{ name }}\""
    return GENERIC
