"""Shell building blocks shared by the task modules.

``SHELL_LIB`` (owned by the probe protocol, ``provision.probes``) is defined at the top of every
remote script the runner sends (probes and changes), so modules can call ``pv_stat`` instead of
re-deriving ``stat`` formats; ``parse_stat`` reads its line. Writes go through
``write_file_script``: temp file beside the target, fsync, optional validation, rename — a target
is never half-written, and the old file stays when validation fails.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import secrets as _random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..contract import CommandResult, TaskResult, rc_decides
from ..errors import ArgumentError
from ..probes import SHELL_LIB as SHELL_LIB  # pv_stat, pv_flush, pv_cat (the probe protocol's)

quote = shlex.quote


@dataclass(frozen=True)
class FileState:
    """A path's state as ``pv_stat`` reports it."""

    type: str  # file | directory | link | other | absent
    mode: str = ""  # octal, no leading zero ("644")
    owner: str = ""
    group: str = ""
    size: int = 0
    sha256: str | None = None
    link_target: str | None = None

    @property
    def exists(self) -> bool:
        return self.type != "absent"


def parse_stat(line: str | None) -> FileState:
    """Parse one ``pv_stat`` line."""
    line = (line or "").strip("\n")
    if not line or line == "absent":
        return FileState("absent")
    fields = line.split("\t")
    if len(fields) < 7:
        raise ValueError(f"unexpected pv_stat output: {line!r}")
    kind, mode, owner, group, size, sha, link = fields[:7]
    return FileState(
        type=kind,
        mode=mode,
        owner=owner,
        group=group,
        size=int(size) if size.isdigit() else 0,
        sha256=None if sha == "-" else sha,
        link_target=None if kind != "link" else link,
    )


