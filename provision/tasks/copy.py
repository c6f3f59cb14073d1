"""``copy``: put a control-host file (or given content) on the host, uploading only what differs.

The probe reads the destination's sha256 and attributes with the batch; the content's sha256 is
computed here, so a converged copy costs no call and nothing already on the host is re-sent. A
change is one script: the content on stdin, written atomically with its attributes (validated
first when asked). ``template`` (template.py) is this module with rendered content.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, InputError
from .base import Arg, Fact, Module, Plan, PlanContext
from .facts import FileBody, PathStates
from .shell import (
    DIFF_MAX_BYTES,
    FileState,
    attr_changes,
    attrs_diff,
    chain,
    changes_script,
    content_diff,
    not_shown_diff,
    parse_mode,
    parse_stat,
    quote,
    reads_exactly_first,
    sha256_hex,
    write_file_script,
    write_input,
    write_outcome,
)


@dataclass
class UploadPlan:
    """What to do to the destination file."""

    target: str
    current: FileState
    write: bool = False
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    make_dir: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class UploadState:
    """``UploadFacts``' value: dest's state, and the file's inside dest when dest is a directory."""

    dest: FileState
    inside: FileState | None = None


def upload_probe(dest: str, source_name: str | None) -> str:
    """``pv_stat`` (with sum) of ``dest``, and of ``dest/<source name>`` for a directory dest."""
    lines = [f"pv_stat {quote(dest)} sum"]
    if source_name:
        inside = f"pv_stat {quote(posixpath.join(dest, source_name))} sum"
        lines.append(inside if dest.endswith("/") else f"if [ -d {quote(dest)} ]; then {inside}; fi")
    return "\n".join(lines)


def plan_upload(
    dest: str,
    source_name: str | None,
    facts: UploadState | str | None,
    *,
    checksum: str,
    force: bool = True,
    mode: str | None = None,
    owner: str | None = None,
    group: str | None = None,
) -> UploadPlan:
    """Decide, from the facts (or the probe's raw output) and the content's sha256, what to write and fix."""
    if not isinstance(facts, UploadState):
        facts = UploadFacts(dest, source_name).parse(facts or "")
    dest_state = facts.dest
    inside = facts.inside or FileState("absent")
    target, current, make_dir = dest, dest_state, None
    if dest.endswith("/"):
        if not source_name:
            return UploadPlan(dest, dest_state, error=f"dest {dest} is a directory; name the file to write")
        target = posixpath.join(dest, source_name)
        current = inside
        if not dest_state.exists:
            make_dir = dest
    elif dest_state.type == "directory":
        if not source_name:
            return UploadPlan(dest, dest_state, error=f"dest {dest} is a directory; name the file to write")
        target = posixpath.join(dest, source_name)
        current = inside
    plan = UploadPlan(target, current, make_dir=make_dir)
    if current.type == "link":
        plan.error = f"dest {target} is a symlink (to {current.link_target}); write to the file it points to"
    elif current.type not in ("file", "absent"):
        plan.error = f"dest {target} is a {current.type}, not a file"
    elif not current.exists:
        plan.write = True
    else:  # force: false never replaces an existing file, but its attributes are still set
        plan.write = force and current.sha256 != checksum
        plan.changes = attr_changes(current, mode=mode, owner=owner, group=group)
    return plan


