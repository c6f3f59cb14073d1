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
        refusal = _multi_server_refusal(entries, decision.action)
        if refusal:
            events.event("recovery", {"host": plan.host, "run_id": run_id, "action": "refused", "reason": refusal})
            report.status = "failed"
            report.step, report.error = "recover", f"run {run_id} was cut: {refusal}"
            return report
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


def _multi_server_refusal(entries: list[journal.Entry], action: str) -> str:
    """Why a cut multi-server update is not finished here (its database is shared by every app host), or ""."""
    begin = next((e for e in entries if e.step == journal.BEGIN), None)
    if begin is None or not begin.data.get("multi_server") or action in ("none", "abort"):
        return ""
    if not any(e.step in (journal.MIGRATE, "db_restore") for e in entries):
        return ""  # rolling (no migrate): this host is switched back or finished on its own
    dumps = [f"{e.data.get('host')}:{e.data.get('dump')}" for e in entries
             if e.step == "db_backup" and e.phase == "done"]
    return ("a multi-server update was cut after its migrate began; the shared database is not restored "
            "from one app host's journal. The pre-migrate backup: " + (", ".join(dumps) or "none") +
            ". Restore it into a new database on the db host and point every app host's sites at it, "
            "switch every app host back, then end the journal (append an end line).")

