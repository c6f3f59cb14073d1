"""The output layer: the runner's events, rendered for people (rich) or machines (NDJSON).

Nothing here prints a secret: every reporter scrubs what it writes through a ``Redactor``.
Names load lazily, so ``import provision.output`` costs nothing until a reporter is needed
(``provision --help`` never imports rich).

    ConsoleReporter   rich console: task lines, live view, recap table      (console.py)
    JsonReporter      one JSON object per line, flushed as it happens        (jsonstream.py)
    MultiReporter     fan-out to several reporters                           (multi.py)
    render_error      an error as a clean paragraph, traceback at -vv        (error_report.py)
    build_reporter    the reporter the CLI wants for its options             (here)
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from provision.events import Reporter
    from provision.output.console import ConsoleReporter
    from provision.output.error_report import render_error
    from provision.output.jsonstream import JsonReporter
    from provision.output.multi import MultiReporter
    from provision.secrets import Redactor

__all__ = ["ConsoleReporter", "JsonReporter", "MultiReporter", "build_reporter", "make_console", "render_error"]

_LAZY = {
    "ConsoleReporter": "provision.output.console",
    "JsonReporter": "provision.output.jsonstream",
    "MultiReporter": "provision.output.multi",
    "render_error": "provision.output.error_report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_reporter(*, json_output: bool, verbosity: int, redactor: Redactor, progress: bool = True) -> Reporter:
    """The reporter for the CLI: the console on stdout, or NDJSON on stdout and people on stderr."""
    from provision.output.console import ConsoleReporter
    from provision.output.jsonstream import JsonReporter
    from provision.output.multi import MultiReporter

    if not json_output:
        return ConsoleReporter(make_console(), verbosity=verbosity, redactor=redactor, progress=progress)
    return MultiReporter(
        JsonReporter(sys.stdout, redactor=redactor),
        ConsoleReporter(make_console(stderr=True), verbosity=verbosity, redactor=redactor, progress=progress),
    )


# Off a terminal (CI logs, pipes) lines are not wrapped: a path or an error split at column 80
# cannot be searched for or copied. A wide console only wraps what is longer than this.
UNWRAPPED_WIDTH = 100_000


def make_console(*, stderr: bool = False) -> Console:
    """A console for people: the terminal's width on a terminal, no hard wrap elsewhere."""
    import os

    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=UNWRAPPED_WIDTH)
    return console
