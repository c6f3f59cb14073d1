"""Draining an app host from the load balancer: its ``server`` line in the upstreams file marked ``down``.

The ``lb`` host renders every app host's upstream ``server`` line into one file of its own
(``lb_upstream_file``, default ``/etc/nginx/conf.d/frappe-upstreams.conf``). Draining a host is
adding ``down`` to its lines, ``nginx -t``, a graceful reload, and waiting (bounded) until the old
nginx workers — which may still have requests on their way to that host — have finished. Putting
it back removes ``down`` the same way. The file is replaced atomically and the old text is put
back when nginx refuses the new one. A drain that would leave no server up is refused.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from shlex import quote
from typing import Any

DEFAULT_UPSTREAMS_FILE = "/etc/nginx/conf.d/frappe-upstreams.conf"


def mark_server(text: str, addresses: Iterable[str], down: bool,
                max_fails: int | None = None) -> tuple[str, int, int]:
    """``text`` with the ``server`` lines of ``addresses`` marked (or unmarked) ``down``.

    With ``max_fails`` (the deploy's ``lb_max_fails``), every server line gets that value, except a
    server left alone up in its upstream, which gets ``max_fails=0``: nginx would otherwise mark it
    failed after one slow or refused request and, with every other server down, answer 502 for
    ``fail_timeout`` seconds. So a rolling update's one serving host is never taken out.

    Returns the new text, how many lines name one of the addresses, and how many ``server`` lines
    are up afterwards (in every upstream of the file together).
    """
    wanted = {a for a in addresses if a}
    line_re = re.compile(r"^(?P<head>\s*server\s+)(?P<addr>[^\s;]+)(?P<params>[^;]*);(?P<tail>.*)$")
    matched = 0
    # pass 1: each line, or for a server line [head, address, params, tail, ending, block]
    rows: list[str | list[Any]] = []
    block = 0
    up_in: dict[int, int] = {}
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if re.match(r"^\s*upstream\s", body):
            block += 1
        found = line_re.match(body)
        if found is None:
            rows.append(line)
            continue
        address = found.group("addr")
        if address.startswith("["):
            host = address[1:].split("]")[0]
        else:
            host = address.split(":")[0] if address.count(":") == 1 else address
        params = [p for p in found.group("params").split() if p]
        named = re.search(r"#\s*app:(\S+)", found.group("tail"))  # the deploy's `# app:<inventory name>`
        if host in wanted or address in wanted or (named is not None and named.group(1) in wanted):
            matched += 1
            params = [p for p in params if p != "down"] + (["down"] if down else [])
        if "down" not in params and "backup" not in params:
            up_in[block] = up_in.get(block, 0) + 1
        rows.append([found.group("head"), address, params, found.group("tail"), ending, block])
    out: list[str] = []
    for row in rows:
        if isinstance(row, str):
            out.append(row)
            continue
        head, address, params, tail, ending, in_block = row
        if max_fails is not None and any(p.startswith("max_fails=") for p in params):
            lone = "down" not in params and up_in.get(in_block, 0) == 1
            params = [f"max_fails={0 if lone else max_fails}" if p.startswith("max_fails=") else p for p in params]
        out.append(head + address + "".join(" " + p for p in params) + ";" + tail + ending)
    return "".join(out), matched, sum(up_in.values())


_DRAIN = r'''
import json, os, subprocess, sys, time
p = json.loads(sys.argv[1])
path = p["file"]

def sh(command):
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    return out.returncode, (out.stderr or out.stdout).strip()[-600:]

def shutting_down():
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    count += b"worker process is shutting down" in fh.read()
            except OSError:
                pass
    return count

try:
    old = open(path).read()
except OSError as exc:
    raise SystemExit("cannot read the load balancer's upstreams file %s: %s" % (path, exc))
new, matched, up = mark_server(old, p["addresses"], p["down"], p.get("max_fails"))
if not matched:
    raise SystemExit("no server line for %s (%s) in %s" % (p["host"], ", ".join(p["addresses"]), path))
if p["down"] and up < 1:
    raise SystemExit("draining %s would leave no app server up in %s" % (p["host"], path))
if new != old:
    tmp = path + ".provision-tmp"
    with open(tmp, "w") as fh:
        fh.write(new)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    rc, err = sh("nginx -t -q")
    if rc != 0:
        with open(tmp, "w") as fh:
            fh.write(old)
        os.replace(tmp, path)
        raise SystemExit("nginx refused the drained upstreams, the old file is back: " + err)
    rc, err = sh("systemctl reload nginx 2>/dev/null || service nginx reload || nginx -s reload")
    if rc != 0:
        raise SystemExit("reloading nginx failed: " + err)
# the old workers finish what they already sent to the host (bounded)
time.sleep(0.5)
deadline = time.monotonic() + p["settle"]
while shutting_down() and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"host": p["host"], "down": p["down"], "lines": matched, "up": up, "changed": new != old,
                  "left_shutting_down": shutting_down()}))
'''


def drain_script(upstreams_file: str, host: str, addresses: Iterable[str], *, down: bool,
                 settle: float = 60.0, max_fails: int | None = None) -> str:
    """(root, on the lb) mark ``host``'s server lines down (or up), validate, reload, let old workers finish."""
    params = {"file": upstreams_file, "host": host, "addresses": sorted(set(addresses)), "down": down,
              "settle": settle, "max_fails": max_fails}
    imports = "from __future__ import annotations\nimport re\nfrom typing import Any\n"
    source = imports + inspect.getsource(mark_server) + _DRAIN
    return f"python3 - {quote(json.dumps(params))} <<'PV_PY'\n{source.strip()}\nPV_PY\n"
