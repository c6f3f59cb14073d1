"""Backups of every site to the control host: pulled, verified, retained by policy, restorable.

    targets.py        the hosts and their variables (deploy defaults under the inventory)
    remote_helper.py  the program run on a host: site list, bench backup, row counts, apps
    remote_restore.py its restore half: import into a new database, check, switch (sent with it)
    remote.py         calling it; files moved in bounded, resumable pieces
    pull.py           one site's backup: made, pulled, verified, host copy removed
    checks.py         sha256, gzip, the dump's completion line, tar listing
    manifest.py       the layout on the control host and manifest.json (no secrets in it)
    retention.py      GFS retention (keep_last/daily/weekly/monthly/yearly)
    run.py            a whole run: hosts in parallel, control lock, prune, hooks, exit code
    restore.py        restore (new database, checked, then switched) and verify by restore
    cron.py, hooks.py, encrypt.py, report.py
"""
