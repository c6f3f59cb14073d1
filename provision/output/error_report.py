"""How the CLI shows an error: a clean paragraph for expected ones, a traceback only at ``-vv``."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from rich.text import Text

from provision.errors import ProvisionError
from provision.output.redact import scrub_text
from provision.secrets import Redactor

if TYPE_CHECKING:
    from rich.console import Console

TRACEBACK_VERBOSITY = 2


def render_error(
    console: Console,
    error: ProvisionError | BaseException,
    verbosity: int = 0,
    *,
    redactor: Redactor | None = None,
) -> None:
    """Print ``error`` for a person: ``error: source: message`` then ``fix: hint``.

    An error that is not a ``ProvisionError`` is a bug: it is named as unexpected, and its
    traceback is shown at ``-vv``. Every piece of text, the traceback included, is redacted.
    """
    redactor = redactor if redactor is not None else Redactor()
    if verbosity >= TRACEBACK_VERBOSITY:
        trace = "".join(traceback.format_exception(error)).rstrip("\n")
        _print(console, Text(scrub_text(redactor, trace), style="dim"))

    text = Text.assemble(("error: ", "bold red"))
    if isinstance(error, ProvisionError):
        if error.source is not None:
            text.append(f"{scrub_text(redactor, error.source)}: ", style="bold")
        text.append(scrub_text(redactor, error.message))
        if error.hint:
            text.append("\n  ")
            text.append("fix: ", style="bold cyan")
            text.append(scrub_text(redactor, error.hint))
    else:
        detail = scrub_text(redactor, error)
        text.append(f"unexpected {type(error).__name__}" + (f": {detail}" if detail else ""))
        if verbosity < TRACEBACK_VERBOSITY:
            text.append("\n  this is a bug in provision; run again with -vv to see the traceback", style="dim")
    _print(console, text)


def _print(console: Console, text: Text) -> None:
    console.print(text, highlight=False, markup=False, emoji=False)
