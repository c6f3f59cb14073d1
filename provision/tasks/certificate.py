"""``certificate``: a site's TLS certificate is in place, matches its key, covers its names, and is not due.

One task item per site. ``tls: acme`` — one certificate per site, named after the site, with the
site's name and its domains as names, issued by certbot (Debian's package) with HTTP-01 through
the bench's own nginx (``certbot certonly --webroot``: nginx is never stopped) from any RFC 8555
CA (``--server``), trusting a private CA's root through ``REQUESTS_CA_BUNDLE``. ``tls: manual`` —
the operator's certificate and key, refused when the key does not match the certificate (their
public keys are compared with openssl) so nginx is never handed a broken pair.

The fact (``CertificateStates``) reads, per certificate: whether the files exist, the key's mode
and owner, the expiry, the names, the SHA-256 of the certificate's and the key's public key (never
the key itself), and for ACME the CA that issued it (certbot's renewal config).
``plan_certificate`` decides per certificate: nothing, issue (no certificate, names or CA changed,
key mismatch) or renew (expiring within ``warn_days``). With ``issue: false`` the task's plan only
reports that (and warns about expiring certificates); with ``issue: true`` the plan runs certbot
where needed, one step per certificate (each only after the previous one succeeded). A failed issuance or
renewal leaves certbot's live certificate as it was and says why (the CA's own error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ArgumentError
from .base import Arg, CommandResult, Fact, Module, Plan, PlanContext, TaskResult
from .shell import quote

MODES = ("acme", "manual", "off")
_SECTION = "@@provision-cert "
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Reads one certificate's state; never prints key material (only public-key digests).
_PROBE_FN = r"""
pv_cert() {
  echo "now=$(date +%s)"
  if [ -f "$1" ]; then echo cert=present; else echo cert=absent; fi
  if [ -f "$2" ]; then echo "key=$(stat -L -c '%a %U' -- "$2")"; else echo key=absent; fi
  if [ -n "$3" ] && [ -f "$3" ]; then sed -n 's/^server *= */server=/p' "$3"; fi
  [ -f "$1" ] && [ -f "$2" ] || return 0
  openssl x509 -in "$1" -noout -enddate 2>&1 | sed 's/^/x509 /'
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | sed -n 's/^ *DNS:/san=DNS:/p'
  _pv_c=$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum)
  _pv_k=$(openssl pkey -passin pass: -in "$2" -pubout -outform DER 2>/dev/null | sha256sum)
  echo "certpub=${_pv_c%% *}"
  echo "keypub=${_pv_k%% *}"
}
"""


def normalize_mode(value: Any) -> str:
    """``acme``/``manual``/``off`` from an inventory value (YAML reads a bare ``off`` as false)."""
    if value is None or value is False:
        return "off"
    text = str(value).strip().lower()
    if text in ("", "off", "false", "no", "none"):
        return "off"
    if text not in MODES:
        raise ArgumentError(f"tls must be acme, manual or off, got {value!r}",
                            hint="tls: acme (certificates from an ACME CA), manual (your own) or 'off' (quoted)")
    return text


@dataclass(frozen=True)
class Wanted:
    """One certificate a site needs."""

    name: str  # the site (ACME: certbot's --cert-name) or the domain with its own certificate
    mode: str  # acme | manual
    names: tuple[str, ...]
    certificate: str
    key: str
    renewal_conf: str = ""  # ACME only: certbot's renewal/<name>.conf


def site_certificates(args: dict[str, Any]) -> list[Wanted]:
    """The certificates a site needs, from its tls settings and domains (the nginx template sorts alike).

    Plain domains follow the site's mode; a domain mapping may set ``tls: off``, or ``tls: manual`` with
    its own ``ssl_certificate``/``ssl_certificate_key``; ``tls: acme`` on a domain joins the site's
    certificate, so the site must use acme too.
    """
    site = args["name"]
    mode = args["mode"]
    acme_names = [site] if mode == "acme" else []
    manual_names = [site] if mode == "manual" else []
    extra: list[Wanted] = []
    for domain in args["domains"] or []:
        if isinstance(domain, dict):
            name = str(domain.get("domain") or "")
            if not name:
                raise ArgumentError(f"site {site}: a domain mapping needs domain: NAME")
            own_cert = domain.get("ssl_certificate")
            dmode = normalize_mode(domain["tls"]) if "tls" in domain else ("manual" if own_cert else mode)
        else:
            name, own_cert, dmode = str(domain), None, mode
        if dmode == "manual" and own_cert:
            if not domain.get("ssl_certificate_key"):
                raise ArgumentError(f"site {site}: domain {name} has ssl_certificate but no ssl_certificate_key")
            extra.append(Wanted(name, "manual", (name,), str(own_cert), str(domain["ssl_certificate_key"])))
        elif dmode == "acme":
            if mode != "acme":
                raise ArgumentError(f"site {site}: domain {name} has tls: acme but the site does not",
                                    hint="set tls: acme on the site (its certificate carries its domains)")
            acme_names.append(name)
        elif dmode == "manual":
            if mode != "manual":
                raise ArgumentError(f"site {site}: domain {name} has tls: manual but no ssl_certificate",
                                    hint="give the domain its own ssl_certificate and ssl_certificate_key")
            manual_names.append(name)
    wanted: list[Wanted] = []
    if acme_names:
        live = f"{args['certbot_dir']}/live/{site}"
        wanted.append(Wanted(site, "acme", tuple(acme_names), f"{live}/fullchain.pem", f"{live}/privkey.pem",
                             f"{args['certbot_dir']}/renewal/{site}.conf"))
    if manual_names:
        if not args["certificate"] or not args["key"]:
            raise ArgumentError(f"site {site}: tls: manual needs ssl_certificate and ssl_certificate_key",
                                hint="paths on the host of the certificate (full chain) and its key")
        wanted.append(Wanted(site, "manual", tuple(manual_names), args["certificate"], args["key"]))
    return [*wanted, *extra]


@dataclass(frozen=True)
class CertState:
    """What the probe saw of one certificate."""

    now: dt.datetime
    present: bool = False
    key_present: bool = False
    key_mode: str = ""
    key_owner: str = ""
    not_after: dt.datetime | None = None
    names: tuple[str, ...] = ()
    key_matches: bool | None = None
    server: str | None = None
    error: str = ""


def parse_state(text: str) -> CertState:
    """One section of the probe's output."""
    values: dict[str, str] = {}
    names: list[str] = []
    errors: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "san":
            names += [part.strip().removeprefix("DNS:") for part in value.split(",") if part.strip()]
        elif line.startswith("x509 "):
            if line.startswith("x509 notAfter="):
                values["notAfter"] = line.split("=", 1)[1]
            else:
                errors.append(line[5:])
        elif key:
            values[key] = value.strip()
    now = dt.datetime.fromtimestamp(int(values.get("now") or 0), dt.UTC)
    key_mode, _, key_owner = values.get("key", "absent").partition(" ")
    not_after = _parse_openssl_date(values["notAfter"]) if "notAfter" in values else None
    certpub, keypub = values.get("certpub", ""), values.get("keypub", "")
    matches = None
    if certpub or keypub:
        matches = certpub == keypub and certpub not in ("", _EMPTY_SHA256)
    return CertState(now=now, present=values.get("cert") == "present", key_present=key_mode != "absent",
                     key_mode=key_mode if key_mode != "absent" else "", key_owner=key_owner, not_after=not_after,
                     names=tuple(names), key_matches=matches, server=values.get("server"),
                     error="; ".join(errors))


