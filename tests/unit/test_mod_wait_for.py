"""wait_for and http_check: conditions, scripts, output parsing, check mode, arguments."""

from __future__ import annotations

from typing import Any

import pytest

from provision.apply import execute_module
from provision.errors import ArgumentError
from provision.tasks.base import CommandResult
from provision.tasks.wait_for import HttpCheck, WaitFor, http_statuses, parse_http_output, wait_condition
from tests.unit._modrun import FakeContext, args_of

pytestmark = pytest.mark.unit


def wargs(raw: dict[str, Any]) -> dict[str, Any]:
    parsed = args_of(WaitFor, raw)
    WaitFor().check_args(parsed)
    return parsed


@pytest.mark.parametrize(
    ("raw", "test", "what"),
    [
        ({"port": 8000}, "pv_listening 8000", "port 8000 on 127.0.0.1 to be open"),
        ({"port": 8000, "host": "localhost", "state": "stopped"}, "! pv_listening 8000",
         "port 8000 on localhost to be closed"),
        ({"port": 3306, "host": "10.0.0.5"}, "timeout 3 bash -c '</dev/tcp/10.0.0.5/3306' 2>\"$_pv_errf\"",
         "port 3306 on 10.0.0.5 to be open"),
        ({"path": "/run/x.pid"}, "[ -e /run/x.pid ]", "/run/x.pid to be present"),
        ({"path": "/run/x.pid", "state": "absent"}, "[ ! -e /run/x.pid ]", "/run/x.pid to be absent"),
        ({"path": "/var/log/a", "search_regex": "ready|up"}, "[ -f /var/log/a ] && grep -Eq -- 'ready|up' /var/log/a",
         "/var/log/a to contain /ready|up/"),
    ],
)  # fmt: skip
def test_conditions(raw: dict[str, Any], test: str, what: str) -> None:
    assert wait_condition(wargs(raw)) == (test, what)


def test_wait_is_readonly_and_bounded() -> None:
    ctx = FakeContext(results=[CommandResult(0, "elapsed 4\n", "")])
    result = WaitFor().run(wargs({"port": 80, "timeout": 20, "delay": 2}), ctx, None)
    assert result.status == "ok" and result.msg == "waited 4s for port 80 on 127.0.0.1 to be open"
    [(script, _, readonly)] = ctx.calls
    assert readonly and "_pv_end=$((_pv_start + 20))" in script and "sleep 2" in script


def test_wait_timeout_message() -> None:
    ctx = FakeContext(results=[CommandResult(1, "elapsed 20\n", "bash: connect: Connection refused\n")])
    result = WaitFor().run(wargs({"port": 80, "host": "db1", "timeout": 20}), ctx, None)
    assert result.status == "failed"
    assert result.msg == "timed out after 20s waiting for port 80 on db1 to be open (last error: bash: connect: " \
        "Connection refused)"  # fmt: skip


def test_wait_only_sleeps_without_target() -> None:
    ctx = FakeContext(results=[CommandResult(0, "elapsed 3\n", "")])
    WaitFor().run(wargs({"timeout": 3}), ctx, None)
    assert ctx.calls[0][0] == "sleep 3\necho elapsed 3\n"


def test_check_mode_skips() -> None:
    ctx = FakeContext(check=True)
    assert execute_module(WaitFor(), wargs({"port": 80}), ctx, None).status == "skipped"
    assert execute_module(HttpCheck(), args_of(HttpCheck, {"url": "http://127.0.0.1/"}), ctx, None).status == "skipped"
    assert ctx.calls == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"port": 1, "path": "/x"}, "not both"),
        ({"port": 70000}, "out of range"),
        ({"port": 80, "host": "a;b"}, "not a host name"),
        ({"port": 80, "search_regex": "x"}, "needs path"),
        ({"path": "/x", "timeout": -1}, "must not be negative"),
        ({"path": "/x", "state": "drained"}, "must be one of"),
    ],
)
def test_wait_bad_arguments(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        wargs(raw)


@pytest.mark.parametrize(
    ("value", "want"), [(None, [200]), (204, [204]), ("200,301", [200, 301]), ([200, "302"], [200, 302])]
)
def test_statuses(value: Any, want: list[int]) -> None:
    assert http_statuses(value) == want


def test_parse_http_output() -> None:
    out = "status=503\nattempts=3\nelapsed_ms=2150\nerror=\nbody:\n<h1>down</h1>\nline2"
    assert parse_http_output(out) == {
        "status": 503, "attempts": 3, "elapsed": 2.15, "error": "", "body": "<h1>down</h1>\nline2",
    }  # fmt: skip


def hargs(raw: dict[str, Any]) -> dict[str, Any]:
    parsed = args_of(HttpCheck, raw)
    HttpCheck().check_args(parsed)
    return parsed


def test_http_secrets_stay_off_command_lines() -> None:
    ctx = FakeContext(results=[CommandResult(0, "status=200\nattempts=1\nelapsed_ms=5\nerror=\nbody:\nok", "")])
    raw = {"url": "http://127.0.0.1/api", "headers": {"Host": "site1.local", "Authorization": "token s3cret"}}
    result = HttpCheck().run(hargs(raw), ctx, None)
    assert result.status == "ok" and result.data["status"] == 200 and result.data["body"] == "ok"
    [(script, _, readonly)] = ctx.calls
    assert readonly
    curl_line = next(line for line in script.splitlines() if line.strip().startswith("_pv_code=$(curl"))
    assert "s3cret" not in curl_line and "127.0.0.1" not in curl_line
    assert 'header = "Authorization: token s3cret"' in script  # written to the mode-600 config file


def test_http_failure_message() -> None:
    out = "status=502\nattempts=4\nelapsed_ms=3500\nerror=\nbody:\nbad gateway"
    ctx = FakeContext(results=[CommandResult(1, out, "")])
    result = HttpCheck().run(hargs({"url": "http://127.0.0.1/", "status": [200, 301], "retries": 3,
                                    "body_contains": "Welcome"}), ctx, None)  # fmt: skip
    assert result.status == "failed"
    assert result.msg == (
        "http://127.0.0.1/ did not answer 200/301 with a body containing 'Welcome' after 4 attempt(s) in 3.5s: "
        "got status 502"
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"url": "ftp://x/"}, "http:// or https://"),
        ({"url": "http://x/", "status": "ok"}, "integer"),
        ({"url": "http://x/", "retries": -1}, "must not be negative"),
    ],
)
def test_http_bad_arguments(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ArgumentError, match=error):
        hargs(raw)
