"""``provision update``, ``releases`` and ``rollback``; and ``deploy`` when app refs moved.

``deploy``'s own command (cli.py) is wrapped here: the deploy playbook never switches a host whose
live release differs from the one it builds, and this wrapper then runs the update flow on those
hosts (maintenance, backup, migrate, health gate, rollback) — never a silent switch. On a first
deploy nothing differs and the deploy is exactly what it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION_UPDATE = """\
Rolling update of the apps of GROUP's benches, host by host (the first batch is a canary):
lock, build the new release beside the live one, decide per site whether it migrates (and say
why), hooks, maintenance + drain + backup for migrating sites, atomic switch, migrate, restart,
health gate through nginx, maintenance off. Any failure rolls that host back (switch back,
restore the migrated databases into new ones, health gate on the old release), marks the
release bad, stops the rollout and exits 2 with a report."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    update = commands.add_parser("update", parents=[common], help="rolling app update with backup, migrate, "
                                 "health gate and automatic rollback", description=DESCRIPTION_UPDATE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    update.add_argument("group", help="group or host pattern, e.g. prod")
    update.add_argument("--apps", metavar="APP@REF,...", help="refs to update to, e.g. ledger@v2,frappe@version-15 "
                        "(default: the inventory's refs); keep the inventory in step, or a later deploy goes back")
    _rollout_options(update)
    update.add_argument("--no-backup", action="store_true", help="no backup before migrate (recorded in the events; "
                        "a failed migrate can then not be undone)")
    update.set_defaults(func=cmd_update)

    rollback = commands.add_parser("rollback", parents=[common], help="switch back to an earlier good release",
                                   description="Switch GROUP's hosts back to the previous good release (or "
                                               "--to RELEASE) through the update's steps: lock, maintenance and "
                                               "backup for sites that migrate, switch, migrate, health gate.")
    rollback.add_argument("group")
    rollback.add_argument("--to", metavar="RELEASE", help="the release to go to (must be good), e.g. r-0123456789ab")
    _rollout_options(rollback)
    rollback.set_defaults(func=cmd_rollback)

    listing = commands.add_parser("releases", parents=[common], help="list each host's releases",
                                  description="Each host's releases: live marker, good/bad, app refs and commits, "
                                              "built at.")
    listing.add_argument("group")
    listing.set_defaults(func=cmd_releases)

    deploy = commands.choices.get("deploy")
    if deploy is not None:
        deploy.set_defaults(func=cmd_deploy)


def _rollout_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serial", default="1", metavar="N|N%", help="hosts per batch (default 1)")
    parser.add_argument("--max-fail-percentage", type=float, default=0.0, metavar="P",
                        help="failed hosts per batch allowed before the rollout stops (default 0)")


def _playbook(name: str) -> Path:
    from provision.runner import builtin_dir

    project = Path.cwd() / "playbooks" / name
    return project if project.exists() else builtin_dir("playbooks") / name


def _reporter(args: argparse.Namespace) -> Any:
    from provision.update.report import UpdateReporter

    return UpdateReporter(json_output=args.json, verbosity=args.verbose, redactor=args.redactor)


def cmd_update(args: argparse.Namespace) -> int:
    from provision.update.rollout import Rollout, RolloutOptions, check_serial, parse_app_refs

    options = RolloutOptions(operation="update", serial=check_serial(args.serial),
                             max_fail_percentage=args.max_fail_percentage, no_backup=args.no_backup,
                             check=args.check, app_refs=parse_app_refs(args.apps))
    playbook = _playbook("update.yml")
    layout = _multiserver(args)
    if layout is not None:  # app hosts behind a load balancer: one update of the whole system
        from provision.update.fleet_run import FleetRollout

        return FleetRollout(args, layout, options, playbook, _reporter(args)).run()
    rollout = Rollout(args, args.group, options, playbook, _reporter(args))
    return rollout.run(rollout.build_with(playbook))


def _multiserver(args: argparse.Namespace) -> Any:
    """The multi-server layout when GROUP's selection holds app hosts of an inventory with app and lb groups."""
    from provision.cli import load_inventory
    from provision.update.fleet_run import multiserver_layout

    inventory = load_inventory(args)
    pattern = f"{args.group}:&{args.limit}" if args.limit else args.group  # as cli.run_options combines them
    selected = [host.name for host in inventory.select(pattern)]
    return multiserver_layout(inventory, selected)


def cmd_rollback(args: argparse.Namespace) -> int:
    from provision.update import releases
    from provision.update.flow import HostReport
    from provision.update.rollout import Rollout, RolloutOptions, check_serial

    options = RolloutOptions(operation="rollback", serial=check_serial(args.serial),
                             max_fail_percentage=args.max_fail_percentage, check=args.check, rollback_to=args.to)

    def choose(plan: Any, connection: Any) -> tuple[Any, str]:
        listing = connection.run(releases.list_script(plan.frappe_home, plan.bench_path), become_user="root")
        live, found = releases.parse_list(listing.stdout)
        chosen = releases.rollback_target(found, live, args.to)
        if chosen is None:
            return None, (f"release {args.to} is not a good release other than the live one" if args.to else
                          "no earlier good release to go back to")
        return plan.with_target(chosen.name), ""

    layout = _multiserver(args)
    if layout is not None:  # app hosts behind a load balancer go back together, drained one at a time
        from provision.update.fleet_run import FleetRollout

        return FleetRollout(args, layout, options, _playbook("update.yml"), _reporter(args), target=choose).run()
    rollout = Rollout(args, args.group, options, _playbook("update.yml"), _reporter(args))

    def target(plan: Any, connection: Any) -> Any:
        chosen, error = choose(plan, connection)
        if chosen is None:
            rollout.reports[plan.host] = HostReport(plan.host, status="failed", step="rollback", error=error)
        return chosen

    return rollout.run(None, target)


