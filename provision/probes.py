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


# A pv_stat that may run in a subshell (command substitution, pipeline, parentheses) cannot
# defer: its bookkeeping would die with the subshell and its placeholder would be misnumbered.
_SUBSHELL = re.compile(r"\$\(|`|\(|(?<!\|)\|(?!\|)")


def batch_script(scripts: Sequence[str], nonce: str) -> str:
    """One script running every probe, each answer after a marker line.

    ``pv_stat`` defers its ``stat`` and checksum to one ``pv_flush`` at the end (see
    ``provision.tasks.shell``), except where it may run in a subshell: in an isolated probe, or
    in a probe with a command substitution, a pipe or parentheses.
    """
    parts = [f"_pv_tok={nonce}; _pv_n=0; _pv_m=0; _pv_paths=; _pv_sums="]
    for index, script in enumerate(scripts):
        if _ISOLATE.search(script):
            opening, closing = "( _pv_tok=;", ")"
        elif "pv_stat" in script and _SUBSHELL.search(script):
            opening, closing = "{ _pv_tok=;", f"_pv_tok={nonce}; }}"
        else:
            opening, closing = "{", "}"
        parts.append(f"printf '\\n@@pv-{nonce} {index}\\n'\n{opening} {script}\n{closing} 2>/dev/null </dev/null")
    parts.append("{ pv_flush; } 2>/dev/null </dev/null; _pv_tok=")
    return "\n".join(parts) + "\n"


def split_answers(output: str, count: int, nonce: str) -> list[str | None]:
    """Cut a batch's stdout into per-probe answers; a missing section is None.

    Deferred ``pv_stat`` placeholders are filled from the flush's sections. If the host's
    answers do not line up (a path vanished between the check and the flush), every answer that
    still holds a placeholder is None, so its task checks again on its own.
    """
    answers: list[str | None] = [None] * count
    marker = f"\n@@pv-{nonce} "
    stats: list[str] | None = None
    sums: list[str] | None = None
    expected = (0, 0)
    for chunk in output.split(marker)[1:]:
        head, _, body = chunk.partition("\n")
        if head.isdigit() and int(head) < count:
            answers[int(head)] = body
        elif head.startswith("stat "):
            stats = body.splitlines()
            n_stats, _, n_sums = head[5:].partition(" ")
            expected = (int(n_stats or 0), int(n_sums or 0))
        elif head == "sum":
            sums = [line.lstrip("\\")[:64] for line in body.splitlines() if line]
    if stats is None:
        return answers
    values = {"#": [line for line in stats if line], "$": sums or []}
    complete = sums is not None and (len(values["#"]), len(values["$"])) == expected
    placeholder = re.compile(rf"@@pv-{nonce}([#$])(\d+)")

    def fill(match: re.Match[str]) -> str:
        found = values[match[1]]
        index = int(match[2]) - 1
        if not 0 <= index < len(found):
            raise LookupError(match[0])
        return found[index]

    for index, answer in enumerate(answers):
        if answer is not None and f"@@pv-{nonce}" in answer:
            try:
                answers[index] = placeholder.sub(fill, answer) if complete else None
            except LookupError:  # numbered by a pv_stat that ran in a subshell after all
                answers[index] = None
    return answers


def new_nonce() -> str:
    """A marker no probe output will contain by accident."""
    return secrets.token_hex(6)