class Upload(Module):
    """What ``copy`` and ``template`` share; subclasses say where the content comes from."""

    def content(self, args: dict[str, Any], ctx: PlanContext) -> bytes:
        raise NotImplementedError

    def source_name(self, args: dict[str, Any]) -> str | None:
        """The file name used when dest is a directory (None: no name, dest must be a file)."""
        src = args.get("src")
        return posixpath.basename(src.rstrip("/")) if src else None

    def check_args(self, args: dict[str, Any]) -> None:
        parse_mode(args.get("mode"))
        if args.get("validate") and "%s" not in args["validate"]:
            raise ArgumentError(f"{self.name}: validate {args['validate']!r} must contain %s for the new file")

    def facts(self, args: dict[str, Any]) -> UploadFacts:
        return UploadFacts(args["dest"], self.source_name(args))

    def probe(self, args: dict[str, Any]) -> str | None:
        return upload_probe(args["dest"], self.source_name(args))  # facts(args).command(), without the object

    def plan(self, args: dict[str, Any], facts: UploadState, ctx: PlanContext) -> Plan:
        try:
            data = self.content(args, ctx)
        except InputError as exc:
            return Plan(error=str(exc), data={"dest": args["dest"]})
        return self.plan_content(args, facts, data)

    def plan_content(self, args: dict[str, Any], facts: UploadState, data: bytes) -> Plan:
        """The plan for writing ``data`` (the content, read or rendered on the control host)."""
        checksum = sha256_hex(data)
        mode, owner, group = parse_mode(args.get("mode")), args.get("owner"), args.get("group")
        plan = plan_upload(
            args["dest"], self.source_name(args), facts,
            checksum=checksum, force=args.get("force", True), mode=mode, owner=owner, group=group,
        )  # fmt: skip
        target = plan.target
        info: dict[str, Any] = {"dest": target, "checksum": checksum, "size": len(data)}
        if plan.error:
            return Plan(error=plan.error, data=info)
        if not plan.write and not plan.changes:
            return Plan(data=info)
        what = "changed " + ", ".join(plan.changes)
        if plan.write:
            what = "updated" if plan.current.exists else "created"
        if plan.write:
            script = f"[ -d {quote(plan.make_dir)} ] || mkdir -p -- {quote(plan.make_dir)}\n" if plan.make_dir else ""
            script += write_file_script(
                target, mode=mode, owner=owner, group=group,
                backup=args.get("backup", False), validate=args.get("validate"), size=len(data),
            )  # fmt: skip
            stdin: bytes | None = write_input(data)
        else:
            script, stdin = chain(changes_script(target, plan.changes).splitlines()), None
        return Plan(f"{what} {target}", script=script, stdin=stdin, data=info,
                    reads_stdin_first=stdin is not None and reads_exactly_first(script, len(stdin)),
                    inline=stdin is None, diff=lambda reader: upload_diff(plan, data, reader),
                    outcome=write_outcome(target, validate=args.get("validate"),
                                          backup=plan.write and args.get("backup", False)))


def upload_diff(plan: UploadPlan, data: bytes, ctx: PlanContext) -> str:
    """The content diff (the old file read from the host, if worth showing) and the attribute diff."""
    parts = []
    if plan.write:
        if not plan.current.exists:
            parts.append(content_diff(None, data, plan.target))
        elif plan.current.size > DIFF_MAX_BYTES or len(data) > DIFF_MAX_BYTES:
            parts.append(not_shown_diff(plan.target))
        else:
            old = ctx.read(FileBody(plan.target))
            # The transport decodes with replacement: a U+FFFD means the old file is not UTF-8.
            if old is None or "\ufffd" in old:
                parts.append(not_shown_diff(plan.target))
            else:
                parts.append(content_diff(old.encode(), data, plan.target))
    if plan.changes:
        parts.append(attrs_diff(plan.target, plan.current.type, "file", plan.changes))
    return "".join(parts)


@dataclass(frozen=True)
class UploadFacts(Fact[UploadState]):
    """The destination's state and, when it is (or names) a directory, the state of the file inside."""

    dest: str
    source_name: str | None

    def command(self) -> str:
        return upload_probe(self.dest, self.source_name)

    def absent_path(self) -> str | None:
        return self.dest  # absent: the file inside it is absent too

    def parse(self, output: str) -> UploadState:
        lines = (output or "absent").splitlines() or ["absent"]
        return UploadState(parse_stat(lines[0]), parse_stat(lines[1]) if len(lines) > 1 else None)


_UPLOAD_ARGS = {
    "dest": Arg(str, required=True, aliases=("path",)),
    "mode": Arg(object),
    "owner": Arg(str),
    "group": Arg(str),
    "backup": Arg(bool, default=False),
    "validate": Arg(str),
    "force": Arg(bool, default=True),
}


