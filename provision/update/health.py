"""The health gate: every site answers through nginx with the release's code, and the bench runs.

For each site, through nginx on the host (``Host`` header, or SNI for TLS sites): ``/api/method/ping``
answers ``pong``; the versions endpoint (``frappe.utils.change_log.get_versions``; when it needs a
login, ``/api/method/version`` for frappe) shows each app at the version of the release's code; the
login page (``/login``, else ``/``) answers 200 and so does every ``/assets/...`` file it references.
Every supervisor program of the bench is RUNNING. The gate retries for a bounded time and reports
every problem it still sees when that time is up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from shlex import quote

from .hostops import last_json
from .plan import SiteTarget

_GATE = r'''
import http.client, json, os, re, socket, ssl, subprocess, sys, time
params = json.loads(sys.argv[1])

def versions_of(release, apps):
    found = {}
    for app in apps:
        try:
            text = open(os.path.join(release, "apps", app, app, "__init__.py")).read()
        except OSError:
            continue
        match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
        if match:
            found[app] = match.group(1)
    return found

class TLS(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

def get(site, path):
    if site["tls"]:
        conn = TLS(site["name"], site["port"], timeout=10, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=10)
    try:
        conn.request("GET", path, headers={"Host": site["name"]})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()

def check_site(site, expected):
    problems = []
    status, body = get(site, "/api/method/ping")
    if status != 200 or "pong" not in body:
        return ["ping answered %s: %s" % (status, body[:120])]
    status, body = get(site, "/api/method/frappe.utils.change_log.get_versions")
    shown = {}
    if status == 200:
        try:
            shown = {app: str((info or {}).get("version", "")) for app, info in json.loads(body)["message"].items()}
        except (ValueError, KeyError, AttributeError):
            problems.append("versions endpoint answered something else: %s" % body[:120])
    elif status in (401, 403):
        status, body = get(site, "/api/method/version")
        try:
            shown = {"frappe": str(json.loads(body)["message"])} if status == 200 else {}
        except (ValueError, KeyError):
            shown = {}
    else:
        problems.append("versions endpoint answered %s" % status)
    for app, version in shown.items():
        if app in expected and version != expected[app]:
            problems.append("%s is at %s, the release has %s" % (app, version, expected[app]))
    status, page = get(site, "/login")
    if status == 404:
        status, page = get(site, "/")
    if status != 200:
        problems.append("login page answered %s" % status)
    else:
        for asset in sorted(set(re.findall(r"(?:src|href)=[\"'](/assets/[^\"'?#]+)", page))):
            code, _ = get(site, asset)
            if code != 200:
                problems.append("%s answered %s" % (asset, code))
    return problems

def check_supervisor():
    out = subprocess.run([params["supervisorctl"], "status"], capture_output=True, text=True, timeout=60)
    programs = [line.split()[:2] for line in out.stdout.splitlines() if line.strip()]
    mine = [p for p in programs if p and p[0].startswith(params["prefix"])]
    if not mine:
        return ["no supervisor program of the bench is known: %s" % (out.stdout + out.stderr).strip()[:200]]
    return ["%s is %s" % (name, state) for name, state in mine if state != "RUNNING"]

expected = versions_of(params["release"], params["apps"])
deadline = time.monotonic() + params["timeout"]
while True:
    report = {"sites": {}, "supervisor": check_supervisor(), "expected": expected}
    for site in params["sites"]:
        if not site["port"]:
            report["sites"][site["name"]] = []
            continue
        report["sites"][site["name"]] = check_site(site, expected)
    ok = not report["supervisor"] and not any(report["sites"].values())
    if ok or time.monotonic() > deadline:
        report["ok"] = ok
        print(json.dumps(report))
        break
    time.sleep(1)
'''


@dataclass(frozen=True)
class GateResult:
    """What the gate saw: problems per site and of supervisor (empty lists when healthy)."""

    ok: bool
    sites: dict[str, list[str]] = field(default_factory=dict)
    supervisor: list[str] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{site}: {'; '.join(problems)}" for site, problems in self.sites.items() if problems]
        if self.supervisor:
            lines.append("supervisor: " + "; ".join(self.supervisor))
        return "\n".join(lines) or "healthy"


def gate_script(*, release_path: str, apps: Iterable[str], sites: Iterable[SiteTarget], supervisorctl: str,
                bench_name: str, timeout: float) -> str:
    """(root) the gate as one host-side program; prints a JSON report."""
    params = {
        "release": release_path, "apps": list(apps), "supervisorctl": supervisorctl, "prefix": f"{bench_name}-",
        "timeout": timeout, "sites": [{"name": s.name, "port": s.port, "tls": s.tls} for s in sites],
    }
    return f"python3 - {quote(json.dumps(params))} <<'PV_PY'\n{_GATE.strip()}\nPV_PY\n"


def parse_gate(output: str, stderr: str = "") -> GateResult:
    data = last_json(output)
    if data is None:
        return GateResult(False, supervisor=[f"the health gate did not report: {(stderr or output).strip()[-300:]}"])
    return GateResult(bool(data.get("ok")), {k: list(v) for k, v in (data.get("sites") or {}).items()},
                      list(data.get("supervisor") or []), dict(data.get("expected") or {}))
