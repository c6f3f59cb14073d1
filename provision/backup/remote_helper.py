"""The program ``provision backup`` runs on a host (system python3, stdlib only), as the frappe user.

It is sent as the text of ``python3 -c`` (no secret in it) and reads one JSON request on stdin,
where the secrets travel (the db root password). It prints one JSON object on stdout. MariaDB
credentials go to the clients in mode-600 option files, never on a command line.

Actions:
    sites     the site folders of the bench (those with a site_config.json)
    backup    ``bench --site S backup`` into a fresh run directory; sha256 and size of each file,
              each table's row count (before and after the dump), the apps' versions and commits
    apps      the bench's apps with their versions and commits
    import    (remote_restore.py) a dump into a NEW database, checked, then used by mode

The program sent is this file, then ``remote_restore.py`` without its local-only imports, then a
call of ``main()`` (see ``remote.call_helper``): one program, two modules of one job each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

DUMP_DONE = b"-- Dump completed"


class Failed(Exception):
    """A step failed; the message is shown to the user."""


def _quote_option(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def option_file(user: str, password: str, host: str | None, port: Any, socket: str | None) -> Iterator[str]:
    """A [client] option file, mode 600, removed on exit."""
    fd, path = tempfile.mkstemp(prefix="provision-my-", suffix=".cnf")
    try:
        lines = ["[client]", f"user={_quote_option(user)}", f"password={_quote_option(password)}"]
        if socket:
            lines.append(f"socket={_quote_option(socket)}")
        else:
            lines.append(f"host={_quote_option(str(host or 'localhost'))}")
            if port:
                lines.append(f"port={int(port)}")
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def mariadb(defaults: str, sql: str, database: str | None = None) -> list[list[str]]:
    """Run SQL with the mariadb client; rows as lists of strings."""
    client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    argv = [client, f"--defaults-extra-file={defaults}", "--batch", "--skip-column-names"]
    if database:
        argv.append(database)
    proc = subprocess.run(argv, input=sql.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise Failed(f"mariadb: {proc.stderr.decode(errors='replace').strip()}")
    return [line.split("\t") for line in proc.stdout.decode().splitlines() if line]


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def row_counts(defaults: str, database: str) -> dict[str, int]:
    """Exact row count of every base table (information_schema's counts are estimates)."""
    tables = [r[0] for r in mariadb(defaults, f"SELECT table_name FROM information_schema.tables WHERE "
                                              f"table_schema={literal(database)} AND table_type='BASE TABLE'")]
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT {literal(t)}, COUNT(*) FROM {ident(t)}" for t in sorted(tables))
    return {name: int(count) for name, count in mariadb(defaults, query, database)}


def read_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise Failed(f"{path} is not a JSON object")
    return data


def site_db(req: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """How the site connects: its own config over the bench's common config."""
    common_path = os.path.join(req["sites_dir"], "common_site_config.json")
    common = read_json(common_path) if os.path.exists(common_path) else {}
    merged = {**common, **config}
    name = str(config.get("db_name", ""))
    return {"host": merged.get("db_host"), "port": merged.get("db_port"), "socket": merged.get("db_socket"),
            "name": name, "user": config.get("db_user") or name, "password": str(config.get("db_password", ""))}


def site_option_file(db: dict[str, Any]) -> contextlib.AbstractContextManager[str]:
    return option_file(db["user"], db["password"], db["host"], db["port"], db["socket"])


def root_option_file(req: dict[str, Any], db: dict[str, Any]) -> contextlib.AbstractContextManager[str]:
    return option_file(req.get("root_user") or "root", req["root_password"], db["host"], db["port"], db["socket"])


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def apps_info(bench: str) -> list[dict[str, str]]:
    apps_txt = os.path.join(bench, "sites", "apps.txt")
    names = read_text(apps_txt).split() if os.path.exists(apps_txt) else []
    found = []
    for name in names:
        path = os.path.join(bench, "apps", name)
        info = {"name": name, "version": "", "commit": "", "describe": "", "branch": ""}
        init = os.path.join(path, name, "__init__.py")
        if os.path.exists(init):
            match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", read_text(init))
            info["version"] = match.group(1) if match else ""
        for key, args in (("commit", ["rev-parse", "HEAD"]), ("describe", ["describe", "--tags", "--always"]),
                          ("branch", ["rev-parse", "--abbrev-ref", "HEAD"])):
            proc = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True, check=False)
            info[key] = proc.stdout.strip() if proc.returncode == 0 else ""
        found.append(info)
    return found


def do_sites(req: dict[str, Any]) -> dict[str, Any]:
    root = req["sites_dir"]
    names = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "site_config.json")))
    return {"ok": True, "sites": names}


def do_backup(req: dict[str, Any]) -> dict[str, Any]:
    site_dir = os.path.join(req["sites_dir"], req["site"])
    config = read_json(os.path.join(site_dir, "site_config.json"))
    db = site_db(req, config)
    run_dir = req["run_dir"]
    os.makedirs(os.path.dirname(run_dir), mode=0o700, exist_ok=True)
    os.mkdir(run_dir, 0o700)
    with site_option_file(db) as defaults:
        before = row_counts(defaults, db["name"])
        argv = [req["bench_cli"], "--site", req["site"], "backup", "--backup-path", run_dir]
        if req.get("with_files"):
            argv.insert(4, "--with-files")
        proc = subprocess.run(argv, cwd=req["bench_path"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(run_dir, ignore_errors=True)
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
            raise Failed(f"bench backup exited {proc.returncode}: " + " | ".join(tail))
        after = row_counts(defaults, db["name"])
    files = [{"name": n, "size": os.path.getsize(os.path.join(run_dir, n)), "sha256": sha256(os.path.join(run_dir, n))}
             for n in sorted(os.listdir(run_dir))]
    tables = {t: [min(before.get(t, 0), after.get(t, 0)), max(before.get(t, 0), after.get(t, 0))]
              for t in sorted(set(before) | set(after))}
    return {"ok": True, "run_dir": run_dir, "files": files, "tables": tables, "apps": apps_info(req["bench_path"]),
            "site_config": config, "db_name": db["name"]}


def do_apps(req: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "apps": apps_info(req["bench_path"])}


def main() -> int:
    req = json.loads(sys.stdin.readline())
    actions = {"sites": do_sites, "backup": do_backup, "apps": do_apps,
               # defined by remote_restore.py, sent after this file
               "import": globals().get("do_import"), "drop": globals().get("do_drop")}
    try:
        action = actions.get(req["action"])
        if action is None:
            raise Failed(f"unknown action {req['action']!r}")
        result = action(req)
    except Failed as exc:
        result = {"ok": False, "error": str(exc)}
    except (OSError, KeyError, ValueError) as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 0