def parse_mode(value: Any) -> str | None:
    """Normalize a file mode to octal text without leading zeros ("0644" → "644").

    YAML reads an unquoted ``0644`` as the integer 420: that is taken as the intended octal mode,
    as Ansible does. Symbolic modes are refused with the fix.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ArgumentError(f"mode must be octal like '0644', got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text, 8)
        except ValueError:
            raise ArgumentError(
                f"mode {text!r} is not an octal mode", hint="write it quoted, e.g. mode: '0644'"
            ) from None
    if not 0 <= number <= 0o7777:
        raise ArgumentError(f"mode {value!r} is out of range")
    return format(number, "o")


def temp_name(path: str) -> str:
    """A temp file name beside ``path``, so the final rename stays on one filesystem."""
    directory, _, base = path.rpartition("/")
    return f"{directory}/.{base}.provision-{_random.token_hex(4)}"


# The line after each file's bytes on a write_file_script's stdin (see ``write_input``).
WRITE_END = b"@@pv-end\n"
_END_LINE = WRITE_END.decode().strip()


def write_input(data: bytes) -> bytes:
    """The stdin of a ``write_file_script`` writing ``data``: the bytes, then the line that proves them whole."""
    return data + WRITE_END


def write_file_script(
    dest: str,
    *,
    mode: str | None = None,
    owner: str | None = None,
    group: str | None = None,
    backup: bool = False,
    validate: str | None = None,
    size: int,
) -> str:
    """A script that atomically replaces ``dest`` with its stdin.

    Its stdin is ``write_input(data)``: exactly ``size`` bytes of data are read (so one script can
    write several files from one stdin), then the line ``WRITE_END`` with the shell's own ``read``.
    A transfer cut off (Ctrl-C, a dropped connection) leaves ``head`` short and that line missing,
    and a failed write fails ``head``: either way the target is never replaced with a truncated file.

    ``validate`` is a command with ``%s`` standing for the new file (``nginx -t -c %s``); when it
    fails the target is left as it was and the script exits non-zero. With ``backup`` the old
    file is copied to ``dest.<timestamp>~`` first; the backup path is printed on stdout.

    Every step after the read runs only if the ones before it succeeded, and the first failure is
    the script's status (a failed chown or mv is never reported as written). The script never
    exits on success, so several can follow each other; on a failure it exits, or returns when
    run as a function (how a change batch runs it in its own shell, ``reads_exactly_first``).
    """
    tmp = temp_name(dest)
    q_dest, q_tmp = quote(dest), quote(tmp)
    lines = [
        # A signal ends the script (after the cleanup), as it would without a trap.
        f"trap 'rm -f {q_tmp}' EXIT; trap 'rm -f {q_tmp}; exit 143' HUP INT TERM PIPE",
        "umask 077",
        f"if head -c {int(size)} > {q_tmp} && IFS= read -r _pv_end && [ \"$_pv_end\" = {_END_LINE} ]; then _pvw_rc=0; "
        f"else echo {quote(f'short input for {dest}: target left unchanged')} >&2; _pvw_rc=4; fi",
    ]

    def step(command: str) -> None:  # runs only while every step before it succeeded
        lines.append(f"[ $_pvw_rc != 0 ] || {command}")

    if owner or group:
        spec = f"{owner or ''}{':' + group if group else ''}"
        step(f"chown {quote(spec)} {q_tmp} || _pvw_rc=$?")
    if mode:
        step(f"chmod {mode} {q_tmp} || _pvw_rc=$?")
    else:
        # Keep the mode of the file being replaced; new files get the usual 0644.
        step(f"if [ -e {q_dest} ]; then chmod --reference={q_dest} {q_tmp}; else chmod 644 {q_tmp}; fi || _pvw_rc=$?")
        if not (owner or group):
            step(f"if [ -e {q_dest} ]; then chown --reference={q_dest} {q_tmp} 2>/dev/null || true; fi")
    # On disk before it replaces a file. A new file in a change batch (``_pvb_later`` set) may wait
    # for the batch's one ``sync -f`` after its parts: nothing old is at stake, and a crash before
    # that leaves at worst a short new file, which the next run's checksum replaces. So may a file
    # that an earlier part of the same batch created (``_pvb_new``, newline-framed paths).
    step(f'if [ -z "${{_pvb_later:-}}" ] || {{ [ -e {q_dest} ] && '
         f'case ${{_pvb_new:-}} in *"$_pv_nl"{q_dest}"$_pv_nl"*) false;; esac; }}; '
         f'then sync {q_tmp} 2>/dev/null || sync; fi')
    if validate:
        if "%s" not in validate:
            raise ArgumentError(f"validate command {validate!r} must contain %s for the new file")
        check = validate.replace("%s", q_tmp)
        step(f"if ! {{ {check} ; }} >&2; then echo 'validation failed: {_escape_sq(validate)}' >&2; _pvw_rc=3; fi")
    if backup:
        step(f"if [ -f {q_dest} ]; then _pv_b={q_dest}.$(date +%Y%m%d%H%M%S)~; "
             f'cp -p {q_dest} "$_pv_b" && echo "$_pv_b" || _pvw_rc=$?; fi')
    step(f"mv -f {q_tmp} {q_dest} || _pvw_rc=$?")
    lines.append(f"[ $_pvw_rc = 0 ] || rm -f {q_tmp}")
    lines.append("trap - EXIT HUP INT TERM PIPE")
    lines.append("[ $_pvw_rc = 0 ] || { return $_pvw_rc 2>/dev/null || exit $_pvw_rc; }")
    return "\n".join(lines) + "\n"


# A write_file_script (after an optional ``mkdir -p``) reads its stdin before anything can end it:
# builtins, then ``head -c SIZE``, which reads exactly SIZE bytes (GNU head reads no further), and
# the shell's ``read`` of the end line, byte by byte up to its newline; the commands after them
# (chmod, chown, sync, cp, mv) read no stdin, a validate command might.
_READS_FIRST = re.compile(r"(?:(?:\[ -d [^\n]* \] \|\| )?mkdir -p -- [^\n]*\n)?"
                          r"trap [^\n]* HUP INT TERM PIPE\numask 077\nif head -c (\d+) > ")
_WRITE_TAIL = "\ntrap - EXIT HUP INT TERM PIPE\n[ $_pvw_rc = 0 ] || { return $_pvw_rc 2>/dev/null || exit $_pvw_rc; }\n"


def reads_exactly_first(script: str, size: int) -> bool:
    """Whether ``script`` is one ``write_file_script`` that reads exactly ``size`` bytes of stdin first.

    Such a script can take its bytes straight from a batch's stdin: nothing it leaves unread can
    reach the next part, so the batch needs no pipe or drain around it. And it can run as a
    function in the batch's own shell, without a subshell: it exits on nothing but a failure (a
    function returns instead), and changes only its own ``_pv``/``_pvw`` variables, its traps
    (reset at its end) and the umask (which the batch restores).
    """
    match = _READS_FIRST.match(script)
    # Exactly one write_file_script and nothing after it; no validate command (it could read on).
    return (match is not None and int(match[1]) + len(WRITE_END) == size and script.count("head -c ") == 1
            and "validation failed: " not in script and script.endswith(_WRITE_TAIL)
            and script.count("\ntrap - EXIT") == 1)


def write_outcome(
    target: str, *, validate: str | None = None, backup: bool = False
) -> Callable[[CommandResult, dict[str, Any]], TaskResult | None]:
    """How a ``write_file_script`` change reports itself, the same for every module that writes files.

    A failed ``validate`` (exit 3) says so and that the old file is kept; with ``backup`` the old
    file's copy is registered as ``backup_file`` (Ansible's name).
    """

    @rc_decides
    def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult | None:
        if not result.ok:
            if result.rc == 3 and validate:
                return TaskResult.from_command(f"validation of {target} ({validate}); the old file is kept", result)
            return TaskResult.from_command(f"writing {target}", result)
        if backup and result.stdout.strip():
            data["backup_file"] = result.stdout.strip().splitlines()[-1]
        return None

    return outcome


def _escape_sq(text: str) -> str:
    return text.replace("'", "'\\''")


# -- helpers several modules share: diffs, checksums, file attributes -----------------------------

DIFF_MAX_BYTES = 256 * 1024
DIFF_NOT_SHOWN = "(binary or >256 KiB: not shown)"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``, as ``pv_stat PATH sum`` prints it."""
    return hashlib.sha256(data).hexdigest()


