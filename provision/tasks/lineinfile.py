"""``lineinfile``: make sure one line is in a file (or no line matching a pattern is), as Ansible does.

The fact (``FileText``) brings the file's content with the batch; ``edit_lines`` computes the new content as a
pure function with Ansible's rules (the last match is replaced unless ``firstmatch``; with no
match the line goes after/before the ``insertafter``/``insertbefore`` match, else at the end),
and a change is one atomic write.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError
from .base import Arg, Module, Plan, PlanContext
from .facts import FileText, TextFile
from .shell import (
    FileState,
    attr_changes,
    attrs_diff,
    chain,
    changes_script,
    parse_mode,
    quote,
    reads_exactly_first,
    unified_diff,
    write_file_script,
    write_input,
    write_outcome,
)


@dataclass(frozen=True)
class LineEdit:
    """The outcome of ``edit_lines``: the new content, whether it differs, and why."""

    text: str
    changed: bool
    msg: str
    found: int = 0


def edit_lines(
    text: str,
    *,
    line: str | None = None,
    regexp: str | None = None,
    search_string: str | None = None,
    state: str = "present",
    insertafter: str | None = None,
    insertbefore: str | None = None,
    firstmatch: bool = False,
    backrefs: bool = False,
) -> LineEdit:
    """Apply lineinfile's rules to ``text`` (the file's content; "" for a new file)."""
    lines = text.splitlines(keepends=True)
    if state == "absent":
        return _remove(lines, line, regexp, search_string)
    assert line is not None
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    pattern = re.compile(regexp) if regexp is not None else None
    anchor_text = insertafter if insertafter not in (None, "BOF", "EOF") else None
    if anchor_text is None and insertbefore not in (None, "BOF"):
        anchor_text = insertbefore
    anchor = re.compile(anchor_text) if anchor_text is not None else None

    found_at, anchor_at = -1, -1
    match: re.Match[str] | bool | None = None
    exact = False
    # 1. regexp / search_string: the last matching line (the first with firstmatch).
    for number, current in enumerate(lines):
        hit: re.Match[str] | bool | None = None
        if pattern is not None:
            hit = pattern.search(current)
        elif search_string is not None:
            hit = search_string in current
        if hit:
            found_at, match = number, hit
            if firstmatch:
                break
    # 2. No match: the line itself anywhere, else the insertafter/insertbefore anchor.
    if not match:
        for number, current in enumerate(lines):
            if current.rstrip("\r\n") == line:
                found_at, exact = number, True
            elif anchor is not None and anchor.search(current):
                anchor_at = number + 1 if insertafter else number
                if firstmatch:
                    break

    def add(index: int) -> LineEdit:
        lines.insert(index, line + "\n")
        return LineEdit("".join(lines), True, "line added")

    def end_with_newline() -> None:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"

    unchanged = LineEdit(text, False, "")
    if found_at != -1:
        new_line = match.expand(line) if backrefs and isinstance(match, re.Match) else line
        if not new_line.endswith("\n"):
            new_line += "\n"
        if (regexp, search_string, match) == (None, None, None) and not exact:
            return unchanged  # unreachable in practice: found_at is set only by a match or the exact line
        if lines[found_at] != new_line:
            lines[found_at] = new_line
            return LineEdit("".join(lines), True, "line replaced")
        return unchanged
    if backrefs:
        return unchanged  # nothing to expand the backreferences from: leave the file alone
    if "BOF" in (insertbefore, insertafter):
        return add(0)
    if insertafter == "EOF" or anchor_at == -1:
        end_with_newline()
        return add(len(lines))
    if insertafter:
        if anchor_at == len(lines):
            if lines[anchor_at - 1].rstrip("\r\n") == line:
                return unchanged
            end_with_newline()
            return add(len(lines))
        if lines[anchor_at].rstrip("\r\n") == line:
            return unchanged
        return add(anchor_at)
    return add(anchor_at)


def _remove(lines: list[str], line: str | None, regexp: str | None, search_string: str | None) -> LineEdit:
    pattern = re.compile(regexp) if regexp is not None else None

    def matches(current: str) -> bool:
        if pattern is not None:
            return bool(pattern.search(current))
        if search_string is not None:
            return search_string in current
        return current.rstrip("\r\n") == line

    kept = [current for current in lines if not matches(current)]
    found = len(lines) - len(kept)
    return LineEdit("".join(kept), found > 0, f"{found} line(s) removed" if found else "", found)


def lineinfile_probe(path: str) -> str:
    """The path's ``pv_stat``, then ``pv_cat`` of it, closed by an end mark (trailing newlines survive)."""
    return FileText(path).command()


