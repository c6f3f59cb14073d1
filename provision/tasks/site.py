"""``site``: a Frappe site exists, lives in ``shared/``, has its apps and its config keys.

Site directories outlive releases: they are kept in the shared sites directory and linked into
each release's ``sites/``. A declared site that does not exist is created with ``bench new-site``
(the db root and admin passwords typed at frappe's own prompts, on stdin — never on a command
line), then moved to the shared directory. An existing site gets its missing apps installed and
its declared config keys set. A site that is not declared is never touched: there is no way to
drop a site from here.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .base import Arg, Module, TaskContext, TaskResult
from .shell import quote

_SEPARATOR = "@@provision-site@@"


class Site(Module):
    """Create a Frappe site if missing; install its missing apps; set its config keys.

    name: the site (folder) name, e.g. erp.example.com
    bench: the release's bench directory (physical path) where ``bench`` runs
    sites_dir: the shared directory holding the site folders (linked into bench/sites)
    apps: apps to install on the site (frappe is always installed first)
    admin_password: the Administrator password for a new site (secret)
    db_root_password: MariaDB root password for a new site (secret)
    db_root_username: MariaDB root user (default root)
    db_name: database name for a new site (default: frappe's own)
    config: keys to set in the site's site_config.json (values kept as given)
    bench_cli: the bench command (default bench)
    """

    name = "site"
    args: ClassVar[dict[str, Arg]] = {
        "name": Arg(str, required=True),
        "bench": Arg(str, required=True),
        "sites_dir": Arg(str, required=True),
        "apps": Arg(list, default=[]),
        "admin_password": Arg(str, secret=True),
        "db_root_password": Arg(str, secret=True),
        "db_root_username": Arg(str, default="root"),
        "db_name": Arg(str),
        "config": Arg(dict, default={}),
        "bench_cli": Arg(str, default="bench"),
    }

    def probe(self, args: dict[str, Any]) -> str | None:
        shared = f"{args['sites_dir']}/{args['name']}"
        link = f"{args['bench']}/sites/{args['name']}"
        q_shared, q_link = quote(shared), quote(link)
        return (
            f"if [ -f {q_shared}/site_config.json ]; then echo shared=yes; else echo shared=no; fi\n"
            f"if [ -L {q_link} ]; then echo \"link=$(readlink {q_link})\"; "
            f"elif [ -e {q_link} ]; then echo link=not-a-link; else echo link=none; fi\n"
            f"echo {_SEPARATOR}\n"
            f"cat {q_shared}/site_config.json 2>/dev/null\n"
            f"echo; echo {_SEPARATOR}\n"
            f"if [ -f {q_shared}/site_config.json ] && [ -L {q_link} ]; then "
            f"cd {quote(args['bench'])} && {quote(args['bench_cli'])} --site {quote(args['name'])} "
            "list-apps --format json 2>&1; fi\n"
        )

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        site = args["name"]
        flags, config, apps_out = _split(state or "")
        shared = f"{args['sites_dir']}/{site}"
        link = f"{args['bench']}/sites/{site}"
        wanted = _wanted_apps(args["apps"])
        if flags.get("link") == "not-a-link":
            return TaskResult.failed(f"{link} exists and is not a link to {shared}\n"
                                     "fix: move that site directory to the shared sites directory, then re-run")
        if flags.get("shared") != "yes":
            return self._create(args, ctx, wanted, shared, link)
        steps: list[str] = []
        script = ""
        if flags.get("link") != shared:
            steps.append("linked into this release")
            script += f"ln -sfn {quote(shared)} {quote(link)}\n"
        installed = _installed_apps(apps_out, site) if flags.get("link") == shared else None
        if installed is None and flags.get("link") == shared:
            return TaskResult.failed(f"cannot list the apps of {site}:\n{apps_out.strip()[-800:]}")
        missing = [app for app in wanted if installed is not None and app not in installed]
        current = _load_json(config)
        changed_keys = {k: v for k, v in args["config"].items() if current.get(k) != v}
        if ctx.check:
            would_install = missing if installed is not None else wanted
            if not (steps or would_install or changed_keys):
                return TaskResult.ok(f"{site}: apps and config as declared", apps=installed or [])
            return _summary(site, steps, would_install, changed_keys, check=True)
        if script:
            result = ctx.run(script)
            if not result.ok:
                return TaskResult.from_command(f"linking {site}", result)
            if installed is None:
                listed = ctx.run(f"cd {quote(args['bench'])} && {quote(args['bench_cli'])} --site {quote(site)} "
                                 "list-apps --format json", readonly=True)
                installed = _installed_apps(listed.stdout, site) or []
                missing = [app for app in wanted if app not in installed]
        if missing:
            result = ctx.run(f"cd {quote(args['bench'])} && {quote(args['bench_cli'])} --site {quote(site)} "
                             f"install-app {' '.join(quote(a) for a in missing)}")
            if not result.ok:
                return TaskResult.from_command(f"bench --site {site} install-app {' '.join(missing)}", result)
        if changed_keys:
            result = ctx.run(_set_config_script(shared), stdin=json.dumps(changed_keys).encode())
            if not result.ok:
                return TaskResult.from_command(f"setting config keys of {site}", result)
        if not (steps or missing or changed_keys):
            return TaskResult.ok(f"{site}: apps and config as declared", apps=installed or [])
        return _summary(site, steps, missing, changed_keys, check=False)

    def _create(self, args: dict[str, Any], ctx: TaskContext, wanted: list[str], shared: str,
                link: str) -> TaskResult:
        site = args["name"]
        if not args.get("admin_password") or not args.get("db_root_password"):
            return TaskResult.failed(f"site {site} does not exist and needs admin_password and db_root_password "
                                     "to be created\nfix: set them (as secrets) in the inventory's sites list")
        if ctx.check:
            return TaskResult.changed(f"would create site {site} with apps {', '.join(wanted)}")
        words = [args["bench_cli"], "new-site", site, "--db-root-username", args["db_root_username"]]
        if args.get("db_name"):
            words += ["--db-name", args["db_name"]]
        for app in wanted[1:]:
            words += ["--install-app", app]
        # frappe asks for the root password, then the Administrator password twice (getpass reads
        # stdin when there is no terminal): the secrets travel on stdin only.
        answers = f"{args['db_root_password']}\n{args['admin_password']}\n{args['admin_password']}\n"
        script = (
            "set -e\n"
            f"cd {quote(args['bench'])}\n"
            f"{' '.join(quote(w) for w in words)}\n"
            # bench created the site inside this release: move it to the shared place, link it back.
            f"mkdir -p {quote(args['sites_dir'])}\n"
            f"mv {quote(link)} {quote(shared)}\n"
            f"ln -sfn {quote(shared)} {quote(link)}\n"
        )
        result = ctx.run(script, stdin=answers.encode(), timeout=1800)
        if not result.ok:
            return TaskResult.from_command(f"bench new-site {site}", result)
        if args["config"]:
            result = ctx.run(_set_config_script(shared), stdin=json.dumps(args["config"]).encode())
            if not result.ok:
                return TaskResult.from_command(f"setting config keys of {site}", result)
        return TaskResult.changed(f"created site {site} with apps {', '.join(wanted)}", apps=wanted)


def _wanted_apps(apps: list[Any]) -> list[str]:
    names = [str(a) for a in apps if str(a) != "frappe"]
    return ["frappe", *dict.fromkeys(names)]


def _split(state: str) -> tuple[dict[str, str], str, str]:
    head, _, rest = state.partition(_SEPARATOR + "\n")
    config, _, apps = rest.partition(_SEPARATOR + "\n")
    flags = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    return flags, config, apps


def _load_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _installed_apps(output: str, site: str) -> list[str] | None:
    """The apps from ``list-apps --format json`` ({"site": [...]}) among other lines bench may print."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(data.get(site), list):
                return [str(a) for a in data[site]]
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        return None
    return [str(a) for a in data.get(site, [])] if isinstance(data, dict) else None


def _set_config_script(site_dir: str) -> str:
    """Merge the JSON on stdin into site_config.json, atomically, keeping every other key."""
    path = f"{site_dir}/site_config.json"
    return (
        "set -e\n"
        f"python3 -c '\n"
        "import json, os, sys\n"
        "path = sys.argv[1]\n"
        "with open(path) as fh:\n"
        "    config = json.load(fh)\n"
        "config.update(json.load(sys.stdin))\n"
        "tmp = path + \".provision-tmp\"\n"
        "with open(tmp, \"w\") as fh:\n"
        "    json.dump(config, fh, indent=1, sort_keys=True)\n"
        "    fh.write(\"\\n\")\n"
        "    fh.flush()\n"
        "    os.fsync(fh.fileno())\n"
        "os.chmod(tmp, os.stat(path).st_mode & 0o7777)\n"
        "os.replace(tmp, path)\n"
        f"' {quote(path)}\n"
    )


def _summary(site: str, steps: list[str], missing: list[str], keys: dict[str, Any], *, check: bool) -> TaskResult:
    parts = list(steps)
    if missing:
        parts.append("install " + ", ".join(missing))
    if keys:
        parts.append("set " + ", ".join(sorted(keys)))
    prefix = "would " if check else ""
    return TaskResult.changed(f"{site}: {prefix}{'; '.join(parts)}", installed_apps=missing, config_keys=sorted(keys))