def unified_diff(before: str, after: str, path: str) -> str:
    """A unified diff of two texts, headed ``before: PATH`` / ``after: PATH``; "" when equal."""
    out: list[str] = []
    for line in difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"before: {path}", f"after: {path}"
    ):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def text_or_none(data: bytes | None) -> str | None:
    """``data`` as text when a diff of it is worth showing (UTF-8, no NUL, <= 256 KiB); else None."""
    if data is None:
        return ""
    if len(data) > DIFF_MAX_BYTES or b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def not_shown_diff(path: str) -> str:
    """The diff stand-in for content not worth showing (binary or large)."""
    return f"--- before: {path}\n+++ after: {path}\n{DIFF_NOT_SHOWN}\n"


def content_diff(before: bytes | None, after: bytes, path: str) -> str:
    """The diff of a file's content (``before`` None: the file is new), or a note when not shown."""
    old, new = text_or_none(before), text_or_none(after)
    if old is None or new is None:
        return not_shown_diff(path)
    return unified_diff(old, new, path)


def attr_changes(
    state: FileState, *, mode: str | None = None, owner: str | None = None, group: str | None = None
) -> dict[str, tuple[str, str]]:
    """The attributes of an existing path that differ from the wanted ones: name → (before, after).

    Owners and groups are compared by name (``pv_stat`` prints names).
    """
    changes: dict[str, tuple[str, str]] = {}
    if mode is not None and state.mode != mode:
        changes["mode"] = (state.mode, mode)
    if owner and state.owner != owner:
        changes["owner"] = (state.owner, owner)
    if group and state.group != group:
        changes["group"] = (state.group, group)
    return changes


def chain(commands: list[str]) -> str:
    """One-line commands that stop at the first failure, which is their status: ``set -e`` without
    setting an option, so a change batch may run them in its own shell (``Plan.inline``)."""
    return " &&\n".join(commands) + "\n"


def changes_script(path: str, changes: dict[str, tuple[str, str]]) -> str:
    """``attrs_script`` setting the target values of ``attr_changes``."""
    wanted = {name: changes[name][1] if name in changes else None for name in ("mode", "owner", "group")}
    return attrs_script(path, mode=wanted["mode"], owner=wanted["owner"], group=wanted["group"])


def attrs_script(
    path: str,
    *,
    mode: str | None = None,
    owner: str | None = None,
    group: str | None = None,
    recurse: bool = False,
    link: bool = False,
) -> str:
    """Commands that set mode/owner/group of ``path`` (its tree with ``recurse``, a symlink itself with ``link``)."""
    q = quote(path)
    flags = ("-R " if recurse else "") + ("-h " if link else "")
    lines = []
    if owner or group:
        spec = f"{owner or ''}{':' + group if group else ''}"
        lines.append(f"chown {flags}{quote(spec)} -- {q}")
    if mode and not link:
        lines.append(f"chmod {'-R ' if recurse else ''}{mode} -- {q}")
    return "".join(line + "\n" for line in lines)


def attrs_text(kind: str, attrs: dict[str, str]) -> str:
    """A path's type and attributes as lines, for an attribute diff."""
    lines = [f"state: {kind}"] + [f"{name}: {value}" for name, value in attrs.items() if value]
    return "\n".join(lines) + "\n"


def attrs_diff(path: str, before_kind: str, after_kind: str, changes: dict[str, tuple[str, str]]) -> str:
    """A small unified diff of a path's type and changed attributes."""
    before = attrs_text(before_kind, {k: v[0] for k, v in changes.items()})
    after = attrs_text(after_kind, {k: v[1] for k, v in changes.items()})
    return unified_diff(before, after, f"{path} (attributes)")
