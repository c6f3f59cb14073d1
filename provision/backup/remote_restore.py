"""The restore half of the host-side helper (sent after ``remote_helper.py``, as one program).

``import``: a dump into a NEW database, checked against the manifest's row counts; then, by mode,
``scratch`` (dropped again: a restore test), ``switch`` (files swapped in, the site's config
switched to it, the old database dropped only then, or kept) or ``new-site`` (a site beside the
old one). Any failure undoes what was done and drops the new database: the live one is never
touched before the switch is proven.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from typing import Any

# local-only: begin (on the host these names come from remote_helper.py, sent before this file)
from .remote_helper import (
    DUMP_DONE,
    Failed,
    ident,
    literal,
    mariadb,
    read_json,
    root_option_file,
    row_counts,
    site_db,
    site_option_file,
)

# local-only: end

def import_dump(defaults: str, dump: str, database: str) -> None:
    """Stream a .sql.gz into ``database``; a truncated or unfinished dump is an error."""
    client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    proc = subprocess.Popen([client, f"--defaults-extra-file={defaults}", database], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    tail = b""
    problem = ""
    try:
        with gzip.open(dump, "rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                proc.stdin.write(block)
                tail = (tail + block)[-4096:]
    except (OSError, EOFError) as exc:
        problem = f"the dump is damaged ({exc})"
    except BrokenPipeError:
        pass
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise Failed(f"import into {database} failed: {err}")
    if problem:
        raise Failed(problem)
    if DUMP_DONE not in tail:
        raise Failed("the dump has no completion line: it was cut short")


def compare_counts(got: dict[str, int], expected: dict[str, list[int]]) -> list[str]:
    problems = []
    for table, (low, high) in sorted(expected.items()):
        if table not in got:
            problems.append(f"table {table} is missing")
        elif not low <= got[table] <= high:
            want = str(low) if low == high else f"{low}-{high}"
            problems.append(f"table {table} has {got[table]} rows, the manifest says {want}")
    problems += [f"table {t} is not in the manifest" for t in sorted(set(got) - set(expected))]
    return problems


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".site_config-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def swap_files(site_dir: str, tars: list[str], stage: str) -> list[tuple[str, str]]:
    """Unpack the file archives beside the site, then swap each files folder in; returns (live, old) pairs."""
    unpacked = os.path.join(stage, "new")
    os.makedirs(unpacked)
    for tar in tars:
        flags = "-xzf" if tar.endswith(".tgz") else "-xf"
        proc = subprocess.run(["tar", flags, tar, "--strip-components=2", "-C", unpacked], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise Failed(f"cannot unpack {os.path.basename(tar)}: {proc.stderr.strip()}")
    swapped = []
    for kind in ("public", "private"):
        new = os.path.join(unpacked, kind, "files")
        if not os.path.isdir(new):
            continue
        live = os.path.join(site_dir, kind, "files")
        if os.path.islink(live) or os.path.ismount(live):
            swapped.append(swap_inside(os.path.realpath(live), new, os.path.basename(stage)))
            continue
        old = os.path.join(stage, f"old-{kind}-files")
        os.makedirs(os.path.dirname(live), exist_ok=True)
        if os.path.exists(live):
            os.rename(live, old)
        os.rename(new, live)
        swapped.append((live, old))
    return swapped


def swap_inside(live: str, new: str, tag: str) -> tuple[str, str]:
    """Swap the contents of a files folder that cannot be renamed (a multi-server bench's bind mount
    of the shared store): the old entries go into a work folder inside it, the new ones come up.
    Returns (live, work folder); the work folder goes once the restore is proven."""
    work = os.path.join(live, f".provision-restore-{tag}")
    os.makedirs(os.path.join(work, "old"))
    shutil.move(new, os.path.join(work, "new"))  # onto the share first: the swap is then renames only
    for name in os.listdir(live):
        if name != os.path.basename(work):
            os.rename(os.path.join(live, name), os.path.join(work, "old", name))
    for name in os.listdir(os.path.join(work, "new")):
        os.rename(os.path.join(work, "new", name), os.path.join(live, name))
    return live, work


def undo_files(swapped: list[tuple[str, str]]) -> None:
    for live, old in reversed(swapped):
        if os.path.basename(old).startswith(".provision-restore-") and os.path.dirname(old) == live:
            for name in os.listdir(live):
                if name != os.path.basename(old):
                    path = os.path.join(live, name)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.remove(path)
            for name in os.listdir(os.path.join(old, "old")):
                os.rename(os.path.join(old, "old", name), os.path.join(live, name))
            shutil.rmtree(old, ignore_errors=True)
            continue
        shutil.rmtree(live, ignore_errors=True)
        if os.path.exists(old):
            os.rename(old, live)


def drop_work(swapped: list[tuple[str, str]]) -> None:
    """The old files of a swap made inside a mount, once the restore is proven."""
    for live, old in swapped:
        if os.path.dirname(old) == live:
            shutil.rmtree(old, ignore_errors=True)


def new_db_name(req: dict[str, Any], current: str) -> str:
    """A database name of its own for this restore: ``<base>_r<stamp>`` (``_v`` for a scratch check)."""
    if req["mode"] == "new-site":
        current = "_" + hashlib.sha1(req["to_site"].encode()).hexdigest()[:16]
    base = re.sub(r"_[rv]\d{12}$", "", current or "_provision")
    return f"{base}_{'v' if req['mode'] == 'scratch' else 'r'}{req['suffix']}"[:64]


def do_import(req: dict[str, Any]) -> dict[str, Any]:
    mode = req["mode"]
    site_dir = os.path.join(req["sites_dir"], req["site"])
    config_path = os.path.join(site_dir, "site_config.json")
    if mode == "switch" and not os.path.exists(config_path):
        raise Failed(f"site {req['site']} does not exist on this host")
    config = read_json(config_path) if os.path.exists(config_path) else {}
    db = site_db(req, config)
    new_db = new_db_name(req, db["name"])
    steps: list[str] = []
    with root_option_file(req, db) as root:
        mariadb(root, f"CREATE DATABASE {ident(new_db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        steps.append(f"created database {new_db}")
        try:
            import_dump(root, req["dump"], new_db)
            problems = compare_counts(row_counts(root, new_db), req["tables"])
            if problems:
                raise Failed("the restored copy does not match the manifest: " + "; ".join(problems))
            steps.append("imported and checked every table's row count")
            if mode == "scratch":
                return {"ok": True, "steps": steps}
            if mode == "new-site":
                return {"ok": True, "steps": steps, **new_site(req, root, new_db, db)}
            return {"ok": True, "steps": steps, **switch_site(req, root, site_dir, config, db, new_db)}
        except BaseException:
            with contextlib.suppress(Failed):
                mariadb(root, f"DROP DATABASE IF EXISTS {ident(new_db)}")
            raise
        finally:
            if mode == "scratch":
                mariadb(root, f"DROP DATABASE IF EXISTS {ident(new_db)}")


def user_hosts(root: str, user: str) -> list[str]:
    hosts = [r[0] for r in mariadb(root, f"SELECT Host FROM mysql.user WHERE User={literal(user)}")]
    if not hosts:
        raise Failed(f"the site's database user {user} does not exist")
    return hosts


def give_access(root: str, config: dict[str, Any], db: dict[str, Any], database: str) -> str | None:
    """Let the site log into ``database``; the user created for it, if any.

    Frappe logs in as ``db_user`` when the config sets it, else as a user named like the database.
    With ``db_user`` set, that user is granted the new database. Otherwise a user named like the new
    database is made, with the site's password, so every Frappe version finds it.
    """
    hosts = user_hosts(root, db["user"])
    if config.get("db_user"):
        for host in hosts:
            mariadb(root, f"GRANT ALL PRIVILEGES ON {ident(database)}.* TO {literal(db['user'])}@{literal(host)}")
        return None
    for host in hosts:
        account = f"{literal(database)}@{literal(host)}"
        mariadb(root, f"CREATE USER {account} IDENTIFIED BY {literal(db['password'])};\n"
                      f"GRANT ALL PRIVILEGES ON {ident(database)}.* TO {account}")
    return database


def drop_user(root: str, user: str) -> None:
    for host in [r[0] for r in mariadb(root, f"SELECT Host FROM mysql.user WHERE User={literal(user)}")]:
        mariadb(root, f"DROP USER IF EXISTS {literal(user)}@{literal(host)}")


def run_bench(req: dict[str, Any], site: str, *args: str) -> None:
    proc = subprocess.run([req["bench_cli"], "--site", site, *args], cwd=req["bench_path"], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        raise Failed(f"bench {' '.join(args)} exited {proc.returncode}: " + " | ".join(tail))


def switch_site(req: dict[str, Any], root: str, site_dir: str, config: dict[str, Any], db: dict[str, Any],
                new_db: str) -> dict[str, Any]:
    """Files swapped in, then the site's config switched to the new database; undone if anything fails."""
    new_user = give_access(root, config, db, new_db)
    stage = tempfile.mkdtemp(prefix=".provision-restore-", dir=site_dir)
    config_path = os.path.join(site_dir, "site_config.json")
    shutil.copy2(config_path, os.path.join(stage, "site_config.json.before"))
    swapped: list[tuple[str, str]] = []
    steps = []
    try:
        swapped = swap_files(site_dir, req["tars"], stage)
        if swapped:
            steps.append("swapped in the restored files")
        write_json_atomic(config_path, {**config, "db_name": new_db})
        steps.append(f"switched the site from {db['name']} to {new_db}")
        if req.get("migrate"):
            run_bench(req, req["site"], "migrate")
            steps.append("migrated (the apps differ from the backup's)")
        with site_option_file({**db, "name": new_db, "user": new_user or db["user"]}) as defaults:
            problems = compare_counts(row_counts(defaults, new_db), req["tables"]) if not req.get("migrate") else []
        if problems:
            raise Failed("after the switch: " + "; ".join(problems))
    except BaseException:
        write_json_atomic(config_path, config)
        undo_files(swapped)
        shutil.rmtree(stage, ignore_errors=True)
        if new_user:
            with contextlib.suppress(Failed):
                drop_user(root, new_user)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    drop_work(swapped)
    if req.get("keep_old_db"):
        steps.append(f"kept the old database {db['name']}")
    else:
        mariadb(root, f"DROP DATABASE IF EXISTS {ident(db['name'])}")
        if new_user:  # the old database's own user goes with it
            drop_user(root, db["user"])
        steps.append(f"dropped the old database {db['name']}")
    return {"steps_after": steps, "db_name": new_db, "old_db": db["name"], "old_user": db["user"],
            "new_user": bool(new_user)}


