"""cron: crontab editing from canned ``crontab -l`` output."""

from __future__ import annotations

from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.cron import RC_LINE, Cron, apply_job, parse_probe
from tests.unit._modrun import FakeContext

pytestmark = pytest.mark.unit



def args(**raw: Any) -> dict[str, Any]:
    module = Cron()
    coerced = Cron.coerce(Cron.normalize({"name": "backup", "job": "bench backup", **raw}))
    module.check_args(coerced)
    return coerced


def probe_out(text: str, rc: int = 0) -> str:
    return f"{text}{RC_LINE}{rc}\n"


CASES = [
    # (existing crontab, args, expected crontab)
    ("", {}, "#provision: backup\n* * * * * bench backup\n"),
    ("", {"minute": "0", "hour": "*/6"}, "#provision: backup\n0 */6 * * * bench backup\n"),
    ("", {"special_time": "reboot"}, "#provision: backup\n@reboot bench backup\n"),
    ("", {"disabled": True}, "#provision: backup\n#* * * * * bench backup\n"),
    ("MAILTO=x\n#provision: backup\n1 * * * * old\n5 5 * * * other\n", {"minute": "2"},
     "MAILTO=x\n#provision: backup\n2 * * * * bench backup\n5 5 * * * other\n"),
    ("#provision: backup\n* * * * * bench backup\n9 9 * * * keep\n", {"state": "absent"}, "9 9 * * * keep\n"),
    ("# header\n5 5 * * * other\n", {"env": ["PATH=/usr/bin", 'MAILTO=""']},
     "# header\nPATH=/usr/bin\nMAILTO=\"\"\n5 5 * * * other\n#provision: backup\n* * * * * bench backup\n"),
    ("PATH=/bin\n#provision: backup\n* * * * * bench backup\n", {"env": ["PATH=/usr/bin"]},
     "PATH=/usr/bin\n#provision: backup\n* * * * * bench backup\n"),
]


@pytest.mark.parametrize(("before", "extra", "after"), CASES)
def test_apply_job(before: str, extra: dict[str, Any], after: str) -> None:
    assert apply_job(before, args(**extra)) == after


def test_converged_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute_module(Cron(), args(), ctx, probe_out("#provision: backup\n* * * * * bench backup\n"))
    assert result.status == "ok"
    assert ctx.calls == []


def test_absent_when_missing_is_ok() -> None:
    ctx = FakeContext()
    result = execute_module(Cron(), args(state="absent"), ctx, probe_out("no crontab for frappe\n", rc=1))
    assert result.status == "ok"
    assert ctx.calls == []


def test_change_writes_whole_crontab_on_stdin() -> None:
    ctx = FakeContext(diff=True)
    result = execute_module(Cron(), args(user="frappe"), ctx, probe_out("no crontab for frappe\n", rc=1))
    assert result.status == "changed"
    assert result.diff is not None and "+* * * * * bench backup" in result.diff
    [(script, stdin, readonly)] = ctx.calls
    assert "crontab -u frappe -" in script and not readonly
    assert stdin == b"#provision: backup\n* * * * * bench backup\n"


def test_check_mode_changes_nothing() -> None:
    ctx = FakeContext(check=True, diff=True)
    result = execute_module(Cron(), args(), ctx, probe_out(""))
    assert result.status == "changed" and result.diff
    assert ctx.calls == []


def test_failed_write_reports_stderr() -> None:
    ctx = FakeContext(results=[CommandResult(1, "", "crontab: user 'nobody2' unknown")])
    result = execute_module(Cron(), args(user="nobody2"), ctx, probe_out(""))
    assert result.status == "failed" and "unknown" in result.msg


def test_unreadable_crontab_fails() -> None:
    result = execute_module(Cron(), args(user="x"), FakeContext(), probe_out("must be privileged to use -u\n", rc=1))
    assert result.status == "failed" and "privileged" in result.msg


def test_parse_probe_without_crontab() -> None:
    assert parse_probe(probe_out("no crontab for root\n", 1)).text == ""
    assert parse_probe(probe_out("1 * * * * x\n")).text == "1 * * * * x\n"


def test_probe_uses_u_only_for_other_users() -> None:
    assert "crontab -l" in Cron().probe(args())
    assert "crontab -u frappe -l" in Cron().probe(args(user="frappe"))


@pytest.mark.parametrize("bad", [{"job": None}, {"env": ["not an env"]}, {"env": ["MAILTO="]}, {"job": "a\nb"},
                                 {"special_time": "often"}])
def test_bad_args(bad: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        args(**bad)
