"""git: a checkout of a repository at a branch, tag or commit.

The probe reads the checkout (HEAD, remote URL, branch, tags at HEAD, tracked changes) without
the network. A tag or commit that HEAD already is costs nothing more; a branch costs one
read-only ``git ls-remote`` to learn whether it moved. Run it as the checkout's owner
(``become_user``): git refuses repositories of other users ("dubious ownership"), and the fix
is the right user, not a global ``safe.directory``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Fact, FactReadFailed, Module, Plan, PlanContext, TaskResult
from .facts import Probe
from .shell import quote

_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
# No prompts for credentials or host keys: a task must fail, not hang.
GIT_ENV = 'export GIT_TERMINAL_PROMPT=0 LC_ALL=C GIT_SSH_COMMAND="${GIT_SSH_COMMAND:-ssh -o BatchMode=yes}"\n'
RC_DIVERGED = 12


@dataclass
class Checkout:
    """The destination as the probe saw it."""

    present: str  # no | empty | other | repo
    head: str = ""
    url: str = ""
    branch: str = ""
    tags: list[str] = field(default_factory=list)
    dirty: list[str] = field(default_factory=list)
    error: str = ""
    owner: str = ""
    me: str = ""


@dataclass(frozen=True)
class Target:
    """What ``version`` names on the remote: kind branch|tag|commit, its ref name, its commit."""

    kind: str
    ref: str
    sha: str


def parse_probe(state: str | None) -> Checkout:
    """Read the probe's ``key=value`` lines."""
    checkout = Checkout(present="no")
    for line in (state or "").splitlines():
        key, _, value = line.partition("=")
        if key in ("tag", "dirty"):
            (checkout.tags if key == "tag" else checkout.dirty).append(value.strip() if key == "tag" else value)
        elif key in ("present", "head", "url", "branch", "error", "owner", "me"):
            setattr(checkout, key, value.strip())
    return checkout


def is_commit(version: str) -> bool:
    return bool(_SHA.match(version))


def parse_ls_remote(text: str, version: str) -> Target | None:
    """The branch, tag (peeled) or default branch that ``git ls-remote`` shows for ``version``."""
    refs: dict[str, str] = {}
    symref = ""
    for line in text.splitlines():
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            if name == "HEAD":
                symref = target
            continue
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip()
    if version == "HEAD":
        if symref.startswith("refs/heads/") and symref in refs:
            return Target("branch", symref[len("refs/heads/"):], refs[symref])
        return Target("commit", "HEAD", refs["HEAD"]) if "HEAD" in refs else None
    if f"refs/heads/{version}" in refs:
        return Target("branch", version, refs[f"refs/heads/{version}"])
    peeled = refs.get(f"refs/tags/{version}^{{}}") or refs.get(f"refs/tags/{version}")
    return Target("tag", version, peeled) if peeled else None


def fetch_and_checkout(target: Target, args: dict[str, Any], checkout: Checkout) -> str:
    """Commands (run inside dest) that fetch ``target`` and check it out."""
    remote, depth, force = quote(args["remote"]), args["depth"], args["force"]
    deep = f" --depth {int(depth)}" if depth else ""
    f = " -f" if force else ""
    if target.kind == "branch":
        tracking_ref = f"refs/remotes/{args['remote']}/{target.ref}"
        tracking = quote(tracking_ref)
        lines = [f"git fetch -q{deep} {remote} {quote(f'+refs/heads/{target.ref}:{tracking_ref}')}"]
        if not force and not depth and checkout.branch == target.ref:
            lines.append(
                f"git merge-base --is-ancestor HEAD {tracking} || {{ echo 'local branch {target.ref} has commits "
                f"that are not on {args['remote']}/{target.ref}' >&2; exit {RC_DIVERGED}; }}"
            )
        lines.append(f"git checkout -q{f} -B {quote(target.ref)} {tracking}")
    elif target.kind == "tag":
        ref = quote(f"refs/tags/{target.ref}")
        lines = [f"git fetch -q{deep} {remote} {quote(f'+refs/tags/{target.ref}:refs/tags/{target.ref}')}",
                 f"git checkout -q{f} --detach {ref}"]
    else:
        sha = quote(target.sha)
        lines = [
            f"if ! git cat-file -e {quote(target.sha + '^{commit}')} 2>/dev/null; then",
            f"  git fetch -q{deep} {remote} {sha} 2>/dev/null || git fetch -q --tags {remote} "
            f"{quote('+refs/heads/*:refs/remotes/' + args['remote'] + '/*')}",
            "fi",
            f"git checkout -q{f} --detach {sha}",
        ]
    if force:
        lines.append("git reset -q --hard")
    return "\n".join(lines) + "\n"