def do_drop(req: dict[str, Any]) -> dict[str, Any]:
    """The database a restore replaced (and its own user when the restore made a new one), once every
    app host of a multi-server bench uses the restored one."""
    config = read_json(os.path.join(req["sites_dir"], req["site"], "site_config.json"))
    db = site_db(req, config)
    if db["name"] == req["database"]:
        raise Failed(f"{req['database']} is the site's live database: not dropped")
    with root_option_file(req, db) as root:
        mariadb(root, f"DROP DATABASE IF EXISTS {ident(req['database'])}")
        if req.get("user"):
            drop_user(root, req["user"])
    return {"ok": True, "steps_after": [f"dropped the old database {req['database']}"]}


def new_site(req: dict[str, Any], root: str, new_db: str, db: dict[str, Any]) -> dict[str, Any]:
    """A new site folder beside the old one, on the restored database, with a user of its own."""
    target = os.path.join(req["sites_dir"], req["to_site"])
    if os.path.exists(target):
        raise Failed(f"site {req['to_site']} already exists")
    password = secrets.token_hex(16)
    user = new_db  # Frappe logs in as a user named like the database (db_user is not honoured everywhere)
    # a remote database: the addresses the old site's user logs in from (a multi-server bench's app
    # hosts), never '%'
    if not db["host"] or db["host"] == "localhost":
        hosts = ["localhost"]
    elif db["host"] in ("127.0.0.1", "::1"):
        hosts = ["%"]  # the bench's own server over TCP, as before
    else:
        hosts = user_hosts(root, db["user"]) if db["user"] else []
    if not hosts:
        raise Failed(f"the database is on {db['host']}: the new site's user needs the addresses of the old site's "
                     "user, and there is no old site to take them from")
    try:
        for host in hosts:
            mariadb(root, f"CREATE USER {literal(user)}@{literal(host)} IDENTIFIED BY {literal(password)}")
            mariadb(root, f"GRANT ALL PRIVILEGES ON {ident(new_db)}.* TO {literal(user)}@{literal(host)}")
        base = read_json(req["site_config"]) if req.get("site_config") else {}
        base.pop("db_user", None)
        config = {**base, "db_name": new_db, "db_password": password, "db_type": "mariadb"}
        for folder in ("public/files", "private/files", "private/backups", "locks", "logs"):
            os.makedirs(os.path.join(target, folder), exist_ok=True)
        write_json_atomic(os.path.join(target, "site_config.json"), config)
        stage = tempfile.mkdtemp(prefix=".provision-restore-", dir=target)
        swap_files(target, req["tars"], stage)
        shutil.rmtree(stage, ignore_errors=True)
    except BaseException:  # nothing half made stays behind
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(Failed):
            drop_user(root, user)
        raise
    link = os.path.join(req["bench_path"], "sites", req["to_site"])
    if os.path.realpath(os.path.dirname(link)) != os.path.realpath(req["sites_dir"]) and not os.path.lexists(link):
        os.symlink(target, link)
    return {"steps_after": [f"created site {req['to_site']} on {new_db}"], "db_name": new_db}