class Copy(Upload):
    """Write a file on the host from a control-host file or from given content.

    src: control-host file (looked up under the playbook's files/), or a directory: dir/ copies what is in it,
      dir copies the directory itself into dest (one extra read of the remote tree per run)
    content: the text to write (instead of src; redacted from output)
    dest: path on the host; an existing directory (or a path ending in /) receives the file under src's name
    mode: octal mode, quoted: '0644' (default: keep the old file's, 0644 for a new one)
    owner: user name owning the file
    group: group name owning the file
    backup: keep the old file as dest.<timestamp>~ when it changes
    validate: command checking the new file before it goes live, %s is the file: 'nginx -t -c %s'
    force: replace a file whose content differs (default true); false only creates a missing file
    """

    name = "copy"
    args = {"src": Arg(str), "content": Arg(str, secret=True), **_UPLOAD_ARGS}

    def check_args(self, args: dict[str, Any]) -> None:
        super().check_args(args)
        if (args.get("src") is None) == (args.get("content") is None):
            raise ArgumentError("copy: give exactly one of src (a control-host file) or content")

    def plan(self, args: dict[str, Any], facts: UploadState, ctx: PlanContext) -> Plan:
        if args.get("src") is not None:
            try:
                root = ctx.find_file(args["src"])
            except InputError as exc:
                return Plan(error=str(exc), data={"dest": args["dest"]})
            if root.is_dir():
                return self.plan_tree(args, ctx, root)
        return super().plan(args, facts, ctx)

    def content(self, args: dict[str, Any], ctx: PlanContext) -> bytes:
        if args.get("content") is not None:
            return str(args["content"]).encode()
        return ctx.find_file(args["src"]).read_bytes()

    def plan_tree(self, args: dict[str, Any], ctx: PlanContext, root: Path) -> Plan:
        """Copy a control-host directory: one extra read of the remote tree, then one script for all changes."""
        dest = args["dest"].rstrip("/") or "/"
        if args.get("validate"):
            return Plan(error="copy: validate is not supported when src is a directory", data={"dest": dest})
        dirs, files = local_tree(root, keep_name=not args["src"].endswith("/"))
        remote_dirs = [posixpath.join(dest, d) for d in dirs]
        remote_files = [posixpath.join(dest, f) for f in files]
        try:
            states = ctx.read(PathStates([dest, *remote_dirs, *remote_files],
                                         [False] * (1 + len(dirs)) + [True] * len(files)))
        except ValueError:
            return Plan(error=f"copy: cannot read the state of {dest} on the host", data={"dest": dest})
        mode, owner, group = parse_mode(args.get("mode")), args.get("owner"), args.get("group")
        spec = f"{owner or ''}{':' + group if group else ''}"
        script, stdin, planned, touched = ["set -e"], [], [], []
        for path, current in zip([dest, *remote_dirs], states, strict=False):
            if current.exists and current.type != "directory":
                return Plan(error=f"copy: {path} on the host is a {current.type}, not a directory", data={"dest": dest})
            if not current.exists:
                script.append(
                    f"mkdir -p -- {quote(path)}" + (f" && chown {quote(spec)} -- {quote(path)}" if spec else "")
                )
                touched.append(path + "/")
        for (rel, local), current in zip(files.items(), states[1 + len(dirs) :], strict=True):
            data, target = local.read_bytes(), posixpath.join(dest, rel)
            plan = plan_upload(target, None, UploadState(current), checksum=sha256_hex(data),
                               force=args.get("force", True), mode=mode, owner=owner, group=group)  # fmt: skip
            if plan.error:
                return Plan(error=f"copy: {plan.error}", data={"dest": dest})
            if plan.write:
                script.append(write_file_script(target, mode=mode, owner=owner, group=group,
                                                backup=args.get("backup", False), size=len(data)))  # fmt: skip
                stdin.append(write_input(data))
            elif plan.changes:
                script.append(changes_script(target, plan.changes))
            if plan.write or plan.changes:
                touched.append(target)
                planned.append((plan, data))
        info: dict[str, Any] = {"dest": dest, "changed_paths": touched}
        if not touched:
            return Plan(data=info)
        return Plan(f"updated {len(touched)} path(s) under {dest}", script="\n".join(script) + "\n",
                    stdin=b"".join(stdin), data=info, what=f"copying {args['src']} to {dest}",
                    diff=lambda reader: "".join(upload_diff(plan, data, reader) for plan, data in planned))


def local_tree(root: Path, *, keep_name: bool) -> tuple[list[str], dict[str, Path]]:
    """(directories, files) of a control-host tree as relative paths, parents first; links are followed."""
    base = root.name if keep_name else ""
    dirs, files = ([base] if base else []), {}
    for path in sorted(root.rglob("*")):
        rel = posixpath.join(base, path.relative_to(root).as_posix()) if base else path.relative_to(root).as_posix()
        if path.is_dir():
            dirs.append(rel)
        elif path.is_file():
            files[rel] = path
    return dirs, files
