"""Batched state probes: the checks of many upcoming tasks travel to a host in one script.

A converged run is mostly reading: "is this file's checksum X, is that package installed". Each
module describes its read as a shell snippet (``Module.probe``); the runner sends the snippets of
a run of upcoming tasks in one script on one channel and keeps the answers here, keyed by the
exact snippet and the user it runs as. Any change to the host clears the cache, so a task never
decides on state that an earlier task of the same run has since changed.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Sequence

ProbeKey = tuple[str | None, str]  # (become user or None for the login user, probe script)


class ProbeCache:
    """Probe answers for one host, valid until the host changes."""

    def __init__(self) -> None:
        self._answers: dict[ProbeKey, str] = {}
        self._lock = threading.Lock()
        self.batches = 0
        self.hits = 0

    def get(self, key: ProbeKey) -> str | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self.hits += 1
            return answer

    def store(self, answers: dict[ProbeKey, str]) -> None:
        with self._lock:
            self._answers.update(answers)

    def invalidate(self) -> None:
        """Forget everything: the host was changed."""
        with self._lock:
            self._answers.clear()


# A probe that could leak into the next one (change directory, exit, traps, shell options) runs
# in a subshell; the others in a plain group, which costs the host no fork.
_ISOLATE = re.compile(r"\b(exit|cd|trap|set|export|umask|exec|return)\b")


def batch_script(scripts: Sequence[str], nonce: str) -> str:
    """One script running every probe, each answer after a marker line."""
    parts = []
    for index, script in enumerate(scripts):
        opening, closing = ("(", ")") if _ISOLATE.search(script) else ("{", "}")
        parts.append(f"printf '\\n@@pv-{nonce} {index}\\n'\n{opening} {script}\n{closing} 2>/dev/null </dev/null")
    return "\n".join(parts) + "\n"


def split_answers(output: str, count: int, nonce: str) -> list[str | None]:
    """Cut a batch's stdout into per-probe answers; a missing section is None."""
    answers: list[str | None] = [None] * count
    marker = f"\n@@pv-{nonce} "
    chunks = output.split(marker)
    for chunk in chunks[1:]:
        head, _, body = chunk.partition("\n")
        if head.isdigit() and int(head) < count:
            answers[int(head)] = body
    return answers


def new_nonce() -> str:
    """A marker no probe output will contain by accident."""
    return secrets.token_hex(6)
