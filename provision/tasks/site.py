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

from .base import Arg, CommandResult, Module, Plan, PlanContext, TaskResult
from .facts import Probe
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
    db_host: the MariaDB host for a new site (``bench new-site --db-host``; frappe writes it to site_config)
    db_port: its port (``--db-port``)
    site_config: (secret) the JSON text of site_config.json, to join a site another host created: the
        site's directory is made here with exactly this config (sent on stdin), and nothing else is
        done (its apps live in the shared database). Several app servers use it for every app host
        but the one that created the site.
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
        "db_host": Arg(str),
        "db_port": Arg(int),
        "site_config": Arg(str, secret=True),
    }

    def facts(self, args: dict[str, Any]) -> Probe[tuple[dict[str, str], str, str]]:
        return Probe(self._probe(args), _split)

    def _probe(self, args: dict[str, Any]) -> str:
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

    def plan(self, args: dict[str, Any], facts: tuple[dict[str, str], str, str], ctx: PlanContext) -> Plan:
        site = args["name"]
        flags, config, apps_out = facts
        shared = f"{args['sites_dir']}/{site}"
        link = f"{args['bench']}/sites/{site}"
        wanted = _wanted_apps(args["apps"])
        if flags.get("link") == "not-a-link":
            return Plan(error=f"{link} exists and is not a link to {shared}\n"
                              "fix: move that site directory to the shared sites directory, then re-run")
        if args.get("site_config"):
            return self._join(args, flags, config, shared, link)
        if flags.get("shared") != "yes":
            return self._create(args, wanted, shared, link)
        steps: list[str] = []
        if flags.get("link") != shared:
            steps.append("linked into this release")
        installed = _installed_apps(apps_out, site) if flags.get("link") == shared else None
        if installed is None and flags.get("link") == shared:
            return Plan(error=f"cannot list the apps of {site}:\n{apps_out.strip()[-800:]}")
        missing = [app for app in wanted if installed is not None and app not in installed]
        current = _load_json(config)
        changed_keys = {k: v for k, v in args["config"].items() if current.get(k) != v}
        would_install = missing if installed is not None else wanted
        if not (steps or would_install or changed_keys):
            return Plan(f"{site}: apps and config as declared", data={"apps": installed or []})
        bench = f"cd {quote(args['bench'])} && {quote(args['bench_cli'])} --site {quote(site)}"

        def finish(missing: list[str], installed: list[str]) -> TaskResult:
            if not (steps or missing or changed_keys):
                return TaskResult.ok(f"{site}: apps and config as declared", apps=installed)
            return _summary(site, steps, missing, changed_keys, check=False)

        def set_keys(missing: list[str], installed: list[str]) -> Plan | TaskResult:
            if not changed_keys:
                return finish(missing, installed)
            return Plan("set config keys", script=_set_config_script(shared), stdin=json.dumps(changed_keys).encode(),
                        then=lambda result, _ctx: finish(missing, installed) if result.ok else
                        TaskResult.from_command(f"setting config keys of {site}", result))

        def install(missing: list[str], installed: list[str]) -> Plan | TaskResult:
            if not missing:
                return set_keys(missing, installed)
            return Plan("install apps", script=f"{bench} install-app {' '.join(quote(a) for a in missing)}",
                        then=lambda result, _ctx: set_keys(missing, installed) if result.ok else
                        TaskResult.from_command(f"bench --site {site} install-app {' '.join(missing)}", result))

        def after_link(result: CommandResult, reader: PlanContext) -> Plan | TaskResult:
            if not result.ok:
                return TaskResult.from_command(f"linking {site}", result)
            listed = installed
            if listed is None:
                listed = _installed_apps(reader.read(Probe(f"{bench} list-apps --format json", str)), site) or []
            return install([app for app in wanted if app not in listed], listed)

        summary = _summary(site, steps, would_install, changed_keys, check=True)
        if steps:
            first: Plan | TaskResult = Plan("link", script=f"ln -sfn {quote(shared)} {quote(link)}\n", then=after_link)
        else:
            first = install(missing, installed or [])
        assert isinstance(first, Plan)  # something is to be done: a step to run
        first.check_msg, first.data = summary.msg, summary.data
        return first

    def _join(self, args: dict[str, Any], flags: dict[str, str], config: str, shared: str, link: str) -> Plan:
        """This host serves a site another host created: the same site_config.json, the site's folders, the link."""
        site = args["name"]
        try:
            wanted = json.loads(args["site_config"])
        except json.JSONDecodeError:
            wanted = None
        if not isinstance(wanted, dict) or not wanted.get("db_name"):
            return Plan(error=f"site {site}: site_config is not the JSON of a site_config.json (with db_name)")
        steps = []
        if flags.get("shared") != "yes" or _load_json(config) != wanted:
            steps.append("site_config.json from the host that created it" if flags.get("shared") == "yes"
                         else "joined (site_config.json from the host that created it)")
        if flags.get("link") != shared:
            steps.append("linked into this release")
        if not steps:
            return Plan(f"{site}: site config as on the host that created it")
        dirs = " ".join(quote(f"{shared}/{d}") for d in ("public/files", "private/files", "private/backups",
                                                         "locks", "logs"))
        script = (
            "set -e\n"
            f"mkdir -p {dirs}\n"
            f"umask 077\n"
            f"cat > {quote(shared + '/site_config.json.provision-tmp')}\n"
            f"mv -f {quote(shared + '/site_config.json.provision-tmp')} {quote(shared + '/site_config.json')}\n"
            f"ln -sfn {quote(shared)} {quote(link)}\n"
        )
        message = f"{site}: {'; '.join(steps)}"
        return Plan(message, script=script, stdin=(json.dumps(wanted, indent=1, sort_keys=True) + "\n").encode(),
                    check_msg=f"{site}: would {'; '.join(steps)}")

    def _create(self, args: dict[str, Any], wanted: list[str], shared: str, link: str) -> Plan:
        site = args["name"]
        if not args.get("admin_password") or not args.get("db_root_password"):
            return Plan(error=f"site {site} does not exist and needs admin_password and db_root_password "
                              "to be created\nfix: set them (as secrets) in the inventory's sites list")
        words = [args["bench_cli"], "new-site", site, "--db-root-username", args["db_root_username"]]
        if args.get("db_name"):
            words += ["--db-name", args["db_name"]]
        if args.get("db_host"):
            words += ["--db-host", args["db_host"]]
        if args.get("db_port"):
            words += ["--db-port", str(args["db_port"])]
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
        created = TaskResult.changed(f"created site {site} with apps {', '.join(wanted)}", apps=wanted)

        def after_create(result: CommandResult, _ctx: PlanContext) -> Plan | TaskResult:
            if not result.ok:
                return TaskResult.from_command(f"bench new-site {site}", result)
            if not args["config"]:
                return created
            return Plan("set config keys", script=_set_config_script(shared),
                        stdin=json.dumps(args["config"]).encode(),
                        then=lambda result, _ctx: created if result.ok else
                        TaskResult.from_command(f"setting config keys of {site}", result))

        return Plan(f"created site {site}", script=script, stdin=answers.encode(), timeout=1800,
                    check_msg=f"would create site {site} with apps {', '.join(wanted)}", then=after_create)


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
