"""Downtime as the sites' users see it: a sampler on the host asks every site's ping through nginx
four times a second for the whole update and counts the seconds it got no answer (no response,
or anything but 200 and the 503 of maintenance mode) and the seconds it saw maintenance.

It runs detached (``setsid``) so a slow SSH channel never skews it, stops when told (a stop file),
and on its own after ``MAX_SECONDS`` so a lost run never leaves it behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from shlex import quote

from .hostops import last_json
from .plan import SiteTarget

MAX_SECONDS = 4 * 3600
INTERVAL = 0.25

_SAMPLER = r'''
import http.client, json, os, socket, ssl, sys, time
params = json.loads(sys.argv[1])
out, stop = params["out"], params["stop"]
stats = {s["name"]: {"down_s": 0.0, "maintenance_s": 0.0, "samples": 0, "failed": 0} for s in params["sites"]}
started = last = time.monotonic()

def status(site):
    try:
        if site["tls"]:
            raw = socket.create_connection(("127.0.0.1", site["port"]), 2)
            conn = http.client.HTTPSConnection(site["name"], site["port"], timeout=2,
                                               context=ssl._create_unverified_context())
            conn.sock = conn._context.wrap_socket(raw, server_hostname=site["name"])
        else:
            conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=2)
        conn.request("GET", "/api/method/ping", headers={"Host": site["name"]})
        code = conn.getresponse().status
        conn.close()
        return code
    except (OSError, http.client.HTTPException):
        return 0

def write(final):
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"final": final, "seconds": round(time.monotonic() - started, 2), "sites": stats}, fh)
    os.replace(tmp, out)

while not os.path.exists(stop) and time.monotonic() - started < params["max"]:
    now = time.monotonic()
    for site in params["sites"]:
        code = status(site)
        entry = stats[site["name"]]
        entry["samples"] += 1
        span = min(time.monotonic() - last, 2.5)
        if code == 503:
            entry["maintenance_s"] += span
        elif code != 200:
            entry["down_s"] += span
            entry["failed"] += 1
    last = now
    write(False)
    time.sleep(max(0.0, params["interval"] - (time.monotonic() - now)))
write(True)
'''


@dataclass(frozen=True)
class SiteDowntime:
    site: str
    down_s: float
    maintenance_s: float
    failed: int
    samples: int


def start_script(work_dir: str, run_id: str, sites: Iterable[SiteTarget]) -> str:
    """(root) start the sampler, detached; its files are ``<work_dir>/downtime-<run_id>.*``."""
    reachable = [{"name": s.name, "port": s.port, "tls": s.tls} for s in sites if s.port]
    base = f"{work_dir}/downtime-{run_id}"
    params = {"out": f"{base}.json", "stop": f"{base}.stop", "max": MAX_SECONDS, "interval": INTERVAL,
              "sites": reachable}
    return (
        f"mkdir -p {quote(work_dir)}\n"
        f"cat > {quote(base + '.py')} <<'PV_PY'\n{_SAMPLER.strip()}\nPV_PY\n"
        f"rm -f {quote(base + '.stop')}\n"
        f"setsid nohup python3 {quote(base + '.py')} {quote(json.dumps(params))} >/dev/null 2>&1 < /dev/null &\n"
        "echo started\n"
    )


def stop_script(work_dir: str, run_id: str) -> str:
    """(root) stop the sampler, wait (bounded) for its final count, print it and clean up."""
    base = quote(f"{work_dir}/downtime-{run_id}")
    return (
        f"touch {base}.stop\n"
        f"for i in $(seq 1 40); do grep -q '\"final\": true' {base}.json 2>/dev/null && break; sleep 0.25; done\n"
        f"cat {base}.json 2>/dev/null; echo\n"
        f"rm -f {base}.py {base}.stop {base}.json {base}.json.tmp\n"
    )


def parse_downtime(output: str) -> dict[str, SiteDowntime]:
    data = last_json(output) or {}
    sites = data.get("sites") or {}
    return {name: SiteDowntime(name, round(float(s.get("down_s", 0)), 2), round(float(s.get("maintenance_s", 0)), 2),
                               int(s.get("failed", 0)), int(s.get("samples", 0)))
            for name, s in sites.items()}
