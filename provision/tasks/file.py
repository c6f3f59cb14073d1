"""``file``: a path's type (file, directory, symlink, absent, touched) and its mode/owner/group.

The fact (``FileFacts``) reads the path (and, for ``recurse``, whether anything in the tree
differs; for a link, whether its source exists); ``plan_file`` decides from it alone, so a
converged task costs no extra call and every decision is unit-tested with captured probe output.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, Fact, Module, Plan, PlanContext
from .shell import (
    FileState,
    attr_changes,
    attrs_diff,
    attrs_script,
    chain,
    changes_script,
    parse_mode,
    parse_stat,
    quote,
)


@dataclass
class FilePlan:
    """What to do to a path: a script (empty when converged), or an error."""

    script: str = ""
    msg: str = ""
    error: str | None = None
    before: str = "absent"
    after: str = "absent"
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The error only says a link's source is missing: in check mode an earlier task may create it.
    missing_source: bool = False


def link_source(path: str, src: str) -> str:
    """Where a symlink's ``src`` points, resolved as the kernel would (relative: from the link's dir)."""
    return src if src.startswith("/") else posixpath.join(posixpath.dirname(path) or ".", src)


def missing_parents(path: str) -> list[str]:
    """``path`` and each of its ancestors, outermost first (the script creates the missing ones)."""
    parts = []
    current = posixpath.normpath(path)
    while current not in ("/", ".", ""):
        parts.append(current)
        current = posixpath.dirname(current)
    return parts[::-1]


def file_probe(args: dict[str, Any]) -> str:
    """``pv_stat PATH`` then, as needed, ``tree differs|same`` and ``src present|absent`` lines."""
    path = args["path"]
    lines = [f"pv_stat {quote(path)}"]
    if args.get("recurse"):
        tests = []
        if args.get("owner"):
            tests.append(f"! -user {quote(args['owner'])}")
        if args.get("group"):
            tests.append(f"! -group {quote(args['group'])}")
        if args.get("mode"):
            tests.append(f"! -perm {parse_mode(args['mode'])}")
        if tests:
            expr = " -o ".join(tests)
            lines.append(
                f'if [ -d {quote(path)} ] && [ -n "$(find {quote(path)} -mindepth 1 ! -type l \\( {expr} \\) '
                f'-print 2>/dev/null | head -n 1)" ]; then echo tree differs; else echo tree same; fi'
            )
    if args.get("src"):
        target = quote(link_source(path, args["src"]))
        lines.append(f"if [ -e {target} ]; then echo src present; else echo src absent; fi")
    return "\n".join(lines)


@dataclass(frozen=True)
class FileFacts(Fact["FileFacts.Value"]):
    """``file``'s fact: the path's state, and what its arguments also need to know."""

    args: tuple[tuple[str, Any], ...]

    @dataclass(frozen=True)
    class Value:
        state: FileState
        tree_differs: bool | None = None  # recurse: does anything below differ (None: not asked)
        src_present: bool | None = None  # link: does its source exist (None: not asked)

    def command(self) -> str:
        return file_probe(dict(self.args))

    def absent_path(self) -> str | None:
        # A link's source is read too: its answer depends on more than the path.
        args = dict(self.args)
        return None if args.get("src") else str(args["path"])

    def parse(self, output: str) -> FileFacts.Value:
        lines = (output or "").splitlines()
        extra = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
        return FileFacts.Value(
            parse_stat(lines[0] if lines else "absent"),
            None if "tree" not in extra else extra["tree"] == "differs",
            None if "src" not in extra else extra["src"] == "present",
        )


def plan_file(args: dict[str, Any], facts: FileFacts.Value | str | None) -> FilePlan:
    """Decide the change for ``file`` from its facts (or the probe's raw output, parsed here)."""
    if not isinstance(facts, FileFacts.Value):
        facts = FileFacts(()).parse(facts or "")
    current = facts.state
    path = args["path"]
    mode, owner, group = parse_mode(args.get("mode")), args.get("owner"), args.get("group")
    state = args.get("state") or _default_state(current)
    plan = FilePlan(before=current.type)
    q = quote(path)

    if state is None:
        plan.error = f"{path} does not exist"
        plan.msg = "set state: touch to create a file, or state: directory"
        return plan

    if state == "absent":
        if current.exists:
            plan.script = f"rm -rf -- {q}\n"
            plan.msg = f"removed {current.type} {path}"
        return plan

    plan.after = {"touch": "file"}.get(state, state)
    if state == "link":
        return _plan_link(plan, args, current, facts.src_present, owner, group)

    if current.exists and current.type != plan.after and not (state == "touch" and current.type != "link"):
        plan.error = f"{path} is a {current.type}, not a {plan.after}"
        plan.msg = "remove it first (state: absent) or fix the path"
        return plan

    if state == "file" and not current.exists:
        plan.error = f"file {path} does not exist"
        plan.msg = "use state: touch to create an empty file, or copy/template to write one"
        return plan

    attrs = attrs_script(path, mode=mode, owner=owner, group=group)
    if not current.exists:
        if state == "touch":
            plan.script = f": > {q}\n{attrs}"
            plan.msg = f"created empty file {path}"
        else:  # directory: each missing parent gets the attributes too, as in Ansible
            # mkdir -m sets the mode itself, exactly (no umask), one process fewer than a chmod.
            # Not for set-id or sticky bits with an owner: chown, which must come first, may clear them.
            at_mkdir = mode is not None and not ((owner or group) and int(mode, 8) & 0o7000)
            make = f"mkdir -m {mode} --" if at_mkdir else "mkdir --"
            rest = None if at_mkdir else mode
            create = "".join(
                f"{{ [ -e {quote(d)} ] || {{ {make} {quote(d)}"
                + "".join(f" && {step}" for step in attrs_script(d, mode=rest, owner=owner, group=group).splitlines())
                + "; }; }\n"
                for d in missing_parents(path)
            )
            plan.script = create
            plan.msg = f"created directory {path}"
        plan.changes = {k: ("", v) for k, v in (("mode", mode), ("owner", owner), ("group", group)) if v}
        return plan

    plan.changes = attr_changes(current, mode=mode, owner=owner, group=group)
    script = ""
    if plan.changes:
        script = changes_script(path, plan.changes)
    if args.get("recurse") and facts.tree_differs:
        script = attrs_script(path, mode=mode, owner=owner, group=group, recurse=True)
        plan.changes.setdefault("tree", ("differs", "set recursively"))
    plan.script = script
    if script:
        plan.msg = "changed " + ", ".join(plan.changes)
    return plan


def _plan_link(
    plan: FilePlan,
    args: dict[str, Any],
    current: FileState,
    src_present: bool | None,
    owner: str | None,
    group: str | None,
) -> FilePlan:
    path, src = args["path"], args["src"]
    q = quote(path)
    if current.type == "link" and current.link_target == src:
        plan.changes = attr_changes(current, owner=owner, group=group)
        if plan.changes:
            plan.script = attrs_script(path, owner=owner, group=group, link=True)
            plan.msg = "changed " + ", ".join(plan.changes)
        return plan
    if current.type == "directory":
        plan.error = f"{path} is a directory; it cannot be replaced by a link"
        plan.msg = "remove it first (file: state=absent) if that is really wanted"
        return plan
    if current.type not in ("link", "absent") and not args.get("force"):
        plan.error = f"{path} is a {current.type}; refusing to replace it by a link"
        plan.msg = "set force: true to replace it"
        return plan
    if src_present is False and not args.get("force"):
        plan.error = f"link source {link_source(path, src)} does not exist"
        plan.msg = "set force: true to create a dangling link anyway"
        plan.missing_source = True
        plan.changes = {"src": (current.link_target or "", src)}
        return plan
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.provision-link")
    plan.script = (
        f"rm -f -- {quote(tmp)}\nln -s -- {quote(src)} {quote(tmp)}\n"
        f"{attrs_script(tmp, owner=owner, group=group, link=True)}mv -T -f -- {quote(tmp)} {q}\n"
    )
    plan.changes = {"src": (current.link_target or "", src)}
    plan.msg = f"linked {path} -> {src}"
    return plan


def _default_state(current: FileState) -> str | None:
    """Ansible's default: the path's current type; a missing path is an error."""
    if not current.exists:
        return None
    return current.type if current.type in ("file", "directory", "link") else "file"


class File(Module):
    """Make a path a file, directory or symlink (or remove it) and set its mode/owner/group.

    path: the path on the host (aliases: dest, name)
    state: file (must exist), directory (created with its parents), link, touch (create if absent), absent
      (default: what the path is now; an error when it does not exist)
    mode: octal mode, quoted: '0644'
    owner: user name owning the path
    group: group name owning the path
    src: what a link points to (state: link)
    recurse: set owner/group/mode on the whole tree (state: directory)
    force: replace an existing file by a link, or create a link whose source does not exist
    """

    name = "file"
    args = {
        "path": Arg(str, required=True, aliases=("dest", "name")),
        "state": Arg(str, choices=("file", "directory", "link", "touch", "absent")),
        "mode": Arg(object),
        "owner": Arg(str),
        "group": Arg(str),
        "src": Arg(str),
        "recurse": Arg(bool, default=False),
        "force": Arg(bool, default=False),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        parse_mode(args.get("mode"))
        state = args.get("state")
        if state == "link" and not args.get("src"):
            raise ArgumentError("file: state: link needs src (what the link points to)")
        if args.get("src") and state != "link":
            raise ArgumentError("file: src is only for state: link")
        if state == "link" and args.get("mode"):
            raise ArgumentError("file: a symlink has no mode of its own; set the mode on its source")
        if args.get("recurse") and state != "directory":
            raise ArgumentError("file: recurse needs state: directory")
        if posixpath.normpath(args["path"]) == "/" and state == "absent":
            raise ArgumentError("file: refusing to remove /")

    def facts(self, args: dict[str, Any]) -> FileFacts:
        return FileFacts(tuple(sorted(args.items())))

    def probe(self, args: dict[str, Any]) -> str | None:
        return file_probe(args)  # facts(args).command(), without building the fact (asked per look-ahead)

    def plan(self, args: dict[str, Any], facts: FileFacts.Value, ctx: PlanContext) -> Plan:
        plan = plan_file(args, facts)
        path = args["path"]
        data: dict[str, Any] = {"path": path, "state": plan.after}
        if plan.error:
            pending = None
            if plan.missing_source:
                pending = (f"would link {path} -> {args['src']} (its source does not exist yet; "
                           "an earlier task may create it)")
            return Plan(error=f"{plan.error} (fix: {plan.msg})", pending=pending, data=data)
        if not plan.script:
            return Plan(data=data)
        data["before"] = {"state": plan.before, **{k: v[0] for k, v in plan.changes.items()}}
        data["after"] = {"state": plan.after, **{k: v[1] for k, v in plan.changes.items()}}
        # One command per line, chained: it stops at the first failure and can run in a batch's shell.
        return Plan(plan.msg, script=chain(plan.script.splitlines()), inline=True, data=data,
                    what=f"file {path} ({plan.msg})",
                    diff=lambda _ctx: attrs_diff(path, plan.before, plan.after, plan.changes))
