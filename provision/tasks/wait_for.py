"""``wait_for`` and ``http_check``: bounded waits run on the host, in one call each.

Both loop on the host (no round trip per attempt) and stop at a deadline; a failure says what
was waited for, for how long, and the last error seen. They change nothing (``readonly``), and
in check mode they are skipped: what they wait for may be what check mode did not start.

A fresh Debian has no netcat: a port on this host is looked up in ``/proc/net/tcp{,6}``
(listening sockets on a wildcard or loopback address), another host's port is tried with
bash's ``/dev/tcp`` under ``timeout``. ``http_check`` uses curl when present, else Python's
urllib; the URL and headers go through a mode-600 file or the environment, never ``ps``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ArgumentError
from .base import Arg, CommandResult, Module, TaskContext, TaskResult
from .shell import quote

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")
_HOST_RE = re.compile(r"^[A-Za-z0-9.:_-]+$")
BODY_LIMIT = 4096

# Listening (st 0A) TCP sockets on port $1 bound to a wildcard or loopback address.
_LISTENING = r"""pv_listening() {
  awk -v p="$(printf '%04X' "$1")" '$4 == "0A" { split($2, a, ":");
    if (a[2] == p && (a[1] ~ /^0+$/ || a[1] ~ /7F$/ || a[1] == "00000000000000000000000001000000")) f = 1 }
    END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
