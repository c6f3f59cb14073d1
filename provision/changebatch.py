"""Change batching on the wire: the change scripts of several tasks in one script on one channel.

``batch_change_script`` frames the parts; ``split_batch_output`` cuts the host's answer back into
one ``CommandResult`` (and host-side duration) per part that ran. The engine side, which decides
what may travel together, is ``provision.batching``.

Each part runs in its own subshell, so its ``exit``, ``cd`` or ``set -e`` cannot reach the next;
only scripts built not to need one run in the batch's shell (file writes, ``Plan.inline``).
Before a part runs, the host reads the part's probe (if it has one) again and compares it with
the answer the part was planned from; when it differs (an earlier part changed what this one
decides from) the batch stops there and says so, with the fresh answer, and the engine plans that
task again. A
part that exits non-zero stops the batch too: nothing after a failure runs, as without batching.
A part's stdin (file contents, secrets) follows the script on the channel's stdin, and the part
reads exactly its own bytes (``head -c``); what it leaves unread is drained, so it can never reach
the next part. A part that itself reads exactly its bytes first (an atomic file write,
``Plan.reads_stdin_first``) reads them straight from the channel, and runs as a function in the
batch's own shell rather than a subshell (one process fewer per file). A part planned from
"absent" (``BatchPart.absent``) has that checked with ``[ -e ]``/``[ -L ]``, without a process.
After the parts (all, or up to the stop) the probes of the tasks that follow run, as after any
change, so the next task's check costs no further channel.

Output framing (``N`` the nonce, ``K`` the part's index):

    stdout: "\\n@@pvb-N s K T0\\n" part stdout "\\n@@pvb-N e K RC T1\\n"   (T0/T1: host uptime)
    stderr: "\\n@@pvb-N s K\\n" part stderr
    stdout, when the part's answer changed: "\\n@@pvb-N v K\\n" fresh answer
    stdout, before the follow-up probes: "\\n@@pvb-N post\\n" then ``probes.batch_script``'s output
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from .contract import CommandResult
from .probes import SHELL_LIB, batch_script, split_answers

# A probe answer larger than this is not compared on the host: its task starts a batch or runs alone.
MAX_EXPECTED = 64 * 1024

# Host time without a fork: the first field of /proc/uptime (10 ms steps); "-" where there is none.
_PRELUDE = r"""_pvb_go=1 _pvb_new=
_pvb_now() { _pvb_t=-; { read -r _pvb_t _pvb_x < /proc/uptime; } 2>/dev/null || _pvb_t=-; }
"""


@dataclass(frozen=True)
class BatchPart:
    """One task item's change in a batch.

    ``probe``/``expected``: the read this part was planned from and its answer then; the part
    runs only if the host still answers the same (None: planned from nothing on the host).
    ``script`` empty: a converged item, only verified.
    """

    script: str
    stdin: bytes | None = None
    probe: str | None = None
    expected: str | None = None
    # The expected answer says this path is absent, and that alone decides it (``Fact.absent_path``):
    # the host checks it with the shell's own tests and reads the probe again only if it exists now.
    absent: str | None = None
    # The path an atomic write (``tasks.shell.reads_exactly_first``) puts its file at: a new file's
    # fsync waits for one ``sync -f`` of the parts' filesystems after the last part.
    written: str | None = None
    # The part reads exactly its stdin first (``Plan.reads_stdin_first``): no pipe or drain around it.
    direct: bool = False
    # The part may run in the batch's own shell (``Plan.inline``): no subshell around it.
    inline: bool = False


@dataclass(frozen=True)
class PartRun:
    """What one part did on the host."""

    index: int
    result: CommandResult
    duration: float | None  # from host timestamps; None when the host has no /proc/uptime
    complete: bool  # False: the channel was cut while it ran


@dataclass
class BatchOutcome:
    """The parts that ran, in order; where the batch stopped on a changed answer; the probes after."""

    runs: list[PartRun]
    stale: tuple[int, str] | None  # (part index, the host's answer now)
    answers: list[str | None] | None  # the follow-up probes' answers (None: never reached)


def batch_change_script(parts: Sequence[BatchPart], probes: Sequence[str], nonce: str) -> tuple[str, bytes]:
    """The batch script, and the stdin that goes with it (each part's own bytes, in order)."""
    lines = [SHELL_LIB, _PRELUDE, "set --"]
    if any(part.stdin and part.direct for part in parts):
        lines.append("_pvb_um=$(umask)")  # a write run in this shell sets its own; the next part gets this back
    stdin = bytearray()
    synced: list[str] = []  # directories of new files whose fsync waits for the end of the parts
    for index, part in enumerate(parts):
        if part.probe is not None:
            expected = _quote((part.expected or "") + "x")
            if part.absent is not None:
                path = _quote(part.absent)
                lines.append(f"if [ $_pvb_go = 1 ] && {{ [ -e {path} ] || [ -L {path} ]; }}; then")
            else:
                lines.append("if [ $_pvb_go = 1 ]; then")
            lines.append(f"_pvb_got=$( {{ _pv_tok=; {part.probe}\n}} 2>/dev/null </dev/null; printf x)")
            lines.append(f"if [ \"$_pvb_got\" != {expected} ]; then _pvb_go=0; "
                         f"printf '\\n@@pvb-{nonce} v {index}\\n%s' \"${{_pvb_got%x}}\"; fi")
            lines.append("fi")
        lines.append("if [ $_pvb_go = 1 ]; then")
        lines.append(f"_pvb_now; printf '\\n@@pvb-{nonce} s {index} %s\\n' \"$_pvb_t\"; "
                     f"printf '\\n@@pvb-{nonce} s {index}\\n' >&2")
        if not part.script:
            lines.append("_pvb_rc=0")
        elif part.inline and not part.stdin:
            lines.append(f"{{ {part.script}\n}} </dev/null")
            lines.append("_pvb_rc=$?")
        elif part.stdin and part.direct:
            stdin += part.stdin
            # A file write runs as a function in this shell, no subshell (``reads_exactly_first``).
            lines.append(f"_pvb_w() {{\n{part.script}}}")
            if part.written is not None:
                lines.append('_pvb_later=1; _pvb_w; _pvb_rc=$?; _pvb_later=; umask "$_pvb_um"')
                # Its directory, once: a later part runs only after every earlier one succeeded.
                directory = posixpath.dirname(part.written.rstrip("/")) or "/"
                if directory not in synced:
                    synced.append(directory)
                    lines.append(f"[ $_pvb_rc != 0 ] || set -- \"$@\" {_quote(directory)}")
                if part.absent == part.written and "\n" not in part.written:
                    # It created the file: a later part replacing it needs no fsync before its rename either.
                    lines.append(f'[ $_pvb_rc != 0 ] || _pvb_new="$_pvb_new$_pv_nl"{_quote(part.written)}"$_pv_nl"')
            else:
                lines.append('_pvb_w; _pvb_rc=$?; umask "$_pvb_um"')
        elif part.stdin:
            size = len(part.stdin)
            stdin += part.stdin
            lines.append(f"head -c {size} | {{ ( {part.script}\n) ; _pvb_rc=$?; cat >/dev/null; exit $_pvb_rc; }}")
            lines.append("_pvb_rc=$?")
        else:
            lines.append(f"( {part.script}\n) </dev/null")
            lines.append("_pvb_rc=$?")
        lines.append(f"_pvb_now; printf '\\n@@pvb-{nonce} e {index} %s %s\\n' \"$_pvb_rc\" \"$_pvb_t\"")
        lines.append("[ $_pvb_rc = 0 ] || _pvb_go=0")
        lines.append("fi")
    if synced:  # the new files written above, on disk before the batch reports (a syncfs per directory)
        lines.append('[ $# = 0 ] || sync -f -- "$@" 2>/dev/null || sync')
    lines.append(f"printf '\\n@@pvb-{nonce} post\\n'")
    lines.append(batch_script(probes, nonce))
    lines.append("exit 0")
    return "\n".join(lines) + "\n", bytes(stdin)


def split_batch_output(result: CommandResult, count: int, probe_count: int, nonce: str) -> BatchOutcome:
    """Cut a batch's output into each part's result (only the parts that started, in order)."""
    out, found, post = result.stdout.partition(f"\n@@pvb-{nonce} post\n")
    answers = split_answers(post, probe_count, nonce) if found else None
    marker = f"\n@@pvb-{nonce} "
    errors = _stderr_parts(result.stderr, marker)
    runs: list[PartRun] = []
    stale: tuple[int, str] | None = None
    started: dict[int, tuple[str, float | None]] = {}
    for chunk in out.split(marker)[1:]:
        head, _, body = chunk.partition("\n")
        words = head.split()
        if len(words) < 2 or not words[1].isdigit() or int(words[1]) >= count:
            continue
        kind, index = words[0], int(words[1])
        if kind == "v":
            stale = (index, body)
        elif kind == "s":
            started[index] = (body, _seconds(words[2] if len(words) > 2 else "-"))
        elif kind == "e" and index in started and len(words) >= 3:
            own, began = started.pop(index)
            ended = _seconds(words[3] if len(words) > 3 else "-")
            duration = max(ended - began, 0.0) if began is not None and ended is not None else None
            rc = int(words[2]) if words[2].lstrip("-").isdigit() else 1
            runs.append(PartRun(index, CommandResult(rc, own, errors.get(index, "")), duration, True))
    for index, (own, _began) in started.items():  # cut while it ran: the channel's own rc and message
        runs.append(PartRun(index, CommandResult(result.rc if result.rc != 0 else 1, own, errors.get(index, "")),
                            None, False))
    runs.sort(key=lambda run: run.index)
    return BatchOutcome(runs, stale, answers)


def _stderr_parts(stderr: str, marker: str) -> dict[int, str]:
    parts: dict[int, str] = {}
    for chunk in stderr.split(marker)[1:]:
        head, _, body = chunk.partition("\n")
        words = head.split()
        if len(words) == 2 and words[0] == "s" and words[1].isdigit():
            parts[int(words[1])] = body
    return parts


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
