"""wait_for and http_check: the real modules on this machine against listeners on loopback."""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.tasks.wait_for import HttpCheck, WaitFor
from tests.unit._modrun import local_context, run_task

# Real sockets and an HTTP server on 127.0.0.1, started and stopped by the tests.
pytestmark = pytest.mark.integration


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host = self.headers.get("Host", "")
        code, body = (200, f"welcome to {host}") if self.path == "/" else (404, "not here")
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_local_port_open(listener: int) -> None:
    result = run_task(WaitFor, {"port": listener, "timeout": 5}, local_context())
    # The seconds waited depend on the machine's load: the message's shape is what is checked.
    assert result.status == "ok"
    assert re.fullmatch(rf"waited \d+s for port {listener} on 127\.0\.0\.1 to be open", result.msg), result.msg


def test_local_port_stopped(listener: int) -> None:
    port = free_port()
    assert run_task(WaitFor, {"port": port, "state": "stopped", "timeout": 5}, local_context()).status == "ok"
    failed = run_task(WaitFor, {"port": listener, "state": "stopped", "timeout": 1}, local_context())
    assert failed.status == "failed" and "to be closed" in failed.msg


def test_port_times_out_with_message() -> None:
    port = free_port()
    result = run_task(WaitFor, {"port": port, "timeout": 2}, local_context())
    assert result.status == "failed"
    assert result.msg.startswith(f"timed out after 2s waiting for port {port} on 127.0.0.1 to be open")
    assert isinstance(result.data["elapsed"], int)  # whole seconds on the host's clock (no time asserted)


def test_other_address_uses_dev_tcp(listener: int) -> None:
    # 127.0.0.2 is not in _LOCAL_HOSTS, so this goes through bash's /dev/tcp; the listener is on 127.0.0.1 only.
    result = run_task(WaitFor, {"host": "127.0.0.2", "port": listener, "timeout": 1}, local_context())
    assert result.status == "failed" and "Connection refused" in result.msg


def test_path_appears_and_regex(tmp_path: Path) -> None:
    log = tmp_path / "app.log"

    def write_later() -> None:
        time.sleep(1)
        log.write_text("starting\nready on 8000\n")

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        result = run_task(WaitFor, {"path": str(log), "search_regex": "ready on [0-9]+", "timeout": 10},
                          local_context())  # fmt: skip
    finally:
        writer.join(timeout=5)
    assert result.status == "ok", result.msg
    assert run_task(WaitFor, {"path": str(tmp_path / "gone"), "state": "absent"}, local_context()).status == "ok"


def test_http_ok_with_host_header_and_body(web: str) -> None:
    raw = {"url": f"{web}/", "headers": {"Host": "site1.local"}, "body_contains": "welcome to site1.local"}
    result = run_task(HttpCheck, raw, local_context())
    assert result.status == "ok", result.msg
    assert result.data["status"] == 200 and result.data["body"] == "welcome to site1.local"


def test_http_status_list_and_failure(web: str) -> None:
    assert run_task(HttpCheck, {"url": f"{web}/x", "status": [200, 404]}, local_context()).status == "ok"
    failed = run_task(HttpCheck, {"url": f"{web}/x", "retries": 1, "delay": 0}, local_context())
    assert failed.status == "failed" and failed.data["attempts"] == 2
    assert "did not answer 200 after 2 attempt(s)" in failed.msg and "got status 404" in failed.msg


def test_http_python_fallback(web: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A PATH without curl: the module falls back to python3's urllib on the host.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    for tool in ("sh", "mktemp", "rm", "date", "tail", "head", "grep", "sleep", "cat", "printf"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bindir / tool).symlink_to(found)
    assert shutil.which("curl", path=str(bindir)) is None
    monkeypatch.setenv("PATH", str(bindir))
    raw = {"url": f"{web}/", "headers": {"Host": "fallback.local"}, "body_contains": "fallback"}
    result = run_task(HttpCheck, raw, local_context())
    assert result.status == "ok", result.msg
    missing = run_task(HttpCheck, {"url": f"{web}/nope"}, local_context())
    assert missing.status == "failed" and missing.data["status"] == 404