def clone_script(args: dict[str, Any]) -> str:
    """Clone ``repo`` into ``dest`` at ``version``."""
    version = args["version"]
    dest = quote(args["dest"])
    opts = f"--origin {quote(args['remote'])}"
    if args["depth"]:
        opts += f" --depth {int(args['depth'])}"
    if version != "HEAD" and not is_commit(version):
        opts += f" --branch {quote(version)}"
    lines = [f'mkdir -p "$(dirname {dest})"', f"git clone -q {opts} -- {quote(args['repo'])} {dest}"]
    if is_commit(version):
        lines.append(f"cd {dest}")
        lines.append(fetch_and_checkout(Target("commit", version, version), args, Checkout("repo")).rstrip("\n"))
    return "\n".join(lines) + "\n"


class Git(Module):
    """Check out a git repository at a branch, tag or commit.

    repo: the repository URL (or path on the host)
    dest: the checkout directory
    version: branch, tag or commit (default: HEAD of the remote)
    remote: the remote's name (default origin; bench uses upstream)
    depth: shallow clone/fetch depth
    force: discard local changes to tracked files (otherwise they fail the task)
    update: fetch and move an existing checkout (default true)
    clone: clone when dest is missing (default true)
    """

    name = "git"
    args = {
        "repo": Arg(str, required=True, aliases=("name",), help="the repository URL (or path on the host)"),
        "dest": Arg(str, required=True, help="the checkout directory"),
        "version": Arg(str, default="HEAD", help="branch, tag or commit (default: HEAD of the remote)"),
        "remote": Arg(str, default="origin", help="the remote's name (default origin; bench uses upstream)"),
        "depth": Arg(int, help="shallow clone/fetch depth"),
        "force": Arg(bool, default=False, help="discard local changes to tracked files (otherwise they fail the task)"),
        "update": Arg(bool, default=True, help="fetch and move an existing checkout (default true)"),
        "clone": Arg(bool, default=True, help="clone when dest is missing (default true)"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if not args["dest"].startswith("/"):
            raise ArgumentError("git: dest must be an absolute path")
        if args["depth"] is not None and args["depth"] < 1:
            raise ArgumentError("git: depth must be at least 1")
        if args["version"].startswith("-") or not args["remote"].replace("-", "").replace("_", "").isalnum():
            raise ArgumentError("git: version and remote must be plain names")

    def facts(self, args: dict[str, Any]) -> Probe[Checkout]:
        return Probe(self._probe(args), parse_probe)

    def _probe(self, args: dict[str, Any]) -> str:
        d, remote = quote(args["dest"]), quote(f"remote.{args['remote']}.url")
        return (
            f"_pv_d={d}\n"
            'if [ -e "$_pv_d/.git" ]; then\n'
            "  echo present=repo\n"
            '  echo "owner=$(stat -c %U "$_pv_d")"; echo "me=$(id -un)"\n'
            '  if _pv_o=$(git -C "$_pv_d" rev-parse HEAD 2>&1); then echo "head=$_pv_o"; '
            'else echo "error=$(printf %s "$_pv_o" | tr \'\\n\' \' \')"; fi\n'
            f'  echo "url=$(git -C "$_pv_d" config --get {remote} 2>/dev/null)"\n'
            '  echo "branch=$(git -C "$_pv_d" symbolic-ref -q --short HEAD 2>/dev/null)"\n'
            "  git -C \"$_pv_d\" tag --points-at HEAD 2>/dev/null | sed 's/^/tag=/'\n"
            "  git -C \"$_pv_d\" status --porcelain --untracked-files=no 2>/dev/null | sed 's/^/dirty=/'\n"
            'elif [ -d "$_pv_d" ] && [ -z "$(ls -A "$_pv_d" 2>/dev/null)" ]; then echo present=empty\n'
            'elif [ -e "$_pv_d" ]; then echo present=other\n'
            "else echo present=no; fi\n"
        )

    def plan(self, args: dict[str, Any], facts: Checkout, ctx: PlanContext) -> Plan:
        dest, version = args["dest"], args["version"]
        checkout = facts
        if checkout.present == "other":
            return Plan(error=f"{dest} exists and is not a git checkout\n  fix: remove it or use another dest")
        if checkout.present in ("no", "empty"):
            return self._clone(args)
        if checkout.error:
            fix = "\n  fix: check the checkout"
            if "dubious ownership" in checkout.error or (checkout.owner and checkout.owner != checkout.me):
                fix = (f"\n  fix: run this task as the checkout's owner (become_user: {checkout.owner}); "
                       "do not add it to safe.directory")
            return Plan(error=f"cannot read {dest} as {checkout.me}: {checkout.error.strip()}{fix}")
        before = checkout.head
        url_changed = checkout.url != args["repo"]
        data: dict[str, Any] = {"before": before, "after": before, "remote_url_changed": url_changed, "dest": dest}
        target: Target | None = None
        if args["update"]:
            if is_commit(version) and before.startswith(version.lower()):
                target = Target("commit", version, before)
            elif version in checkout.tags:
                target = Target("tag", version, before)
            elif is_commit(version):
                target = Target("commit", version, version)
            else:
                try:
                    listing = ctx.read(LsRemote(args["repo"], version))
                except FactReadFailed as exc:
                    return Plan(error=TaskResult.from_command(f"git ls-remote {args['repo']}", exc.result).msg)
                target = parse_ls_remote(listing, version)
                if target is None:
                    return Plan(error=f"version {version!r} is neither a branch nor a tag of {args['repo']}",
                                data=data)
        moves = target is not None and not before.startswith(target.sha)
        reset = target is not None and bool(checkout.dirty) and args["force"]
        if moves and checkout.dirty and not args["force"]:
            files = "\n".join("  " + f for f in checkout.dirty[:20])
            return Plan(error=f"{dest} has local modifications, not moving it to {version}:\n{files}\n"
                              "  fix: commit or discard them on the host, or set force: true to discard them",
                        data=data)
        if not (moves or reset or url_changed):
            note = f" (local modifications: {len(checkout.dirty)} file(s))" if checkout.dirty else ""
            return Plan(f"{dest} at {before[:12]}{note}", data={"local_modifications": checkout.dirty, **data})
        what = []
        if url_changed:
            what.append(f"remote {args['remote']} -> {args['repo']}")
        if moves and target is not None:
            what.append(f"{before[:12]} -> {target.sha[:12]} ({target.kind} {target.ref})")
        elif reset:
            what.append("discard local modifications")
        script = f"{GIT_ENV}set -e\ncd {quote(dest)}\n"
        if url_changed:
            r, u = quote(args["remote"]), quote(args["repo"])
            script += f"git remote set-url {r} {u} 2>/dev/null || git remote add {r} {u}\n"
        if moves and target is not None:
            script += fetch_and_checkout(target, args, checkout)
        elif reset:
            script += "git reset -q --hard\n"

        def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult:
            done = self._outcome(result, f"update {dest}", data)
            if done.status == "failed" and done.data.get("rc") == RC_DIVERGED:
                done.msg += "\n  fix: push or drop the local commits, or set force: true to reset the branch"
            elif done.status == "changed":
                done.msg = "; ".join(what)
                if moves:
                    done.msg = f"{before[:12]} -> {done.data['after'][:12]}" + (f"; {what[0]}" if url_changed else "")
            return done

        return Plan(f"update {dest}", script=self._with_after(script, dest), data=data, outcome=outcome,
                    check_msg="would update: " + "; ".join(what), timeout=1800)

    def _clone(self, args: dict[str, Any]) -> Plan:
        data: dict[str, Any] = {"before": None, "after": None, "remote_url_changed": False, "dest": args["dest"]}
        if not args["clone"]:
            return Plan(f"{args['dest']} absent (clone: false)", data=data)

        def outcome(result: CommandResult, data: dict[str, Any]) -> TaskResult:
            done = self._outcome(result, f"git clone {args['repo']}", data)
            if done.status == "changed":
                done.msg = f"cloned {args['repo']} at {done.data['after'][:12]}"
            return done

        return Plan(f"git clone {args['repo']}", script=self._with_after(f"{GIT_ENV}set -e\n{clone_script(args)}",
                                                                         args["dest"]),
                    data=data, outcome=outcome, timeout=1800,
                    check_msg=f"would clone {args['repo']} at {args['version']} into {args['dest']}")

    @staticmethod
    def _with_after(script: str, dest: str) -> str:
        return script + f'echo "after=$(git -C {quote(dest)} rev-parse HEAD)"\n'

    @staticmethod
    def _outcome(result: CommandResult, what: str, data: dict[str, Any]) -> TaskResult:
        if not result.ok:
            failed = TaskResult.from_command(what, result)
            failed.data.update(data)
            return failed
        after = next((ln[6:] for ln in result.stdout.splitlines() if ln.startswith("after=")), "")
        return TaskResult.changed(what, **{**data, "after": after})


@dataclass(frozen=True)
class LsRemote(Fact[str]):
    """What a remote's branch or tag points at (``git ls-remote --symref``), read when a plan needs it."""

    repo: str
    version: str
    checks_exit = True
    timeout = 120.0

    def command(self) -> str:
        return f"{GIT_ENV}git ls-remote --symref -- {quote(self.repo)} {quote(self.version)}\n"

    def parse(self, output: str) -> str:
        return output
