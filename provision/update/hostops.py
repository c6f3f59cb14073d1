"""The shell (and host-side python3) scripts of each update step, and the parsing of their output.

Every script travels over stdin (connection.py); arguments that are data go as JSON on the
script's own stdin or as quoted words, never secrets: MariaDB is reached as root through its unix
socket on the host, so no password is needed anywhere in the update.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from shlex import quote
from typing import Any

from .plan import HostPlan


# The last JSON object a host-side script prints is its answer.
def last_json(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _python(source: str, *words: str) -> str:
    """A host-side python3 program (its text is a quoted here-doc, so no shell expansion in it)."""
    args = " ".join(quote(w) for w in words)
    return f"python3 - {args} <<'PV_PY'\n{source.strip()}\nPV_PY\n"


# -- survey: sites, their apps, and what changed per app --------------------------------------------

_SURVEY = r'''
import json, os, subprocess, sys, tempfile
params = json.loads(sys.argv[1])
live, target, shared = params["live"], params["target"], params["shared"]

def git(*args, cwd=None):
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    return out.stdout.strip() if out.returncode == 0 else None

def commit(bench, app):
    path = os.path.join(bench, "apps", app)
    return git("-C", path, "rev-parse", "HEAD") if os.path.isdir(os.path.join(path, ".git")) else None

sites = sorted(d for d in os.listdir(os.path.join(shared, "sites"))
               if os.path.isfile(os.path.join(shared, "sites", d, "site_config.json")))
installed = {}
if sites:
    out = subprocess.run([params["bench_cli"], "--site", "all", "list-apps", "--format", "json"], cwd=live,
                         capture_output=True, text=True, timeout=600)
    # frappe prints the JSON indented, maybe after other lines: the first "{" line that starts a
    # document which parses to the end
    text = out.stdout
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in starts:
        try:
            installed = json.loads(text[start:])
            break
        except ValueError:
            pass
live_apps = [a for a in open(os.path.join(live, "sites", "apps.txt")).read().split() if a] \
    if os.path.exists(os.path.join(live, "sites", "apps.txt")) else []
changes = {}
for app in dict.fromkeys(live_apps + params["apps"]):
    old = commit(live, app)
    new = commit(target, app) if params["target_exists"] else None
    tmp = tempfile.mkdtemp(prefix="provision-diff-")
    try:
        git("init", "-q", tmp)
        # the two repos' objects, borrowed (nothing copied): a shallow clone has both trees
        alternates = [os.path.join(b, "apps", app, ".git", "objects") for b in (live, target)]
        with open(os.path.join(tmp, ".git", "objects", "info", "alternates"), "w") as fh:
            fh.write("\n".join(p for p in alternates if os.path.isdir(p)) + "\n")
        if not params["target_exists"] and app in params["repos"]:
            if git("-C", tmp, "fetch", "-q", "--depth", "1", params["repos"][app], params["refs"][app]) is not None:
                new = git("-C", tmp, "rev-parse", "FETCH_HEAD")
        paths = None
        if old and new:
            diff = git("-C", tmp, "diff", "--name-only", old, new)
            paths = diff.splitlines() if diff is not None else None
    finally:
        subprocess.run(["rm", "-rf", tmp])
    changes[app] = {"live": old, "target": new, "paths": paths}
print(json.dumps({"sites": sites, "installed": {s: installed.get(s) for s in sites}, "changes": changes}))
'''


def survey_script(plan: HostPlan, *, target_exists: bool) -> str:
    params = {
        "live": plan.live_path, "target": plan.release_path, "shared": plan.shared_path, "bench_cli": plan.bench_cli,
        "apps": list(plan.apps), "refs": dict(plan.app_refs), "repos": dict(plan.app_repos),
        "target_exists": target_exists,
    }
    return _python(_SURVEY, json.dumps(params))


# -- maintenance mode: site_config.json edited atomically (works even when the new code cannot start) --

_SITE_CONFIG = r'''
import json, os, sys
path, changes = sys.argv[1], json.loads(sys.argv[2])
with open(path) as fh:
    config = json.load(fh)
before = {key: config.get(key) for key in changes}
for key, value in changes.items():
    if value is None:
        config.pop(key, None)
    else:
        config[key] = value
tmp = path + ".provision-tmp"
with open(tmp, "w") as fh:
    json.dump(config, fh, indent=1, sort_keys=True)
    fh.write("\n")
    fh.flush()
    os.fsync(fh.fileno())
os.chmod(tmp, os.stat(path).st_mode & 0o7777)
os.replace(tmp, path)
print(json.dumps({"before": before, "maintenance_mode": config.get("maintenance_mode", 0)}))
'''


def site_config_script(plan: HostPlan, site: str, changes: Mapping[str, Any]) -> str:
    path = f"{plan.shared_path}/sites/{site}/site_config.json"
    return _python(_SITE_CONFIG, path, json.dumps(dict(changes)))


def maintenance_script(plan: HostPlan, site: str, on: bool, *, close_reads: bool = False) -> str:
    # pause_scheduler too, as bench update does; both cleared again, never left behind
    changes: dict[str, Any] = {"maintenance_mode": 1 if on else 0, "pause_scheduler": 1 if on else None}
    if close_reads:
        changes["allow_reads_during_maintenance"] = None
    return site_config_script(plan, site, changes)


def open_reads_script(plan: HostPlan, site: str) -> str:
    """Let GET requests through maintenance mode, so the health gate sees the site's real pages
    before maintenance ends; writes stay refused. (Frappe's own ``allow_reads_during_maintenance``.)"""
    return site_config_script(plan, site, {"allow_reads_during_maintenance": 1})


def drain_script(plan: HostPlan, site: str, timeout: float) -> str:
    """Wait until the site has no job queued or running (``ready-for-migration``), at most ``timeout`` s."""
    return (
        f"cd {quote(plan.live_path)}\n"
        f"end=$(( $(date +%s) + {int(timeout)} ))\n"
        "while :; do\n"
        f"  out=$({quote(plan.bench_cli)} --site {quote(site)} ready-for-migration 2>&1) "
        "&& { echo \"$out\"; exit 0; }\n"
        "  if [ \"$(date +%s)\" -ge \"$end\" ]; then echo \"$out\" >&2; "
        f"echo 'jobs still queued or running after {int(timeout)}s' >&2; exit 1; fi\n"
        "  sleep 1\n"
        "done\n"
    )


# -- backup: bench's own backup into a fresh directory, checksummed, plus every table's checksum ----

_TABLES = r'''
import json, subprocess, sys

def sql(query, database=None):
    args = ["mariadb", "-N", "-B"] + ([database] if database else [])
    out = subprocess.run(args, input=query, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit("mariadb: " + out.stderr.strip())
    return [line.split("\t") for line in out.stdout.splitlines() if line]

def ident(name):
    return "`" + name.replace("`", "``") + "`"

def table_sums(db):
    names = [r[0] for r in sql("SELECT table_name FROM information_schema.tables WHERE table_schema = '%s' "
                                "AND table_type = 'BASE TABLE' ORDER BY table_name" % db.replace("'", "''"))]
    sums = {}
    for name in names:
        checksum = sql("CHECKSUM TABLE %s.%s EXTENDED" % (ident(db), ident(name)))[0][1]
        rows = sql("SELECT COUNT(*) FROM %s.%s" % (ident(db), ident(name)))[0][0]
        sums[name] = [int(rows), checksum]
    return sums
'''

_BACKUP_SUMS = _TABLES + r'''
import hashlib, os
directory, site_config, when = sys.argv[1], sys.argv[2], sys.argv[3]
db = json.load(open(site_config))["db_name"]
files = {}
for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if os.path.isfile(path) and name != "checksums.json":
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        files[name] = digest.hexdigest()
result = {"dir": directory, "db_name": db, "files": files, "tables": table_sums(db), "when": when}
if when == "after":
    before = json.load(open(os.path.join(directory, "checksums.json")))["tables"]
    if before != result["tables"]:
        changed = sorted(t for t in set(before) | set(result["tables"]) if before.get(t) != result["tables"].get(t))
        raise SystemExit("the database changed while it was backed up (tables: %s): not a usable backup"
                         % ", ".join(changed[:10]))
    dumps = [n for n in files if n.endswith((".sql.gz", ".sql"))]
    if len(dumps) != 1:
        raise SystemExit("expected one database dump in %s, found %s" % (directory, dumps or "none"))
    result["dump"] = os.path.join(directory, dumps[0])
with open(os.path.join(directory, "checksums.json.tmp"), "w") as fh:
    json.dump(result, fh, indent=1, sort_keys=True)
os.replace(os.path.join(directory, "checksums.json.tmp"), os.path.join(directory, "checksums.json"))
print(json.dumps(result))
'''


def backup_dir(plan: HostPlan, run_id: str, site: str) -> str:
    return f"{plan.shared_path}/update-backups/{run_id}/{site}"


def backup_sums_script(plan: HostPlan, directory: str, site: str, when: str) -> str:
    """(root) sha256 of the backup's files and every table's row count and checksum; ``after`` also
    proves the database did not change while it was dumped."""
    return _python(_BACKUP_SUMS, directory, f"{plan.shared_path}/sites/{site}/site_config.json", when)


def backup_dir_script(directory: str) -> str:
    """(frappe user) the backup's directory, closed to others: it holds the site config's passwords."""
    return f"umask 077\nmkdir -p {quote(directory)}\nchmod 0700 {quote(directory)}\n"


def backup_script(plan: HostPlan, directory: str, site: str, *, with_files: bool) -> str:
    """(frappe user) bench's own backup of one site into ``directory``."""
    files = " --with-files" if with_files else ""
    return (
        "set -e\n"
        f"cd {quote(plan.live_path)}\n"
        f"{quote(plan.bench_cli)} --site {quote(site)} backup{files} --backup-path {quote(directory)}\n"
    )


# -- switch: every site into the new release, then one rename of the live link ---------------------


def switch_script(plan: HostPlan, target_path: str) -> str:
    """(frappe user) link every shared site into ``target_path``, then point the live link at it by rename."""
    link = plan.bench_path
    tmp = f"{link}.provision-switch"
    return (
        "set -e\n"
        f"[ -d {quote(target_path)}/sites ] || {{ echo 'release {target_path} is missing' >&2; exit 1; }}\n"
        f"for dir in {quote(plan.shared_path)}/sites/*/; do\n"
        '  dir=${dir%/}; [ -f "$dir/site_config.json" ] || continue\n'
        f'  ln -sfn "$dir" {quote(target_path)}/sites/"$(basename "$dir")"\n'
        "done\n"
        f"rm -f -- {quote(tmp)}\n"
        f"ln -s -- {quote(target_path)} {quote(tmp)}\n"
        f"mv -T -- {quote(tmp)} {quote(link)}\n"
        f"test \"$(readlink {quote(link)})\" = {quote(target_path)}\n"
        f"echo switched {quote(target_path)}\n"
    )


def migrate_script(plan: HostPlan, site: str) -> str:
    """(frappe user) bench migrate of one site, on the live (new) release."""
    return f"cd {quote(plan.bench_path)}\n{quote(plan.bench_cli)} --site {quote(site)} migrate\n"


# -- restore: into a NEW database, proven equal to the backup, then the site points at it ------------

# A new database from a dump, proven, with the site's login: shared by the single-host restore (below)
# and the db host's (dbhost.py). Without db_user in the site's config, Frappe (and bench backup) log in
# as a user named like the database, so one is made for the new database, from the same addresses, with
# the same password (its hash: the password itself never leaves the hosts that have it).
_RESTORE_PROVEN = _TABLES + r'''
import gzip, re, shutil, time

def restore_proven(old_db, user, own_user, dump, expected):
    # -> (new_db, its table sums, the login's hosts, the login); on any failure only what it made is dropped
    new_db = old_db[:40] + "_rb" + time.strftime("%Y%m%d%H%M%S")
    hosts = [r[0] for r in sql("SELECT Host FROM mysql.user WHERE User = '%s'" % user.replace("'", "''"))]
    if not hosts:
        raise SystemExit("no MariaDB account %s for the site" % user)
    login = new_db if own_user else user
    made = []
    sql("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % ident(new_db))
    try:
        opener = gzip.open if dump.endswith(".gz") else open
        with opener(dump, "rb") as src:
            proc = subprocess.Popen(["mariadb", new_db], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            shutil.copyfileobj(src, proc.stdin)
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            if proc.wait() != 0:
                raise SystemExit("importing %s failed: %s" % (dump, err.strip()[-500:]))
        restored = table_sums(new_db)
        if restored != expected:
            changed = sorted(t for t in set(expected) | set(restored) if expected.get(t) != restored.get(t))
            raise SystemExit("the restored copy differs from the backup's checksums (tables: %s)"
                             % ", ".join(changed[:10]))
        # the site's login, from every address it had, never '%' added
        for host in hosts:
            account = "'%s'@'%s'" % (login.replace("'", "''"), host.replace("'", "''"))
            if own_user:
                create = sql("SHOW CREATE USER '%s'@'%s'" % (user.replace("'", "''"), host.replace("'", "''")))[0][0]
                try:
                    sql(re.sub(r"^CREATE USER `(?:[^`]|``)*`@", lambda _: "CREATE USER %s@" % ident(login), create,
                               count=1))
                except SystemExit:  # mariadb's message quotes the statement, and with it the password hash
                    raise SystemExit("creating the login %s@%s like %s's failed" % (login, host, user)) from None
                made.append(host)
            sql("GRANT ALL PRIVILEGES ON %s.* TO %s" % (ident(new_db), account))
    except BaseException:
        # only the new, unproven copy (and its new login) is dropped; the site's own database was never touched
        sql("DROP DATABASE IF EXISTS %s" % ident(new_db))
        for host in made:
            sql("DROP USER IF EXISTS '%s'@'%s'" % (login.replace("'", "''"), host.replace("'", "''")))
        raise
    return new_db, restored, hosts, login
'''

_RESTORE = _RESTORE_PROVEN + r'''
import os
site_config, dump, expected_path = sys.argv[1], sys.argv[2], sys.argv[3]
expected = json.load(open(expected_path))["tables"]
config = json.load(open(site_config))
old_db = config["db_name"]
own_user = not config.get("db_user")
new_db, restored, _, login = restore_proven(old_db, config.get("db_user") or old_db, own_user, dump, expected)
config["db_name"] = new_db
if own_user:
    config.pop("db_user", None)
else:
    config["db_user"] = login
tmp = site_config + ".provision-tmp"
with open(tmp, "w") as fh:
    json.dump(config, fh, indent=1, sort_keys=True)
    fh.write("\n")
    fh.flush()
    os.fsync(fh.fileno())
os.chmod(tmp, os.stat(site_config).st_mode & 0o7777)
shutil.chown(tmp, os.stat(site_config).st_uid, os.stat(site_config).st_gid)
os.replace(tmp, site_config)
print(json.dumps({"old_db": old_db, "new_db": new_db, "tables": len(restored)}))
'''


def restore_script(plan: HostPlan, site: str, backup: Mapping[str, Any]) -> str:
    """(root) restore the site's pre-migrate backup into a new database and switch the site to it."""
    directory = str(backup["dir"])
    return _python(_RESTORE, f"{plan.shared_path}/sites/{site}/site_config.json", str(backup["dump"]),
                   f"{directory}/checksums.json")


def table_sums_script(plan: HostPlan, site: str) -> str:
    """(root) every table's row count and checksum of a site's current database (for people and tests)."""
    source = _TABLES + (
        "\nconfig = json.load(open(sys.argv[1]))\n"
        "print(json.dumps({'db_name': config['db_name'], 'tables': table_sums(config['db_name'])}))\n"
    )
    return _python(source, f"{plan.shared_path}/sites/{site}/site_config.json")


def status_script(plan: HostPlan, sites: Sequence[str]) -> str:
    """(root) each site's maintenance flag, for --check and the report."""
    if not sites:
        return "echo '{}'\n"
    return _python(
        "import json, sys\n"
        "print(json.dumps({p.split('/')[-2]: json.load(open(p)).get('maintenance_mode', 0) for p in sys.argv[1:]}))",
        *(f"{plan.shared_path}/sites/{s}/site_config.json" for s in sites))
