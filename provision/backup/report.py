"""What backup commands print: one line per site for people, one JSON object per event with ``--json``.

Everything goes through the run's ``Redactor``. With ``--json`` the events are on stdout and the
lines on stderr; a log file (``--log-dir``, for cron) gets the lines too.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from ..secrets import Redactor


class BackupReport:
    """Thread-safe printer of summary lines and NDJSON events."""

    def __init__(self, *, json_output: bool, redactor: Redactor, log: TextIO | None = None) -> None:
        self.json_output = json_output
        self.redactor = redactor
        self.log = log
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        clean = self.redactor(text)
        with self._lock:
            stream = sys.stderr if self.json_output else sys.stdout
            print(clean, file=stream, flush=True)
            if self.log is not None:
                print(clean, file=self.log, flush=True)

    def event(self, data: dict[str, Any]) -> None:
        if not self.json_output:
            return
        text = self.redactor(json.dumps(self.redactor.scrub(data), default=str, sort_keys=True))
        with self._lock:
            print(text, file=sys.stdout, flush=True)


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
