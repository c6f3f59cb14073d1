"""The batched-check protocol, all of it: the shell library, the batch script, its markers, the cache.

A converged run is mostly reading: "is this file's checksum X, is that package installed". Each
module describes its read as a shell snippet (``Module.probe``); the runner sends the snippets of
a run of upcoming tasks in one script on one channel and keeps the answers here, keyed by the
exact snippet and the user it runs as. Any change to the host clears the cache, so a task never
decides on state that an earlier task of the same run has since changed.

This module is the only one that spells the protocol's shell variables (``_pv_*``) and markers
(``@@pv-<nonce>``): the look-ahead sends batches with ``batch_script``/``split_answers``, a
changing script carries the next probes with ``after_change_script``/``split_after_change``,
and the modules only call ``pv_stat``/``pv_cat`` in their probes.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Sequence

# pv_stat PATH [sum]: one line "TYPE<TAB>MODE<TAB>OWNER<TAB>GROUP<TAB>SIZE<TAB>SHA256<TAB>LINK"
# or "absent". TYPE is file|directory|link|other; SHA256 is "-" unless asked for a regular file.
# Inside a probe batch (``_pv_tok`` set where pv_stat runs in the batch's own shell, see
# ``batch_script``) the stat and the checksum are deferred: the line carries placeholders, and
# ``pv_flush`` at the end of the batch runs one ``stat`` and one ``sha256sum`` for every path,
# which the control host puts back in place. A converged host then runs two processes per batch
# instead of four per file.
SHELL_LIB = r"""
_pv_nl='
'
pv_stat() {
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo absent; return 0; fi
  _pv_t=other
  if [ -L "$1" ]; then _pv_t=link; elif [ -d "$1" ]; then _pv_t=directory; elif [ -f "$1" ]; then _pv_t=file; fi
  _pv_l=-
  if [ "$_pv_t" = link ]; then _pv_l=$(readlink "$1"); fi
  if [ -n "${_pv_tok:-}" ] && [ "$_pv_n" -lt 2000 ] && case $1 in *"$_pv_nl"*) false;; esac; then
    _pv_n=$((_pv_n + 1)); _pv_paths="$_pv_paths$1$_pv_nl"; _pv_s=-
    if [ "$_pv_t" = file ] && [ "${2:-}" = sum ] && [ -r "$1" ]; then
      _pv_m=$((_pv_m + 1)); _pv_sums="$_pv_sums$1$_pv_nl"; _pv_s="@@pv-$_pv_tok\$$_pv_m"
    fi
    printf '%s\t@@pv-%s#%s\t%s\t%s\n' "$_pv_t" "$_pv_tok" "$_pv_n" "$_pv_s" "$_pv_l"
    return 0
  fi
  _pv_s=-
  if [ "$_pv_t" = file ] && [ "${2:-}" = sum ] && [ -r "$1" ]; then _pv_s=$(sha256sum < "$1"); _pv_s=${_pv_s%% *}; fi
  printf '%s\t%s\t%s\n' "$_pv_t" "$(stat -c '%a	%U	%G	%s' -- "$1")" "$_pv_s	$_pv_l"
}
pv_flush() {
  [ "${_pv_n:-0}" -gt 0 ] || return 0
  printf '\n@@pv-%s stat %s %s\n' "$_pv_tok" "$_pv_n" "$_pv_m"
  ( IFS=$_pv_nl; set -f; stat -c '%a	%U	%G	%s' -- $_pv_paths )
  printf '\n@@pv-%s sum\n' "$_pv_tok"
  if [ "$_pv_m" -gt 0 ]; then ( IFS=$_pv_nl; set -f; sha256sum -- $_pv_sums ); fi
}
pv_cat() {
  if [ -f "$1" ]; then echo present; cat -- "$1"; else echo absent; fi
}
"""


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
    ``SHELL_LIB``), except where it may run in a subshell: in an isolated probe, or
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


def after_change_script(script: str, probes: Sequence[str], nonce: str) -> str:
    """A changing ``script`` followed by a batch of ``probes``; it exits with the script's own code.

    The script runs in a subshell, so its ``exit`` or ``set -e`` cannot skip the probes.
    """
    return (f"{SHELL_LIB}( {script}\n) ; _pv_rc=$?\nprintf '%s' {_sh_quote(_post_marker(nonce))}\n"
            f"{batch_script(probes, nonce)}exit $_pv_rc\n")


def split_after_change(output: str, count: int, nonce: str) -> tuple[str, list[str | None] | None]:
    """The changing script's own stdout, and the probes' answers (None when the batch never ran)."""
    own, found, rest = output.partition(_post_marker(nonce))
    return own, split_answers(rest, count, nonce) if found else None


def facts_and_probes_script(facts: str, probes: Sequence[str], nonce: str) -> str:
    """The facts script, then a batch of the play's first probes: one session instead of two.

    The facts run in a subshell (their variables and ``exit`` stay there); the script exits with
    the facts' own code, so a failed gathering is reported as before.
    """
    return (f"{SHELL_LIB}( {facts}\n) ; _pv_frc=$?\nprintf '%s' {_sh_quote(_facts_marker(nonce))}\n"
            f"{batch_script(probes, nonce)}exit $_pv_frc\n")


def split_facts_and_probes(output: str, count: int, nonce: str) -> tuple[str, list[str | None]]:
    """The facts' own output, and the probes' answers (all None when the batch never ran)."""
    facts, found, rest = output.partition(_facts_marker(nonce))
    return facts, split_answers(rest, count, nonce) if found else [None] * count


def _facts_marker(nonce: str) -> str:
    return f"\n@@pv-facts-{nonce}\n"


def _post_marker(nonce: str) -> str:
    return f"\n@@pv-post-{nonce}\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