def _parse_openssl_date(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Decision:
    """What to do about one certificate."""

    action: str  # none | issue | renew | fail
    reason: str
    ready: bool  # a certificate nginx can load is in place (the HTTPS server may be rendered)
    warnings: tuple[str, ...] = field(default_factory=tuple)


def plan_certificate(wanted: Wanted, state: CertState, *, directory: str, warn_days: int,
                     host: str) -> Decision:
    """Decide what one certificate needs (pure: the unit tests' table)."""
    where = f"{host}: {wanted.name}"
    if not state.present or not state.key_present:
        missing = wanted.certificate if not state.present else wanted.key
        if wanted.mode == "manual":
            return Decision("fail", f"{where}: {missing} does not exist on the host; nothing was changed\n"
                                    "fix: put the certificate (full chain) and its key there, or correct the paths",
                            ready=False)
        return Decision("issue", "no certificate yet", ready=False)
    if state.not_after is None:
        detail = state.error or "openssl could not read its expiry"
        if wanted.mode == "manual":
            return Decision("fail", f"{where}: {wanted.certificate} is not a readable PEM certificate ({detail})",
                            ready=False)
        return Decision("issue", f"the certificate is unreadable ({detail})", ready=False)
    if state.key_matches is not True:
        if wanted.mode == "manual":
            return Decision("fail", f"{where}: the key {wanted.key} does not match the certificate "
                                    f"{wanted.certificate} (their public keys differ); nginx was not touched\n"
                                    "fix: give the key that belongs to this certificate", ready=False)
        return Decision("issue", "the key does not match the certificate", ready=False)
    warnings: list[str] = []
    date = state.not_after.strftime("%Y-%m-%d %H:%M UTC")
    left = state.not_after - state.now
    days = left.days
    expiring = left <= dt.timedelta(days=warn_days)
    if expiring:
        when = f"expired on {date}" if left.total_seconds() <= 0 else f"expires on {date} ({days} days left)"
        warnings.append(f"{where}: certificate {when}")
    if wanted.mode == "manual":
        uncovered = [n for n in wanted.names if not any(_covers(pattern, n) for pattern in state.names)]
        if uncovered:
            warnings.append(f"{where}: certificate {wanted.certificate} does not cover {', '.join(uncovered)}")
        return Decision("none", "in place" + (f", {warnings[0].split(': certificate ')[1]}" if expiring else ""),
                        ready=True, warnings=tuple(warnings))
    if set(wanted.names) != set(state.names):
        added = sorted(set(wanted.names) - set(state.names))
        dropped = sorted(set(state.names) - set(wanted.names))
        change = "; ".join(part for part in (f"adds {', '.join(added)}" if added else "",
                                             f"drops {', '.join(dropped)}" if dropped else "") if part)
        return Decision("issue", f"names changed ({change})", ready=True, warnings=tuple(warnings))
    if state.server and state.server != directory:
        return Decision("issue", f"issued by {state.server}, now {directory}", ready=True, warnings=tuple(warnings))
    if expiring:
        return Decision("renew", f"due: {warnings[0].split(': certificate ')[1]}", ready=True,
                        warnings=tuple(warnings))
    return Decision("none", f"valid until {date}", ready=True)


def _covers(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest.lower() == pattern[2:].lower()
    return pattern.lower() == name.lower()


def certbot_command(wanted: Wanted, args: dict[str, Any]) -> str:
    """``certbot certonly --webroot`` for one ACME certificate (nginx keeps running)."""
    words = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--webroot", "--webroot-path",
             args["webroot"], "--cert-name", wanted.name, "--server", args["directory"], "--force-renewal",
             "--deploy-hook", args["reload_command"], "--config-dir", args["certbot_dir"]]
    for name in wanted.names:
        words += ["-d", name]
    words += ["--email", args["email"], "--no-eff-email"] if args["email"] else ["--register-unsafely-without-email"]
    env = f"REQUESTS_CA_BUNDLE={quote(args['ca_bundle'])} " if args["ca_bundle"] else ""
    return env + " ".join(quote(word) for word in words)


def _key_fix(key: str) -> str:
    """chmod 600 / chown root of the key file (through certbot's live link), only where needed."""
    q = quote(key)
    return (f'_pv_key=$(readlink -f {q})\n'
            f'[ "$(stat -c %a:%U "$_pv_key")" = 600:root ] || '
            f'{{ chown root:root "$_pv_key" && chmod 600 "$_pv_key"; }}\n')


def _ca_error(result: CommandResult) -> str:
    """certbot's own account of the failure (the CA's problem report), without the generic help lines."""
    lines = [line for line in (result.stderr.strip() or result.stdout.strip()).splitlines()
             if line.strip() and not line.startswith(("Ask for help", "Saving debug log", "See the logfile"))]
    return "\n".join(lines[-15:])


class Certificate(Module):
    """A site's TLS certificate: issued/renewed by certbot (tls: acme) or the operator's, checked (tls: manual).

    name: the site (ACME certificate name; its main host name)
    mode: acme | manual | off (YAML false is off)
    domains: the site's extra domains (names, or mappings with domain, tls, ssl_certificate, ssl_certificate_key)
    certificate, key: tls manual: paths on the host of the certificate (full chain) and its key
    email: ACME account email (none: registered without one)
    directory: the ACME CA's directory URL (default Let's Encrypt production)
    ca_bundle: a PEM file on the host the ACME client trusts for the directory (private CAs)
    webroot: the directory nginx serves /.well-known/acme-challenge/ from
    certbot_dir: certbot's configuration directory (default /etc/letsencrypt)
    warn_days: warn about (and renew) certificates expiring within this many days (default 20)
    issue: false reports the plan only; true issues or renews where the plan says so
    reload_command: certbot's deploy hook after a renewal (default: service nginx reload)
    """

    name = "certificate"
    args: ClassVar[dict[str, Arg]] = {
        "name": Arg(str, required=True),
        "mode": Arg(object, default="off"),
        "domains": Arg(list, default=[]),
        "certificate": Arg(str, default=""),
        "key": Arg(str, default=""),
        "email": Arg(str, default=""),
        "directory": Arg(str, default="https://acme-v02.api.letsencrypt.org/directory"),
        "ca_bundle": Arg(str, default=""),
        "webroot": Arg(str, default="/var/www/acme"),
        "certbot_dir": Arg(str, default="/etc/letsencrypt"),
        "warn_days": Arg(int, default=20),
        "issue": Arg(bool, default=False),
        "reload_command": Arg(str, default="service nginx reload"),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if args["warn_days"] < 0:
            raise ArgumentError("certificate: warn_days must be 0 or more")
        wanted = _wanted(args)
        if any(w.mode == "acme" for w in wanted) and not _text(args["directory"]).startswith("https://"):
            raise ArgumentError(f"site {args['name']}: acme_directory must be an https:// URL, "
                                f"got {args['directory']!r}")

    def facts(self, args: dict[str, Any]) -> CertificateStates | None:
        wanted = _wanted(args)
        return CertificateStates(tuple(wanted)) if wanted else None

    def plan(self, args: dict[str, Any], facts: list[CertState] | None, ctx: PlanContext) -> Plan:
        wanted = _wanted(args)
        args = {**args, **{key: _text(args[key]) for key in ("email", "ca_bundle", "directory")}}
        site = args["name"]
        if not wanted or facts is None:
            return Plan(f"{site}: tls off", skipped=True,
                        data={"ready": False, "acme": False, "action": "none", "warnings": []})
        decisions = [plan_certificate(w, s, directory=args["directory"], warn_days=args["warn_days"], host=ctx.host)
                     for w, s in zip(wanted, facts, strict=True)]
        warnings = [warning for decision in decisions for warning in decision.warnings]
        # ready: the site's own certificate (the one carrying its name) is in place, so nginx serves
        # the site over HTTPS; a domain's own certificate does not count.
        mode = normalize_mode(args["mode"])
        own = [w.name == site and w.mode == mode for w in wanted]
        ready = any(d.ready for d, is_own in zip(decisions, own, strict=True) if is_own)
        due = [(w, d) for w, d in zip(wanted, decisions, strict=True) if d.action in ("issue", "renew")]
        action = "issue" if any(d.action == "issue" for _, d in due) else ("renew" if due else "none")
        data: dict[str, Any] = {"ready": ready, "acme": any(w.mode == "acme" for w in wanted), "action": action,
                                "certificates": [w.certificate for w in wanted]}
        refused = [d.reason for d in decisions if d.action == "fail"]
        if refused:
            return Plan(error="\n".join(refused), data={**data, "warnings": warnings})
        summary = "; ".join(f"{w.name} ({w.mode}): {d.reason}" for w, d in zip(wanted, decisions, strict=True))
        if not args["issue"]:
            # Only the plan: the deploy's later tasks act on it. Warnings are reported here, once.
            return Plan(summary, data={**data, "warnings": warnings})
        # Keys not mode 600 / root are fixed too (a due certificate's after certbot, in its own step).
        loose = [w for w, s in zip(wanted, facts, strict=True)
                 if s.key_present and (s.key_mode, s.key_owner) != ("600", "root")]
        if not due and not loose:
            return Plan(summary, data=data)
        todo = [f"would {d.action} {w.name} ({', '.join(w.names)}): {d.reason}" for w, d in due]
        todo += [f"would make {w.key} mode 600, owned by root" for w in loose]
        steps = [_issue_step(cert, decision, args, ctx.host, data) for cert, decision in due]
        steps += [_key_fix_step(cert) for cert in loose if cert not in [w for w, _ in due]]
        return _chain(steps, [], check_msg="; ".join(todo), data=data,
                      done_data={**data, "ready": any(own), "action": "none"})


@dataclass(frozen=True)
class CertificateStates(Fact[list[CertState]]):
    """Each wanted certificate's state, in order (one ``pv_cert`` section each)."""

    wanted: tuple[Wanted, ...]

    def command(self) -> str:
        lines = [_PROBE_FN]
        for index, cert in enumerate(self.wanted):
            lines.append(f"echo {quote(_SECTION + str(index))}")
            lines.append(f"pv_cert {quote(cert.certificate)} {quote(cert.key)} {quote(cert.renewal_conf)}")
        return "\n".join(lines) + "\n"

    def parse(self, output: str) -> list[CertState]:
        return _sections(output, len(self.wanted))


@dataclass(frozen=True)
class _Step:
    """One script of the change: what it does, and the task's result when it fails."""

    script: str
    done: str
    failure: Callable[[CommandResult], TaskResult]
    timeout: float | None = None


def _issue_step(cert: Wanted, decision: Decision, args: dict[str, Any], host: str, data: dict[str, Any]) -> _Step:
    """certbot for one due certificate, then its key's mode; a failure keeps what nginx serves."""
    kept = "the current certificate is kept" if decision.ready else "there is no certificate yet (HTTP only)"

    def failure(result: CommandResult) -> TaskResult:
        return TaskResult.failed(
            f"{host}: {args['name']}: certbot could not {decision.action} the certificate for "
            f"{', '.join(cert.names)} from {args['directory']} ({kept}):\n{_ca_error(result)}",
            **data, rc=result.rc)

    verb = "renewed" if decision.action == "renew" else "issued"
    return _Step(certbot_command(cert, args) + " || exit $?\n" + _key_fix(cert.key),
                 f"{verb} {cert.name} ({', '.join(cert.names)})", failure, timeout=600)


def _key_fix_step(cert: Wanted) -> _Step:
    return _Step(_key_fix(cert.key), f"{cert.key} mode 600, owned by root",
                 lambda result: TaskResult.from_command(f"making {cert.key} mode 600, owned by root", result))


def _chain(steps: list[_Step], done: list[str], *, check_msg: str, data: dict[str, Any],
           done_data: dict[str, Any]) -> Plan:
    """The steps one script after the other (each only once the previous one succeeded)."""
    step, rest = steps[0], steps[1:]

    def then(result: CommandResult, _ctx: PlanContext) -> Plan | TaskResult:
        if not result.ok:
            return step.failure(result)
        finished = [*done, step.done]
        if not rest:
            return TaskResult.changed("; ".join(finished), **done_data)
        return _chain(rest, finished, check_msg=check_msg, data=data, done_data=done_data)

    return Plan(step.done, script=step.script, timeout=step.timeout, check_msg=check_msg, data=data, then=then)


def _text(value: Any) -> str:
    """An optional string argument: an unset inventory value (null) renders as "None"."""
    return "" if value is None or str(value) in ("None", "none") else str(value)


def _wanted(args: dict[str, Any]) -> list[Wanted]:
    mode = normalize_mode(args["mode"])
    if mode == "off" and not args["domains"]:
        return []
    return site_certificates({**args, "mode": mode, "certificate": _text(args["certificate"]),
                              "key": _text(args["key"])})


def _sections(text: str, count: int) -> list[CertState]:
    parts = text.split(_SECTION)
    states: list[CertState] = []
    for index in range(count):
        body = next((p.split("\n", 1)[1] if "\n" in p else "" for p in parts[1:]
                     if p.split("\n", 1)[0].strip() == str(index)), "")
        states.append(parse_state(body))
    return states
