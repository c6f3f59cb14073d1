"""Secret values: how they are marked, and how every output is scrubbed of them.

A value is secret when it is tagged ``!secret`` in YAML (it loads as ``Secret``), when its
variable's name looks like a credential (``is_secret_name``), or when a module argument is
declared secret. The ``Redactor`` collects those values once per run and replaces them in every
line the reporter writes, JSON events and tracebacks included: redaction happens at the output
layer, so no task module has to remember it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "********"

# Names that hold credentials. Paths to key files (``*_key_file``, ``ssl_certificate_key``) are not
# secrets, the keys themselves are.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_key|encryption_key|private_key)(?!_file|_path)")

# Shorter values would redact ordinary words ("root", "1") all over the output.
MIN_SECRET_LENGTH = 4


class Secret(str):
    """A string that must never be shown; ``repr`` hides it too."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"


def is_secret_name(name: str) -> bool:
    """True if a variable of this name holds a credential."""
    return bool(_SECRET_NAME.search(name.lower()))


def secret_values(variables: Mapping[str, Any], *, extra_names: Iterable[str] = ()) -> set[str]:
    """Every secret value found in ``variables``, nested mappings and lists included."""
    found: set[str] = set()
    named = set(extra_names)

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Secret) or (secret and isinstance(value, str | int) and not isinstance(value, bool)):
            found.add(str(value))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or is_secret_name(str(key)) or str(key) in named)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)

    for key, value in variables.items():
        walk(value, is_secret_name(key) or key in named)
    return found


class Redactor:
    """Replaces every known secret value in text; thread-safe, grows during a run."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Learn more secret values (e.g. a password read at a prompt)."""
        fresh = {v for v in values if len(v) >= MIN_SECRET_LENGTH} - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            # Longest first, so a secret that contains another is replaced whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern else text

    def scrub(self, value: Any) -> Any:
        """Redact inside a JSON-like structure (for events)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value
