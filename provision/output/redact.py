"""Scrubbing of everything a reporter writes: text, diffs, registered data, exception text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provision.secrets import REDACTED, Redactor, Secret

JsonValue = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None


def scrub_text(redactor: Redactor, text: object) -> str:
    """``text`` as a string with every known secret (and any ``Secret``) replaced."""
    if isinstance(text, Secret):
        return REDACTED
    return redactor(str(text))


def scrub_data(redactor: Redactor, value: Any) -> JsonValue:
    """A plain JSON-like copy of ``value``, keys included, with every secret replaced.

    Objects that are not JSON types are shown by their ``str``, so the result always dumps
    (JSON or YAML) and nothing escapes redaction through an odd type.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return scrub_text(redactor, value)
    if isinstance(value, int | float):
        # A numeric secret (a PIN, a numeric password) is redacted like a string.
        return REDACTED if redactor(str(value)) != str(value) else value
    if isinstance(value, bytes):
        return scrub_text(redactor, value.decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return {scrub_text(redactor, key): scrub_data(redactor, item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub_data(redactor, item) for item in value]
    return scrub_text(redactor, value)