"""


def wait_condition(args: dict[str, Any]) -> tuple[str, str]:
    """(shell test that is true when the wait is over, what is waited for in words)."""
    state = args.get("state") or "started"
    wanted = state in ("started", "present")
    port, path, host = args.get("port"), args.get("path"), args.get("host") or "127.0.0.1"
    if port is not None:
        if host in _LOCAL_HOSTS:
            test = f"pv_listening {int(port)}"
        else:
            target = quote(f"</dev/tcp/{host}/{int(port)}")
            test = f'timeout 3 bash -c {target} 2>"$_pv_errf"'
        what = f"port {port} on {host} to be {'open' if wanted else 'closed'}"
        return (test if wanted else f"! {test}"), what
    if path is not None:
        q = quote(path)
        regex = args.get("search_regex")
        if regex and wanted:
            return f"[ -f {q} ] && grep -Eq -- {quote(regex)} {q}", f"{path} to contain /{regex}/"
        return (f"[ -e {q} ]" if wanted else f"[ ! -e {q} ]"), f"{path} to be {'present' if wanted else 'absent'}"
    return "false", "the timeout to pass"


def wait_script(args: dict[str, Any]) -> str:
    """The bounded loop; stdout ends with ``elapsed N``; exit 0 when met, 1 at the deadline."""
    test, _ = wait_condition(args)
    timeout, delay, sleep = int(args.get("timeout") or 300), int(args.get("delay") or 0), int(args.get("sleep") or 1)
    if args.get("port") is None and args.get("path") is None:
        return f"sleep {delay + timeout}\necho elapsed {delay + timeout}\n"
    return _LISTENING + "\n".join([
        '_pv_errf=$(mktemp); trap \'rm -f "$_pv_errf"\' EXIT',
        "_pv_start=$(date +%s)",
        f"_pv_end=$((_pv_start + {timeout}))",
        f"sleep {delay}" if delay else ":",
        "while :; do",
        f"  if {test}; then echo elapsed $(( $(date +%s) - _pv_start )); exit 0; fi",
        '  if [ "$(date +%s)" -ge "$_pv_end" ]; then',
        '    echo elapsed $(( $(date +%s) - _pv_start )); cat "$_pv_errf" >&2; exit 1',
        "  fi",
        f"  sleep {sleep}",
        "done",
    ]) + "\n"  # fmt: skip


def _elapsed(result: CommandResult) -> int | None:
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("elapsed "):
            return int(line.split()[1])
    return None


class WaitFor(Module):
    """Wait on the host until a port opens/closes or a file appears/disappears (or contains a regex).

    host: address whose port to check (default 127.0.0.1: this host's listening sockets)
    port: TCP port
    path: file to check (instead of port)
    state: started|present (default) or stopped|absent
    search_regex: with path: wait until the file contains this extended regex (grep -E)
    timeout: seconds to wait at most (default 300); with neither port nor path, just sleep that long
    delay: seconds to wait before the first check
    sleep: seconds between checks (default 1)
    """

    name = "wait_for"
    supports_check = False
    args = {
        "host": Arg(str, default="127.0.0.1"),
        "port": Arg(int),
        "path": Arg(str),
        "state": Arg(str, default="started", choices=("started", "stopped", "present", "absent")),
        "search_regex": Arg(str),
        "timeout": Arg(int, default=300),
        "delay": Arg(int, default=0),
        "sleep": Arg(int, default=1),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        if args.get("port") is not None and args.get("path") is not None:
            raise ArgumentError("wait_for: give port or path, not both")
        if args.get("port") is not None and not 0 < args["port"] < 65536:
            raise ArgumentError(f"wait_for: port {args['port']} is out of range")
        if not _HOST_RE.match(args.get("host") or "127.0.0.1"):
            raise ArgumentError(f"wait_for: host {args['host']!r} is not a host name or address")
        if args.get("search_regex") and args.get("path") is None:
            raise ArgumentError("wait_for: search_regex needs path (searching a port's banner is not supported)")
        for name in ("timeout", "delay", "sleep"):
            if args.get(name) is not None and args[name] < 0:
                raise ArgumentError(f"wait_for: {name} must not be negative")

    def check_mode_msg(self, args: dict[str, Any]) -> str:
        return f"would wait for {wait_condition(args)[1]}"

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        _, what = wait_condition(args)
        timeout = int(args.get("timeout") or 300)
        bound = timeout + int(args.get("delay") or 0) + 30
        result = ctx.run(wait_script(args), timeout=bound, readonly=True)
        elapsed = _elapsed(result)
        data = {"elapsed": elapsed, "port": args.get("port"), "path": args.get("path"), "state": args.get("state")}
        if result.ok:
            return TaskResult.ok(f"waited {elapsed}s for {what}", **data)
        if result.rc == 1 and elapsed is not None:
            last = result.stderr.strip().splitlines()[-1:] or [""]
            detail = f" (last error: {last[0]})" if last[0] else ""
            # The timeout the user set, not the host's whole-second clock (which can read one more).
            return TaskResult.failed(f"timed out after {timeout}s waiting for {what}{detail}", **data)
        return TaskResult.from_command(f"waiting for {what}", result)


_CURL = r"""pv_http_try() {
  _pv_code=$(curl -sS -K "$_pv_cfg" -o "$_pv_body" -w '%{http_code}' 2>"$_pv_errf") || _pv_code=000
}
"""

_PYTHON = r"""pv_http_try() {
  _pv_code=$(python3 - 2>"$_pv_errf" <<'PVPY'
import json, os, ssl, sys, urllib.error, urllib.request
req = urllib.request.Request(os.environ["PV_URL"], method=os.environ["PV_METHOD"])
for name, value in json.loads(os.environ["PV_HEADERS"]).items():
    req.add_header(name, value)
ctx = None if os.environ["PV_VERIFY"] == "1" else ssl._create_unverified_context()
try:
    resp = urllib.request.urlopen(req, timeout=float(os.environ["PV_TIMEOUT"]), context=ctx)
except urllib.error.HTTPError as err:
    resp = err
except Exception as err:
    print(err, file=sys.stderr)
    print("000")
    sys.exit(0)
with open(os.environ["PV_BODY"], "wb") as out:
    out.write(resp.read())
print(resp.status if hasattr(resp, "status") else resp.code)
PVPY
) || _pv_code=000
}
"""


def _curl_config(args: dict[str, Any]) -> str:
    """curl's -K config: URL, method, headers, timeout (kept out of the command line)."""

    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = [f"url = {q(args['url'])}", f"request = {q(args.get('method') or 'GET')}"]
    lines += [f"header = {q(f'{k}: {v}')}" for k, v in (args.get("headers") or {}).items()]
    lines.append(f"max-time = {int(args.get('timeout') or 10)}")
    if not args.get("validate_certs", True):
        lines.append("insecure")
    return "\n".join(lines) + "\n"


def http_script(args: dict[str, Any]) -> str:
    """The retry loop on the host; prints ``key=value`` lines, ``body:``, then the last body (truncated)."""
    statuses = " ".join(str(s) for s in http_statuses(args.get("status")))
    attempts = int(args.get("retries") or 0) + 1
    contains = args.get("body_contains")
    body_test = f'grep -qF -- {quote(contains)} "$_pv_body"' if contains else "true"
    env = {
        "PV_URL": args["url"],
        "PV_METHOD": args.get("method") or "GET",
        "PV_HEADERS": json.dumps({str(k): str(v) for k, v in (args.get("headers") or {}).items()}),
        "PV_TIMEOUT": str(int(args.get("timeout") or 10)),
        "PV_VERIFY": "1" if args.get("validate_certs", True) else "0",
    }
    return "\n".join([
        "umask 077",
        '_pv_body=$(mktemp); _pv_cfg=$(mktemp); _pv_errf=$(mktemp)',
        'trap \'rm -f "$_pv_body" "$_pv_cfg" "$_pv_errf"\' EXIT',
        "export PV_BODY=\"$_pv_body\" " + " ".join(f"{k}={quote(v)}" for k, v in env.items()),
        f"printf '%s' {quote(_curl_config(args))} > \"$_pv_cfg\"",
        "if command -v curl >/dev/null 2>&1; then",
        _CURL,
        "elif command -v python3 >/dev/null 2>&1; then",
        _PYTHON,
        "else echo 'neither curl nor python3 is installed on the host' >&2; exit 2; fi",
        "_pv_start=$(date +%s%N); _pv_n=0; _pv_ok=0",
        "while :; do",
        '  _pv_n=$((_pv_n + 1)); : > "$_pv_body"; pv_http_try',
        f'  case " {statuses} " in *" $_pv_code "*) if {body_test}; then _pv_ok=1; break; fi;; esac',
        f'  if [ "$_pv_n" -ge {attempts} ]; then break; fi',
        f"  sleep {int(args.get('delay') or 1)}",
        "done",
        'echo "status=$_pv_code"; echo "attempts=$_pv_n"',
        'echo "elapsed_ms=$(( ($(date +%s%N) - _pv_start) / 1000000 ))"',
        'echo "error=$(tail -n 1 "$_pv_errf")"',
        f'echo "body:"; head -c {BODY_LIMIT} "$_pv_body"',
        '[ "$_pv_ok" = 1 ]',
    ]) + "\n"  # fmt: skip


def http_statuses(value: Any) -> list[int]:
    """The accepted status codes from an int, a list, or "200,301"."""
    items = value if isinstance(value, list | tuple) else str(200 if value is None else value).split(",")
    try:
        return [int(str(item).strip()) for item in items]
    except ValueError:
        raise ArgumentError(f"http_check: status must be an integer or a list of them, got {value!r}") from None


def parse_http_output(stdout: str) -> dict[str, Any]:
    """The ``key=value`` lines and the body printed by ``http_script``."""
    head, _, body = stdout.partition("body:\n")
    fields = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    code = fields.get("status", "000")
    return {
        "status": int(code) if code.isdigit() else 0,
        "attempts": int(fields.get("attempts", "0") or 0),
        "elapsed": int(fields.get("elapsed_ms", "0") or 0) / 1000,
        "error": fields.get("error", ""),
        "body": body,
    }


class HttpCheck(Module):
    """Check from the host that a URL answers with the expected status (and body), with retries.

    url: the URL to request (from the host itself, e.g. http://127.0.0.1/ with headers: {Host: site})
    status: expected status code, or a list of them (default 200)
    headers: mapping of request headers
    body_contains: the body must contain this text
    method: request method (default GET)
    timeout: seconds per request (default 10)
    retries: further attempts after a failed one (default 0)
    delay: seconds between attempts (default 1)
    validate_certs: verify TLS certificates (default true)
    """

    name = "http_check"
    supports_check = False
    args = {
        "url": Arg(str, required=True),
        "status": Arg(object, default=200),
        "headers": Arg(dict),
        "body_contains": Arg(str),
        "method": Arg(str, default="GET"),
        "timeout": Arg(int, default=10),
        "retries": Arg(int, default=0),
        "delay": Arg(int, default=1),
        "validate_certs": Arg(bool, default=True),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        http_statuses(args.get("status"))
        if not re.match(r"^https?://", args["url"]):
            raise ArgumentError(f"http_check: url {args['url']!r} must start with http:// or https://")
        for name in ("timeout", "retries", "delay"):
            if args.get(name) is not None and args[name] < 0:
                raise ArgumentError(f"http_check: {name} must not be negative")

    def check_mode_msg(self, args: dict[str, Any]) -> str:
        return f"would check {args['url']}"

    def run(self, args: dict[str, Any], ctx: TaskContext, state: str | None) -> TaskResult:
        url = args["url"]
        attempts = int(args.get("retries") or 0) + 1
        bound = attempts * (int(args.get("timeout") or 10) + int(args.get("delay") or 1) + 5) + 30
        result = ctx.run(http_script(args), timeout=bound, readonly=True)
        if result.rc not in (0, 1):
            return TaskResult.from_command(f"http_check {url}", result)
        data = parse_http_output(result.stdout)
        if result.ok:
            return TaskResult.ok(f"{url} answered {data['status']} in {data['elapsed']:.2f}s", **data)
        wanted = "/".join(map(str, http_statuses(args.get("status"))))
        if args.get("body_contains"):
            wanted += f" with a body containing {args['body_contains']!r}"
        got = f"status {data['status']}" if data["status"] else "no answer"
        last = f" (last error: {data['error']})" if data["error"] else ""
        return TaskResult.failed(
            f"{url} did not answer {wanted} after {data['attempts']} attempt(s) in {data['elapsed']:.1f}s: "
            f"got {got}{last}",
            **data,
        )
