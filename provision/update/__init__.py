"""``provision update``: rolling app updates that a business can trust with its data.

Per host, under the host lock: build the new release beside the live one (the engine, with
``playbooks/update.yml``), decide per site whether it needs ``migrate`` (``decide``), run the
hooks, put migrating sites in maintenance, drain their jobs and back them up (``hostops``), switch
the live link by rename, migrate, restart, pass the health gate (``health``), and end maintenance.
Any failure switches back, restores the migrated databases into new databases (the migrated one is
kept, never dropped), passes the health gate on the old release and marks the new one bad. Every
step is journalled on the host before and after it runs (``journal``), so a cut run is finished
or rolled back by the next one.

    decide.py    which sites migrate, and why (pure)
    releases.py  release records, pruning (pure) and their host scripts
    journal.py   the per-operation journal and the recovery decision (pure) and its host scripts
    hostops.py   the shell scripts of each step
    health.py    the health gate
    hooks.py     pre_update / post_backup / post_update / on_update_failure
    flow.py      one host's update or rollback
    rollout.py   hosts in serial batches, the canary, the build playbook, the lock
    report.py    what people and --json see
"""
