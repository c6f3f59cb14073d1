"""certificate: which certificates a site needs, the expiry/renewal decision, the key check, certbot's command."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult, Plan
from provision.tasks.certificate import (
    Certificate,
    CertificateStates,
    CertState,
    Wanted,
    certbot_command,
    normalize_mode,
    parse_state,
    plan_certificate,
    site_certificates,
)
from tests.unit._modrun import FakeContext, local_context, run_task

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DIRECTORY = "https://acme.test/dir"
ACME = Wanted("a.test", "acme", ("a.test", "www.a.test"), "/le/live/a.test/fullchain.pem",
              "/le/live/a.test/privkey.pem", "/le/renewal/a.test.conf")
MANUAL = Wanted("a.test", "manual", ("a.test",), "/ssl/a.pem", "/ssl/a.key")


def args(**raw: Any) -> dict[str, Any]:
    coerced = Certificate.coerce(Certificate.normalize({"name": "a.test", "mode": "acme", **raw}))
    Certificate().check_args(coerced)
    return coerced


def state(days: float = 60, **extra: Any) -> CertState:
    values: dict[str, Any] = {"now": NOW, "present": True, "key_present": True, "key_mode": "600", "key_owner": "root",
                              "not_after": NOW + dt.timedelta(days=days), "names": ("a.test", "www.a.test"),
                              "key_matches": True, "server": DIRECTORY}
    values.update(extra)
    return CertState(**values)


def plan(wanted: Wanted, current: CertState, warn_days: int = 20) -> tuple[str, str, bool, tuple[str, ...]]:
    result = plan_certificate(wanted, current, directory=DIRECTORY, warn_days=warn_days, host="web1")
    return result.action, result.reason, result.ready, result.warnings


# ----- the decision ------------------------------------------------------------------------------------

def test_a_valid_certificate_needs_nothing() -> None:
    assert plan(ACME, state(60)) == ("none", "valid until 2027-01-30 12:00 UTC", True, ())


def test_no_certificate_is_issued_and_not_ready() -> None:
    assert plan(ACME, state(present=False))[:3] == ("issue", "no certificate yet", False)
    assert plan(ACME, state(key_present=False))[:3] == ("issue", "no certificate yet", False)


@pytest.mark.parametrize(("days", "action"), [(21, "none"), (20, "renew"), (3, "renew"), (-1, "renew")])
def test_expiring_within_warn_days_is_renewed_and_warned(days: float, action: str) -> None:
    got_action, reason, ready, warnings = plan(ACME, state(days))
    assert (got_action, ready) == (action, True)
    if action == "renew":
        date = (NOW + dt.timedelta(days=days)).strftime("%Y-%m-%d %H:%M UTC")
        when = f"expired on {date}" if days < 0 else f"expires on {date} ({int(days)} days left)"
        assert warnings == (f"web1: a.test: certificate {when}",)
        assert reason == f"due: {when}"
    else:
        assert warnings == ()


def test_warn_days_is_the_threshold() -> None:
    assert plan(ACME, state(25), warn_days=30)[0] == "renew"
    assert plan(ACME, state(25), warn_days=0)[0] == "none"


def test_changed_names_reissue_and_keep_serving_the_old_certificate() -> None:
    assert plan(ACME, state(names=("a.test",)))[:3] == ("issue", "names changed (adds www.a.test)", True)
    wider = state(names=("a.test", "www.a.test", "old.a.test"))
    assert plan(ACME, wider)[:3] == ("issue", "names changed (drops old.a.test)", True)


def test_another_ca_reissues() -> None:
    assert plan(ACME, state(server="https://other.test/dir"))[:2] == (
        "issue", f"issued by https://other.test/dir, now {DIRECTORY}")


def test_acme_key_mismatch_reissues_and_an_unreadable_certificate_too() -> None:
    assert plan(ACME, state(key_matches=False))[:3] == ("issue", "the key does not match the certificate", False)
    assert plan(ACME, state(not_after=None, error="unable to load certificate"))[:3] == (
        "issue", "the certificate is unreadable (unable to load certificate)", False)


def test_manual_mismatch_missing_or_unreadable_is_refused() -> None:
    action, reason, ready, _ = plan(MANUAL, state(key_matches=False, names=("a.test",)))
    assert (action, ready) == ("fail", False)
    assert reason.startswith("web1: a.test: the key /ssl/a.key does not match the certificate /ssl/a.pem "
                             "(their public keys differ); nginx was not touched")
    assert plan(MANUAL, state(present=False))[1].startswith("web1: a.test: /ssl/a.pem does not exist on the host")
    assert plan(MANUAL, state(key_present=False))[1].startswith("web1: a.test: /ssl/a.key does not exist")
    assert plan(MANUAL, state(not_after=None))[0] == "fail"


def test_manual_is_never_renewed_only_warned() -> None:
    action, reason, ready, warnings = plan(MANUAL, state(5, names=("*.a.test", "a.test")))
    assert (action, ready) == ("none", True)
    assert reason.startswith("in place, expires on ")
    assert warnings == ("web1: a.test: certificate expires on 2026-12-06 12:00 UTC (5 days left)",)
    uncovered = plan(Wanted("a.test", "manual", ("a.test", "b.test"), "/c", "/k"), state(60, names=("*.other.test",)))
    assert uncovered[3] == ("web1: a.test: certificate /c does not cover a.test, b.test",)
    assert plan(Wanted("x", "manual", ("www.a.test",), "/c", "/k"), state(60, names=("*.a.test",)))[3] == ()


# ----- which certificates a site needs -----------------------------------------------------------------

def test_acme_site_gets_one_certificate_with_its_domains() -> None:
    domains = ["www.a.test", {"domain": "shop.test"}, {"domain": "old.test", "tls": False},
               {"domain": "own.test", "ssl_certificate": "/o.pem", "ssl_certificate_key": "/o.key"}]
    wanted = site_certificates(args(domains=domains))
    assert wanted == [
        Wanted("a.test", "acme", ("a.test", "www.a.test", "shop.test"), "/etc/letsencrypt/live/a.test/fullchain.pem",
               "/etc/letsencrypt/live/a.test/privkey.pem", "/etc/letsencrypt/renewal/a.test.conf"),
        Wanted("own.test", "manual", ("own.test",), "/o.pem", "/o.key"),
    ]


def test_manual_and_off_sites() -> None:
    manual = site_certificates(args(mode="manual", domains=["www.a.test"], certificate="/c", key="/k"))
    assert manual == [Wanted("a.test", "manual", ("a.test", "www.a.test"), "/c", "/k")]
    assert Certificate().probe(args(mode=False)) is None
    assert Certificate().probe(args(mode="off", domains=["www.a.test"])) is None


@pytest.mark.parametrize(("raw", "message"), [
    ({"mode": "manual"}, "tls: manual needs ssl_certificate and ssl_certificate_key"),
    ({"mode": "off", "domains": [{"domain": "x.test", "tls": "acme"}]}, "domain x.test has tls: acme but the site"),
    ({"mode": "acme", "domains": [{"domain": "x.test", "tls": "manual"}]}, "domain x.test has tls: manual but no"),
    ({"mode": "on"}, "tls must be acme, manual or off, got 'on'"),
    ({"directory": "http://insecure.test/dir"}, "acme_directory must be an https:// URL"),
    ({"domains": [{"domain": "x.test", "ssl_certificate": "/c"}]}, "has ssl_certificate but no ssl_certificate_key"),
])
def test_bad_settings_are_refused_with_the_fix(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(")):
        args(**raw)


@pytest.mark.parametrize(("value", "mode"), [(False, "off"), (None, "off"), ("off", "off"), ("OFF", "off"),
                                             ("acme", "acme"), (" Manual ", "manual")])
def test_mode_from_yaml(value: Any, mode: str) -> None:
    assert normalize_mode(value) == mode


# ----- certbot ----------------------------------------------------------------------------------------

def test_certbot_command_uses_webroot_server_and_the_private_root() -> None:
    command = certbot_command(ACME, args(email="ops@a.test", directory=DIRECTORY, ca_bundle="/le/ca/a.test.pem"))
    assert command == (
        "REQUESTS_CA_BUNDLE=/le/ca/a.test.pem certbot certonly --non-interactive --agree-tos --webroot "
        "--webroot-path /var/www/acme --cert-name a.test --server https://acme.test/dir --force-renewal "
        "--deploy-hook 'service nginx reload' --config-dir /etc/letsencrypt -d a.test -d www.a.test "
        "--email ops@a.test --no-eff-email")
    plain = certbot_command(ACME, {**args(), "email": "", "ca_bundle": ""})
    assert plain.startswith("certbot certonly ") and plain.endswith(" --register-unsafely-without-email")
    assert "--standalone" not in plain and "REQUESTS_CA_BUNDLE" not in plain


def probe_output(**fields: str) -> str:
    values = {"now": str(int(NOW.timestamp())), "cert": "present", "key": "600 root", **fields}
    lines = [f"{k}={v}" for k, v in values.items() if k not in ("enddate", "sans")]
    lines.append(f"x509 notAfter={fields.get('enddate', 'Jan 30 12:00:00 2027 GMT')}")
    lines += [f"san={s}" for s in fields.get("sans", "DNS:a.test, DNS:www.a.test").split("|")]
    return "@@provision-cert 0\n" + "\n".join(lines) + "\n"


MATCHING = {"certpub": "ab" * 32, "keypub": "ab" * 32, "server": DIRECTORY}


def execute(arguments: dict[str, Any], ctx: FakeContext, output: str | None) -> Any:
    """The task as the engine runs it: the module's plan from the probe's output, then applied."""
    return execute_module(Certificate(), arguments, ctx, output)


def test_parse_state() -> None:
    parsed = parse_state(probe_output(**MATCHING).split("\n", 1)[1])
    assert parsed == state(60)


def test_converged_site_costs_no_call() -> None:
    ctx = FakeContext()
    result = execute(args(domains=["www.a.test"], issue=True, directory=DIRECTORY), ctx, probe_output(**MATCHING))
    assert (result.status, ctx.calls) == ("ok", [])
    assert result.data["ready"] and result.data["action"] == "none"


def test_plan_only_reports_and_warns_without_changing() -> None:
    ctx = FakeContext()
    result = execute(args(domains=["www.a.test"], directory=DIRECTORY, warn_days=90), ctx, probe_output(**MATCHING))
    assert (result.status, result.data["action"], ctx.calls) == ("ok", "renew", [])
    assert result.data["warnings"] == ["web1: a.test: certificate expires on 2027-01-30 12:00 UTC (60 days left)"]


def test_check_mode_says_what_would_be_issued() -> None:
    ctx = FakeContext(check=True)
    result = execute(args(domains=["www.a.test"], issue=True), ctx, "@@provision-cert 0\ncert=absent\n")
    assert result.status == "changed" and ctx.calls == []
    assert result.msg == "would issue a.test (a.test, www.a.test): no certificate yet"


def test_issue_runs_certbot_then_fixes_the_key_mode() -> None:
    ctx = FakeContext()
    result = execute(args(issue=True), ctx, "@@provision-cert 0\ncert=absent\nkey=absent\n")
    assert result.status == "changed", result.msg
    assert result.msg == "issued a.test (a.test)"
    [(script, stdin, _)] = ctx.calls
    assert "certbot certonly" in script and "chmod 600" in script and stdin is None
    assert result.data["ready"] is True


def test_failed_renewal_keeps_the_certificate_and_says_why() -> None:
    error = ("Saving debug log to /var/log/letsencrypt/letsencrypt.log\n"
             "An unexpected error occurred:\nrequests.exceptions.ConnectionError: Connection refused\n"
             "Ask for help or search for solutions at https://community.letsencrypt.org.\n")
    ctx = FakeContext(results=[CommandResult(1, "", error)])
    result = execute(args(issue=True, directory=DIRECTORY, warn_days=90), ctx,
                     probe_output(**MATCHING, sans="DNS:a.test"))
    assert result.status == "failed"
    assert result.msg == (
        "web1: a.test: certbot could not renew the certificate for a.test from https://acme.test/dir "
        "(the current certificate is kept):\n"
        "An unexpected error occurred:\nrequests.exceptions.ConnectionError: Connection refused")
    assert result.data["ready"] is True


# ----- the plan ----------------------------------------------------------------------------------------

OWN_DOMAIN = {"domain": "own.test", "ssl_certificate": "/o.pem", "ssl_certificate_key": "/o.key"}


def facts_of(arguments: dict[str, Any], output: str) -> list[CertState]:
    fact = Certificate().facts(arguments)
    assert isinstance(fact, CertificateStates)
    return fact.parse(output)


def test_tls_off_is_skipped_with_the_data_the_deploy_reads() -> None:
    off = args(mode=False)
    assert Certificate().facts(off) is None
    for ctx in (FakeContext(), FakeContext(check=True)):
        result = execute(off, ctx, None)
        assert (result.status, result.msg, ctx.calls) == ("skipped", "a.test: tls off", [])
        assert result.data == {"ready": False, "acme": False, "action": "none", "warnings": []}


def test_the_plan_is_decided_from_the_facts_alone() -> None:
    ctx = FakeContext()
    arguments = args(issue=True, directory=DIRECTORY, warn_days=90, email="ops@a.test")
    planned = Certificate().plan(arguments, facts_of(arguments, probe_output(**MATCHING, sans="DNS:a.test")), ctx)
    assert isinstance(planned, Plan) and ctx.calls == []
    wanted = Wanted("a.test", "acme", ("a.test",), ACME.certificate.replace("/le/", "/etc/letsencrypt/"),
                    ACME.key.replace("/le/", "/etc/letsencrypt/"), "/etc/letsencrypt/renewal/a.test.conf")
    assert planned.script.startswith(certbot_command(wanted, {**arguments, "ca_bundle": ""}) + " || exit $?\n")
    assert "chmod 600" in planned.script
    assert planned.timeout == 600
    assert planned.check_msg == "would renew a.test (a.test): due: expires on 2027-01-30 12:00 UTC (60 days left)"
    assert planned.data == {"ready": True, "acme": True, "action": "renew",
                            "certificates": ["/etc/letsencrypt/live/a.test/fullchain.pem"]}


def test_a_refused_key_is_an_error_with_the_warnings() -> None:
    arguments = args(mode="manual", certificate="/ssl/a.pem", key="/ssl/a.key", issue=True)
    output = probe_output(certpub="ab" * 32, keypub="cd" * 32, sans="DNS:a.test")
    planned = Certificate().plan(arguments, facts_of(arguments, output), FakeContext())
    assert planned.error is not None and "does not match the certificate /ssl/a.pem" in planned.error
    assert not planned.changes and planned.data["warnings"] == []
    assert execute(arguments, FakeContext(check=True), output).status == "failed"


def two_sections(first: str, second: str) -> str:
    return first + second.replace("@@provision-cert 0", "@@provision-cert 1", 1)


def test_certbot_then_the_other_keys_mode_one_step_after_the_other() -> None:
    arguments = args(issue=True, domains=[OWN_DOMAIN])
    output = two_sections("@@provision-cert 0\ncert=absent\nkey=absent\n",
                          probe_output(**MATCHING, key="644 root", sans="DNS:own.test"))
    check = execute(arguments, FakeContext(check=True), output)
    assert (check.status, check.msg) == (
        "changed", "would issue a.test (a.test): no certificate yet; would make /o.key mode 600, owned by root")
    ctx = FakeContext()
    result = execute(arguments, ctx, output)
    assert (result.status, result.msg) == ("changed", "issued a.test (a.test); /o.key mode 600, owned by root")
    assert [script.split()[0] for script, _, _ in ctx.changes] == ["certbot", "_pv_key=$(readlink"]
    assert result.data["ready"] is True and result.data["action"] == "none"


def test_a_failed_step_stops_the_ones_after_it() -> None:
    arguments = args(issue=True, domains=[OWN_DOMAIN])
    output = two_sections("@@provision-cert 0\ncert=absent\nkey=absent\n",
                          probe_output(**MATCHING, key="644 root", sans="DNS:own.test"))
    ctx = FakeContext(results=[CommandResult(1, "", "The CA said no\n")])
    result = execute(arguments, ctx, output)
    assert result.status == "failed" and len(ctx.changes) == 1
    assert result.msg.endswith("(there is no certificate yet (HTTP only)):\nThe CA said no")
    assert (result.data["ready"], result.data["action"], result.data["rc"]) == (False, "issue", 1)
    key_only = FakeContext(results=[CommandResult(1, "", "chmod: denied\n")])
    failed = execute(args(mode="manual", certificate="/ssl/a.pem", key="/ssl/a.key", issue=True), key_only,
                     probe_output(**MATCHING, key="640 frappe", sans="DNS:a.test"))
    assert (failed.status, failed.msg) == ("failed", "making /ssl/a.key mode 600, owned by root failed (exit 1)\n"
                                                     "chmod: denied")


# ----- the probe with the real openssl ----------------------------------------------------------------

def openssl(*words: str) -> None:
    subprocess.run(["openssl", *words], check=True, capture_output=True, timeout=60)


def test_probe_reads_a_real_certificate_and_compares_public_keys(tmp_path: Path) -> None:
    cert, key, other = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "other.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "5",
            "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test,DNS:www.a.test",
            "-keyout", str(key), "-out", str(cert))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(other))
    raw = {"name": "a.test", "mode": "manual", "domains": ["www.a.test"], "certificate": str(cert)}
    good = run_task(Certificate, {**raw, "key": str(key)}, local_context())
    assert good.status == "ok", good.msg
    assert good.data["ready"] and good.data["warnings"][0].startswith("local: a.test: certificate expires on ")
    bad = run_task(Certificate, {**raw, "key": str(other)}, local_context())
    assert bad.status == "failed"
    assert "does not match the certificate" in bad.msg and "nginx was not touched" in bad.msg
    missing = run_task(Certificate, {**raw, "key": str(tmp_path / "nope")}, local_context())
    assert missing.status == "failed" and "does not exist on the host" in missing.msg


def test_expiry_warnings_reach_the_reporter_as_warnings(tmp_path: Path) -> None:
    from tests.unit.test_runner_local import run

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "5",
            "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test", "-keyout", str(key), "-out", str(cert))
    code, recorder, _ = run(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: certificate of a.test
              certificate: {{name: a.test, mode: manual, certificate: "{cert}", key: "{key}"}}
        """)
    assert code == 0
    assert [w.split(" on ")[0] for w in recorder.warnings] == ["h1: a.test: certificate expires"]
