"""Finishing what a cut run left on a host, from its journal (see journal.recovery_plan)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from ..connection import Connection
from . import downtime, journal, releases
from .flow import Events, FlowOptions, HostFlow, HostReport, StepFailed
from .plan import HostPlan


def recover_host(connection: Connection, local: Connection, plan: HostPlan, options: FlowOptions,
                 events: Events) -> HostReport | None:
    """Finish or roll back every open journal on the host; None when there was none.

    The report's status is ``recovered`` when the host is whole again, ``failed`` otherwise (then
    the update must not go on).
    """
    probe = connection.run(journal.open_journals_script(plan.shared_path), become_user="root", timeout=60)
    journals = journal.parse_open_journals(probe.stdout)
    if not journals:
        return None
    report = HostReport(plan.host, status="recovered")
    for run_id, entries in journals.items():
        live = connection.run(f"readlink {_q(plan.bench_path)}", become_user="root", timeout=60).stdout.strip()
        decision = journal.recovery_plan(entries, live)
        events.event("recovery", {"host": plan.host, "run_id": run_id, "action": decision.action,
                                  "reason": decision.reason})
        report.notes.append(f"run {run_id} was cut: {decision.action} ({decision.reason})")
        target = replace(plan.with_target(releases.release_of(decision.to_path), decision.to_path or None),
                         live_path=decision.from_path or live)
        flow = HostFlow(connection, local, target, replace(options, run_id=run_id, stop=options.stop), events)
        begin = next((e for e in entries if e.step == journal.BEGIN), None)
        flow.all_sites = [str(s) for s in (begin.data.get("sites", []) if begin else [])]
        with contextlib.suppress(Exception):
            connection.run(downtime.stop_script(journal.journal_dir(plan.shared_path), run_id), become_user="root",
                           timeout=60)
        if decision.action == "none":
            with contextlib.suppress(StepFailed):
                flow.journal(journal.END, "done", result="nothing to do")
            continue
        if decision.action == "abort":
            flow.reads_opened.update(decision.maintenance_sites)  # a cut gate may have opened them
            flow.abort(decision.maintenance_sites)
            continue
        if decision.action == "complete":
            flow.reads_opened.update(decision.maintenance_sites)
            try:
                flow.restart(other=decision.from_path)
                flow.gate(decision.to_path, journal.HEALTH, in_maintenance=decision.maintenance_sites)
                for site in decision.maintenance_sites:
                    flow.maintenance(site, on=False)
                flow.mark(target.release_dir, releases.GOOD, "passed the health gate (recovered run)")
                flow.journal(journal.END, "done", result="ok")
                continue
            except StepFailed as failure:
                reason = failure.message
        else:
            reason = decision.reason
        flow.reads_opened.update(decision.maintenance_sites)
        flow.rollback(old_path=decision.from_path, new_path=decision.to_path, new_dir=target.release_dir,
                      restore_sites=decision.restore_sites, backups=decision.backups,
                      maintenance_sites=decision.maintenance_sites, reason=f"recovering run {run_id}: {reason}")
        report.notes.extend(flow.report.notes)
        if any("no backup" not in note for note in flow.report.notes):
            report.status = "failed"
    return report


def _q(text: str) -> str:
    from shlex import quote

    return quote(text)
