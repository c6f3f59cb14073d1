"""Draining an app host from the load balancer's upstreams file (balancer.mark_server)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from provision.update.balancer import drain_script, mark_server

pytestmark = pytest.mark.unit

UPSTREAMS = """\
# rendered by provision
upstream frappe-web {
    server 10.0.0.11:80 max_fails=2 fail_timeout=5s;
    server 10.0.0.12:80 max_fails=2 fail_timeout=5s;
    keepalive 16;
}
upstream frappe-socketio {
    server 10.0.0.11:9000;
    server 10.0.0.12:9000;
}
"""


def test_drain_marks_every_line_of_the_host_down_and_keeps_the_rest() -> None:
    text, matched, up = mark_server(UPSTREAMS, ["10.0.0.11"], down=True)
    assert matched == 2 and up == 2
    assert "server 10.0.0.11:80 max_fails=2 fail_timeout=5s down;" in text
    assert "server 10.0.0.11:9000 down;" in text
    assert "server 10.0.0.12:80 max_fails=2 fail_timeout=5s;" in text and "keepalive 16;" in text
    assert text.count("\n") == UPSTREAMS.count("\n")


def test_undrain_removes_down_and_is_idempotent() -> None:
    drained, _, _ = mark_server(UPSTREAMS, ["10.0.0.11"], down=True)
    again, _, _ = mark_server(drained, ["10.0.0.11"], down=True)
    assert again == drained
    back, matched, up = mark_server(drained, ["10.0.0.11"], down=False)
    assert back == UPSTREAMS and matched == 2 and up == 4


def test_unknown_host_matches_nothing_and_last_host_is_counted() -> None:
    assert mark_server(UPSTREAMS, ["10.0.0.99"], down=True)[1] == 0
    one, _, _ = mark_server(UPSTREAMS, ["10.0.0.11"], down=True)
    _, _, up = mark_server(one, ["10.0.0.12"], down=True)
    assert up == 0


def test_host_names_and_ipv6_and_no_port() -> None:
    text = "  server app1.internal:8000;\n  server [fd00::2]:80 weight=2;\n  server 10.1.1.1;\n"
    out, matched, _ = mark_server(text, ["app1.internal", "fd00::2", "10.1.1.1"], down=True)
    assert matched == 3
    assert out == "  server app1.internal:8000 down;\n  server [fd00::2]:80 weight=2 down;\n  server 10.1.1.1 down;\n"


def test_the_host_script_is_valid_python_and_refuses_a_missing_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "up.conf"
    path.write_text(UPSTREAMS)
    script = drain_script(str(path), "app9", ["10.0.0.99"], down=True, settle=0)
    result = subprocess.run(["sh", "-c", script.replace("python3 -", f"{sys.executable} -", 1)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no server line for app9" in result.stderr
    assert path.read_text() == UPSTREAMS


def test_the_deploys_line_format_matches_by_inventory_name_and_keeps_its_comment() -> None:
    text = ("upstream frappe-app-hosts {\n"
            "\tserver 10.213.5.3:80 max_fails=1 fail_timeout=10s;  # app:app1\n"
            "\tserver 10.213.5.4:80 max_fails=1 fail_timeout=10s;  # app:app2\n"
            "\tkeepalive 16;\n}\n")
    out, matched, up = mark_server(text, ["app2"], down=True)
    assert matched == 1 and up == 1
    assert "\tserver 10.213.5.4:80 max_fails=1 fail_timeout=10s down;  # app:app2\n" in out
    assert mark_server(out, ["app2"], down=False)[0] == text


def test_a_host_left_alone_up_is_never_marked_failed_and_gets_its_max_fails_back() -> None:
    text = ("upstream frappe-app-hosts {\n"
            "\tserver 10.213.5.3:80 max_fails=1 fail_timeout=10s;  # app:app1\n"
            "\tserver 10.213.5.4:80 max_fails=1 fail_timeout=10s;  # app:app2\n"
            "\tkeepalive 16;\n}\n")
    drained, _, up = mark_server(text, ["app1"], down=True, max_fails=1)
    assert up == 1
    assert "\tserver 10.213.5.3:80 max_fails=1 fail_timeout=10s down;  # app:app1\n" in drained
    assert "\tserver 10.213.5.4:80 max_fails=0 fail_timeout=10s;  # app:app2\n" in drained
    assert mark_server(drained, ["app1"], down=False, max_fails=1)[0] == text
    # per upstream block: a block with two servers up keeps max_fails on both
    assert mark_server(UPSTREAMS, ["10.0.0.99"], down=True, max_fails=2)[0] == UPSTREAMS
