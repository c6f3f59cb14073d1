"""The database steps of a multi-server update, run on the ``db`` host (root over MariaDB's unix socket).

App hosts reach MariaDB over the network as each site's own user; the update's safety backup and
its restore need more (a new database, grants), so they run where root needs no password: on the
``db`` host itself. The backup is a consistent dump (``--single-transaction``, as Frappe's own)
with every table's row count and checksum before and after it; the restore goes into a NEW
database, proven equal to those checksums, then the site's login (for every address it is granted
from: the app hosts) gets it: its ``db_user``, or a user named like the new database. The migrated
database is never dropped. Pointing the sites at the new database happens on the app hosts (``point_site_script``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .hostops import _RESTORE_PROVEN, _TABLES, _python, site_config_script
from .plan import HostPlan

_DUMP = _TABLES + r'''
import gzip, hashlib, os, shutil
directory, db = sys.argv[1], sys.argv[2]
os.makedirs(directory, mode=0o700, exist_ok=True)
before = table_sums(db)
dump = os.path.join(directory, "%s.sql.gz" % db)
proc = subprocess.Popen(["mariadb-dump", "--single-transaction", "--quick", "--lock-tables=false",
                         "--default-character-set=utf8mb4", db], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
with gzip.open(dump + ".tmp", "wb") as out:
    shutil.copyfileobj(proc.stdout, out)
err = proc.stderr.read().decode(errors="replace")
if proc.wait() != 0:
    os.remove(dump + ".tmp")
    raise SystemExit("mariadb-dump %s failed: %s" % (db, err.strip()[-500:]))
os.replace(dump + ".tmp", dump)
after = table_sums(db)
if before != after:
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    raise SystemExit("the database changed while it was backed up (tables: %s): not a usable backup"
                     % ", ".join(changed[:10]))
digest = hashlib.sha256()
with open(dump, "rb") as fh:
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
result = {"dir": directory, "dump": dump, "db_name": db, "sha256": digest.hexdigest(), "tables": after}
with open(os.path.join(directory, "checksums.json"), "w") as fh:
    json.dump(result, fh, indent=1, sort_keys=True)
print(json.dumps(result))
'''

_RESTORE = _RESTORE_PROVEN + r'''
old_db, user, dump, expected_path, own_user = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
expected = json.load(open(expected_path))["tables"]
new_db, restored, hosts, login = restore_proven(old_db, user, own_user, dump, expected)
print(json.dumps({"old_db": old_db, "new_db": new_db, "tables": len(restored), "grants": hosts, "db_user": login,
                  "config_user": None if own_user else login}))
'''

_SITE_DBS = r'''
import json, os, sys
shared, sites = sys.argv[1], json.loads(sys.argv[2])
found = {}
for site in sites:
    config = json.load(open(os.path.join(shared, "sites", site, "site_config.json")))
    # names only: the password stays on the host
    found[site] = {"db_name": config["db_name"], "db_user": config.get("db_user") or config["db_name"],
                   "own_user": not config.get("db_user")}
print(json.dumps(found))
'''


def backup_root(run_id: str, base: str = "/var/backups/provision-update") -> str:
    return f"{base}/{run_id}"


def dump_script(directory: str, db_name: str) -> str:
    """(root, db host) a consistent dump of ``db_name`` into ``directory``, checksummed before and after."""
    return _python(_DUMP, directory, db_name)


def restore_script(old_db: str, user: str, backup: Mapping[str, Any], *, own_user: bool = False) -> str:
    """(root, db host) the dump into a new database, proven, granted to the site's login; prints new_db.

    ``own_user``: the site's config has no ``db_user`` (Frappe logs in as a user named like the database),
    so a user named like the new database is made with the old one's password and addresses.
    """
    return _python(_RESTORE, old_db, user, str(backup["dump"]), f"{backup['dir']}/checksums.json",
                   "1" if own_user else "0")


def site_dbs_script(plan: HostPlan, sites: list[str]) -> str:
    """(root, app host) each site's database and user name (never the password)."""
    return _python(_SITE_DBS, plan.shared_path, json.dumps(sites))


def point_site_script(plan: HostPlan, site: str, db_name: str, db_user: str | None) -> str:
    """(frappe user, app host) the site's config pointed at ``db_name`` (atomic; a no-op when shared and done);
    ``db_user`` None: no db_user key, Frappe logs in as the user named like the database."""
    return site_config_script(plan, site, {"db_name": db_name, "db_user": db_user})

