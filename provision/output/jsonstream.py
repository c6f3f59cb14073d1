"""The machine reporter (``--json``): one JSON object per line, flushed as it happens."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict
from typing import Any, TextIO

from provision.events import HostUnreachable, PlayStarted, Recap, TaskDone, TaskStarted
from provision.output.redact import scrub_data
from provision.secrets import Redactor


class JsonReporter:
    """Writes NDJSON events (``play_start``, ``task``, ``host_unreachable``, ``warning``, ``recap``).

    Args:
        stream: where the lines go; standard output when not given.
        redactor: scrubs every value (and key) before it is serialised.
    """

    def __init__(self, stream: TextIO | None = None, *, redactor: Redactor | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.redactor = redactor if redactor is not None else Redactor()
        self._lock = threading.Lock()

    def play_started(self, event: PlayStarted) -> None:
        self._emit(
            {
                "event": "play_start",
                "play": event.name,
                "hosts": list(event.hosts),
                "batch": event.batch,
                "batches": event.batches,
                "check": event.check,
                "tasks": event.tasks,
            }
        )

    def task_started(self, event: TaskStarted) -> None:
        """Not part of the stream: consumers get one event per finished task."""

    def task_done(self, event: TaskDone) -> None:
        self._emit(
            {
                "event": "task",
                "host": event.host,
                "task": event.task,
                "module": event.module,
                "status": event.status,
                "changed": event.changed,
                "diff": event.diff,
                "msg": event.msg,
                "duration": round(event.duration, 3),
                "item": scrub_data(self.redactor, event.item_value) if event.item_value is not None else event.item,
                # The loop item as the console shows it (loop_control.label), for scripts that match on it.
                "label": event.item,
                "ignored": event.ignored,
                "handler": event.handler,
            }
        )

    def host_unreachable(self, event: HostUnreachable) -> None:
        self._emit({"event": "host_unreachable", "host": event.host, "msg": event.msg})

    def warning(self, message: str, *, host: str | None = None) -> None:
        self._emit({"event": "warning", "host": host, "msg": message})

    def recap(self, event: Recap) -> None:
        self._emit(
            {
                "event": "recap",
                "hosts": {name: asdict(stats) for name, stats in event.hosts.items()},
                "duration": round(event.duration, 3),
                "interrupted": event.interrupted,
            }
        )

    def close(self) -> None:
        with self._lock:
            self.stream.flush()

    def _emit(self, record: dict[str, Any]) -> None:
        # Scrub the structure, not the serialised line: a secret must not survive as a JSON escape.
        line = json.dumps(scrub_data(self.redactor, record), separators=(",", ":"))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
