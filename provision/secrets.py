"""Secret values: how they are marked, and how every output is scrubbed of them.

A value is secret when it is tagged ``!secret`` in YAML (it loads as ``Secret``), when its
variable's name looks like a credential (``is_secret_name``), or when a module argument is
declared secret. The ``Redactor`` collects those values once per run and replaces them in every
line the reporter writes, JSON events and tracebacks included: redaction happens at the output
layer, so no task module has to remember it.

A secret is redacted in every common way it can be printed, not only verbatim (``encodings``):
shell-quoted, Python/JSON-escaped (a dict or list printed whole), upper/lower-cased, base64 and
url-encoded. Values *derived* from a secret by a template (a slice, a filter, a database URL
built around it) are tainted: ``Secret`` keeps its type through str methods and slicing,
``taint_filters`` makes every Jinja filter return a ``Secret`` when its input held one, and
``note_derived`` teaches every live ``Redactor`` the derived text when it is output.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "********"

# Names that hold credentials. Paths to key files (``*_key_file``, ``ssl_certificate_key``) are not
# secrets, the keys themselves are.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_key|encryption_key|private_key)(?!_file|_path)")

# Shorter values would redact ordinary words ("root", "1") all over the output.
MIN_SECRET_LENGTH = 4


class Secret(str):
    """A string that must never be shown; ``repr`` hides it too, and what is made from it stays secret."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __getitem__(self, index: Any) -> Secret:  # a slice of a secret is secret
        return Secret(str.__getitem__(self, index))

    def __add__(self, other: str) -> Secret:
        return Secret(str.__add__(self, other))

    def __radd__(self, other: str) -> Secret:
        return Secret(str.__add__(other, self))

    def __mod__(self, other: Any) -> Secret:
        return Secret(str.__mod__(self, other))


def _keep_secret(name: str) -> Callable[..., Any]:
    method = getattr(str, name)

    @functools.wraps(method)
    def wrapper(self: Secret, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if isinstance(result, str):
            return Secret(result)
        if isinstance(result, list | tuple):
            return type(result)(Secret(part) if isinstance(part, str) else part for part in result)
        return result

    return wrapper


for _name in ("upper", "lower", "title", "capitalize", "swapcase", "casefold", "strip", "lstrip", "rstrip",
              "replace", "center", "ljust", "rjust", "zfill", "format", "join", "split", "rsplit", "partition",
              "rpartition", "splitlines", "removeprefix", "removesuffix", "expandtabs", "translate", "encode"):
    if _name != "encode":
        setattr(Secret, _name, _keep_secret(_name))


def holds_secret(value: Any) -> bool:
    """True if ``value`` is a ``Secret`` or a container holding one (a filter's input)."""
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(holds_secret(v) or holds_secret(k) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(holds_secret(v) for v in value)
    return False


def mark_secret(name: str, value: Any) -> Any:
    """``value`` as a ``Secret`` when it is text held by a credential-named variable (for taint)."""
    if isinstance(value, str) and not isinstance(value, Secret) and is_secret_name(name):
        return Secret(value)
    return value


def taint_filters(filters: dict[str, Any]) -> None:
    """Wrap every filter so its result is a ``Secret`` when an argument held one (b64encode, urlencode ...)."""
    for name, function in list(filters.items()):
        if getattr(function, "_pv_taints", False):
            continue
        filters[name] = _tainting(function)


def _tainting(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if isinstance(result, str) and not isinstance(result, Secret) and (
                any(holds_secret(a) for a in args) or any(holds_secret(v) for v in kwargs.values())):
            note_derived(result)
            return Secret(result)
        return result

    wrapper._pv_taints = True  # type: ignore[attr-defined]
    return wrapper


_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()


def note_derived(value: Any) -> Any:
    """Teach every live ``Redactor`` a text made from a secret (called as templates output it)."""
    if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
        for redactor in list(_LIVE):
            redactor.add([str.__str__(value)])
    return value


def encodings(value: str) -> set[str]:
    """``value`` and the forms it takes when printed or passed on: quoted, escaped, cased, base64, url."""
    raw = value.encode("utf-8", errors="replace")
    forms = {
        value,
        value.upper(),
        value.lower(),
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace("\\", "\\\\").replace("'", "\\'"),  # repr() inside '...'
        value.replace("\\", "\\\\").replace('"', '\\"'),  # repr() inside "..."
        value.replace("'", "'\\''"),  # inside a single-quoted shell word
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


@functools.lru_cache(maxsize=4096)  # the same few names, asked for every host of an inventory
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
        self._known: set[str] = set()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)
        _LIVE.add(self)

    def add(self, values: Iterable[str]) -> None:
        """Learn more secret values (e.g. a password read at a prompt), with each one's encodings."""
        new = {str.__str__(v) for v in values if len(v) >= MIN_SECRET_LENGTH} - self._known
        if not new:
            return
        fresh = set().union(*(encodings(v) for v in new)) - self._values
        with self._lock:
            self._known |= new
            if not fresh:
                return
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