def cmd_releases(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from provision.update import releases
    from provision.update.rollout import Rollout, RolloutOptions

    reporter = _reporter(args)
    rollout = Rollout(args, args.group, RolloutOptions(operation="releases"), _playbook("update.yml"), reporter)
    plans = rollout.info()
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("host", "", "release", "state", "apps", "built at", "note"):
        table.add_column(column)
    result: dict[str, Any] = {}
    for host, plan in plans.items():
        connection = rollout.connection(host)
        try:
            listing = connection.run(releases.list_script(plan.frappe_home, plan.bench_path), become_user="root")
        finally:
            connection.close()
        _, found = releases.parse_list(listing.stdout)
        result[host] = [{"release": r.name, "live": r.live, "state": r.state, "apps": list(r.apps),
                         "built_at": r.built_at, "reason": r.reason} for r in found]
        for release in found:
            table.add_row(host, "*" if release.live else "", release.name, release.state, release.refs(),
                          release.built_at, release.reason[:80])
    if args.json:
        import json
        import sys

        sys.stdout.write(json.dumps({"event": "releases", "hosts": result}) + "\n")
    else:
        Console().print(table)
    reporter.close()
    return 2 if rollout.reports else 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """The deploy playbook under the host lock, then the update flow where the app refs moved."""
    from provision.playbook import load_playbook
    from provision.run_habits import before_run
    from provision.update import releases
    from provision.update.flow import HostReport
    from provision.update.plan import HostPlan
    from provision.update.rollout import Rollout, RolloutOptions

    deploy_playbook = _playbook("deploy.yml")
    # --syntax-check and the listings answer offline, as on `provision playbook`: no host is touched.
    listed = before_run(args, load_playbook(deploy_playbook), args.group)
    if listed is not None:
        return listed
    reporter = _reporter(args)
    rollout = Rollout(args, args.group, RolloutOptions(operation="deploy", check=args.check),
                      _playbook("update.yml"), reporter)

    codes: list[int] = []
    layout = _multiserver(args)
    fleet_moved: list[str] = []  # app hosts of a multi-server bench whose refs moved: updated together after

    def build(hosts: list[str]) -> dict[str, HostPlan]:
        recorder, code = rollout.engine_run(deploy_playbook, limit=":".join(hosts))
        codes.append(code)
        moved: dict[str, HostPlan] = {}
        for host in hosts:
            data = recorder.plans.get(host)
            if host in recorder.failed or data is None:
                rollout.reports[host] = HostReport(host, status="failed", step="deploy",
                                                   error=recorder.failed.get(host, "the deploy did not finish"))
                continue
            if data.get("bench") is False:  # a db, redis, files or lb host of several servers: no bench
                rollout.reports[host] = HostReport(host, status="unchanged", notes=["no bench (service host)"])
                continue
            plan = HostPlan.from_debug(host, data)
            if plan.live_path and plan.live_path != plan.release_path and layout is not None and host in layout.app:
                fleet_moved.append(host)
                rollout.reports[host] = HostReport(host, status="unchanged", from_release=plan.live_release,
                                                   to_release=plan.release,
                                                   notes=["refs moved: updated with every app host after the deploy"])
            elif plan.live_path and plan.live_path != plan.release_path:
                moved[host] = plan
            else:
                if not args.check:  # a deployed, verified release is a rollback target
                    connection = rollout.connection(host)
                    try:
                        connection.run(releases.mark_script(plan.release_dir, releases.GOOD, "deployed",
                                                            only_if_built=True), become_user=plan.frappe_user)
                    finally:
                        connection.close()
                rollout.reports[host] = HostReport(host, status="unchanged", from_release=plan.release,
                                                   to_release=plan.release)
        return moved

    # One batch for the deploy itself (hosts in parallel, as a deploy runs); the update flow then
    # goes through the hosts whose refs moved one by one, the first as the canary.
    rollout.options.serial = "100%"
    rollout.options.sequential_flows = True
    code = rollout.run(build)
    if layout is not None and fleet_moved and not args.check and max([code, *codes]) == 0:
        from dataclasses import replace

        from provision.update.fleet_run import FleetRollout

        moved_layout = replace(layout, app=tuple(h for h in layout.app if h in fleet_moved))
        code = FleetRollout(args, moved_layout, RolloutOptions(operation="deploy"), _playbook("update.yml"),
                            _reporter(args)).run()
    return max([code, *codes])