def parse_probe(state_text: str | None) -> tuple[FileState, str | None]:
    """(stat, content or None when the file is absent) from the probe's output."""
    found = FileText("").parse(state_text or "")
    return found.state, found.text


class LineInFile(Module):
    """Ensure a line is in a file (replacing the line a pattern matches), or that matching lines are not.

    path: the file on the host (aliases: dest, destfile, name)
    line: the line to put in (state: present), or to remove (state: absent)
    regexp: Python regex; the last matching line is replaced (present) or all matching lines removed (absent)
    search_string: a literal string instead of regexp
    state: present (default) or absent
    insertafter: EOF (default), BOF, or a regex: with no regexp match, the line goes after its last match
    insertbefore: BOF or a regex: with no regexp match, the line goes before its last match
    firstmatch: use the first match of regexp/insertafter/insertbefore instead of the last
    backrefs: expand \\1 groups of regexp in line; with no match the file is left as is
    create: create the file (and its directory) when it is missing
    backup: keep the old file as path.<timestamp>~ when it changes
    mode/owner/group: attributes of the file (mode quoted: '0644')
    validate: command checking the new file before it goes live, %s is the file
    """

    name = "lineinfile"
    args = {
        "path": Arg(str, required=True, aliases=("dest", "destfile", "name")),
        "line": Arg(str, aliases=("value",)),
        "regexp": Arg(str, aliases=("regex",)),
        "search_string": Arg(str),
        "state": Arg(str, default="present", choices=("present", "absent")),
        "insertafter": Arg(str),
        "insertbefore": Arg(str),
        "firstmatch": Arg(bool, default=False),
        "backrefs": Arg(bool, default=False),
        "create": Arg(bool, default=False),
        "backup": Arg(bool, default=False),
        "mode": Arg(object),
        "owner": Arg(str),
        "group": Arg(str),
        "validate": Arg(str),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        parse_mode(args.get("mode"))
        for exclusive in (("insertbefore", "insertafter"), ("regexp", "search_string"), ("backrefs", "search_string")):
            if all(args.get(name) not in (None, False) for name in exclusive):
                raise ArgumentError(f"lineinfile: {' and '.join(exclusive)} cannot be used together")
        if args.get("state", "present") == "present":
            if args.get("line") is None:
                raise ArgumentError("lineinfile: line is required with state: present")
            if args.get("backrefs") and args.get("regexp") is None:
                raise ArgumentError("lineinfile: backrefs needs regexp")
        elif all(args.get(name) is None for name in ("line", "regexp", "search_string")):
            raise ArgumentError("lineinfile: state: absent needs one of line, search_string or regexp")
        if "" in (args.get("regexp"), args.get("search_string")):
            raise ArgumentError(
                "lineinfile: an empty regexp or search_string matches every line", hint="use '^' if that is meant"
            )
        for name in ("regexp", "insertafter", "insertbefore"):
            value = args.get(name)
            if value is not None and value not in ("BOF", "EOF"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ArgumentError(f"lineinfile: {name} {value!r} is not a valid regex: {exc}") from None
        if args.get("validate") and "%s" not in args["validate"]:
            raise ArgumentError(f"lineinfile: validate {args['validate']!r} must contain %s for the new file")

    def facts(self, args: dict[str, Any]) -> FileText:
        return FileText(args["path"])

    def plan(self, args: dict[str, Any], facts: TextFile, ctx: PlanContext) -> Plan:
        path = args["path"]
        current, content = facts.state, facts.text
        data: dict[str, Any] = {"path": path}
        if current.type == "link":
            return Plan(error=f"{path} is a symlink (to {current.link_target}); edit its target", data=data)
        if current.type not in ("file", "absent"):
            return Plan(error=f"{path} is a {current.type}, not a file", data=data)
        if content is None:
            if args["state"] == "absent":
                return Plan("file not present", data=data)
            if not args.get("create"):
                return Plan(error=f"{path} does not exist (fix: set create: true to create it)", data=data)
        elif "\ufffd" in content:
            return Plan(error=f"{path} is not UTF-8 text; lineinfile would damage it", data=data)
        try:
            edit = edit_lines(
                content or "",
                line=args.get("line"), regexp=args.get("regexp"), search_string=args.get("search_string"),
                state=args["state"], insertafter=args.get("insertafter"), insertbefore=args.get("insertbefore"),
                firstmatch=args.get("firstmatch", False), backrefs=args.get("backrefs", False),
            )  # fmt: skip
        except (re.error, IndexError) as exc:
            return Plan(error=f"lineinfile {path}: cannot apply {args.get('line')!r}: {exc}", data=data)
        mode, owner, group = parse_mode(args.get("mode")), args.get("owner"), args.get("group")
        changes = attr_changes(current, mode=mode, owner=owner, group=group) if current.exists else {}
        write = edit.changed or content is None
        if args["state"] == "absent":
            data["found"] = edit.found
        if not write and not changes:
            return Plan(data=data)
        msg = edit.msg or ("created " + path if content is None else "changed " + ", ".join(changes))

        def diff(_ctx: PlanContext) -> str:
            text = unified_diff(content or "", edit.text, path) if write else ""
            return text + (attrs_diff(path, current.type, "file", changes) if changes else "")

        if not write:
            return Plan(msg, script=chain(changes_script(path, changes).splitlines()), inline=True, data=data,
                        diff=diff, check_msg=f"would have: {msg}", what=f"writing {path}")
        parent = quote(posixpath.dirname(path))
        script = f"[ -d {parent} ] || mkdir -p -- {parent}\n" if content is None and "/" in path else ""
        new_bytes = edit.text.encode()
        script += write_file_script(
            path, mode=mode, owner=owner, group=group,
            backup=args.get("backup", False), validate=args.get("validate"), size=len(new_bytes),
        )  # fmt: skip
        # What the file's read will answer afterwards, so the next edit of it can join the same batch:
        # an existing file keeps its attributes except the ones set here; a new one gets mode 644
        # and, as a guess the host checks, the login user and that user's own group.
        predicts = None
        login = str((ctx.variables.get("facts") or {}).get("user") or "")
        if current.type == "file" or login:
            state = "\t".join(("file", mode or current.mode or "644", owner or current.owner or login,
                               group or current.group or login, str(len(new_bytes)), "-", "-"))
            predicts = FileText(path).answer(state, edit.text)
        # Certain when no owner or group is guessed: both are set here, or neither is and root keeps
        # the old file's (chown --reference; a new file's are the writer's, a guess). The mode is
        # always set: given, the old file's, or 644.
        kept = not (owner or group) and current.type == "file" and (ctx.become_user or login) == "root"
        exactly = predicts is not None and (bool(owner and group) or kept)
        stdin = write_input(new_bytes)
        return Plan(msg, script=script, stdin=stdin, data=data, diff=diff, check_msg=f"would have: {msg}",
                    reads_stdin_first=reads_exactly_first(script, len(stdin)),
                    outcome=write_outcome(path, validate=args.get("validate"), backup=args.get("backup", False)),
                    predicts=predicts, predicts_exactly=exactly)
