"""Bounded work, closed pipes, connection failure lines, and redaction of every form a secret takes."""

from __future__ import annotations

import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from provision.connection import LocalConnection, split_pid_mark
from provision.connfailure import connect_failure
from provision.errors import AuthError, InputError, InventoryError
from provision.hostpatterns import MAX_RANGE_HOSTS, expand_host_range
from provision.inventory import Inventory
from provision.output.pipes import PipeSafeStream
from provision.secrets import REDACTED, Redactor, Secret
from provision.templating import Templar
from provision.yamlfile import MAX_DEPTH, parse_yaml

pytestmark = pytest.mark.unit


# -- bounded work ---------------------------------------------------------------------------------


def test_alias_bomb_is_refused_with_its_line() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    with pytest.raises(InputError) as caught:
        parse_yaml("\n".join(lines) + "\n", "vars.yml")
    assert "aliases expand" in caught.value.message and caught.value.source is not None
    assert caught.value.source.line is not None and caught.value.source.line > 1


def test_a_few_aliases_are_fine() -> None:
    data = parse_yaml("base: &base {a: 1}\nweb: *base\ndb: {<<: *base, b: 2}\n", "vars.yml")
    assert data["web"] == {"a": 1} and data["db"] == {"a": 1, "b": 2}


def test_nesting_deeper_than_the_bound_is_refused() -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v\n"
    with pytest.raises(InputError, match=f"nested deeper than {MAX_DEPTH}"):
        parse_yaml(text, "deep.yml")
    assert parse_yaml("".join("  " * level + f"k{level}:\n" for level in range(50)) + "  " * 50 + "v\n", "ok.yml")


def test_syntax_errors_keep_their_line() -> None:
    with pytest.raises(InputError) as caught:
        parse_yaml("a: 1\nb: 2\nc: [\n", "x.yml")
    assert caught.value.source is not None and caught.value.source.file == "x.yml" and caught.value.source.line


def test_host_range_is_capped_before_it_is_built() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="more than 100,000"):
        expand_host_range("app[0:99999999]")
    with pytest.raises(ValueError, match="more than 100,000"):
        expand_host_range("r[0:999]n[0:999]")
    assert time.monotonic() - started < 5  # counted, never materialised
    assert len(expand_host_range(f"h[1:{MAX_RANGE_HOSTS}]")) == MAX_RANGE_HOSTS
    assert expand_host_range("db-[a:c]-[01:02]") == ["db-a-01", "db-a-02", "db-b-01", "db-b-02", "db-c-01", "db-c-02"]


def test_a_chain_of_1200_groups_loads_without_recursion(tmp_path: Path) -> None:
    lines = ["all:", "  children:"]
    for index in range(1200):
        lines += [f"    g{index}:", "      children:", f"        g{index + 1}:"]
    lines += ["    g1200:", "      hosts:", "        deep1:"]
    path = tmp_path / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    inventory = Inventory.load(path)
    assert inventory.groups["g1200"].depth == 1201
    assert "g1199" in inventory.to_ansible_list()
    assert "g0" in inventory.host("deep1").groups


@pytest.mark.timeout(180)
def test_fifty_thousand_hosts_load(tmp_path: Path) -> None:
    lines = ["all:", "  children:"]
    for group in range(50):
        lines += [f"    grp{group}:", "      vars: {region: r1}", "      hosts:"]
        lines += [f"        h{group}-{n}.example.com: {{ssh_host: 10.0.{group}.{n % 250}}}" for n in range(1000)]
    path = tmp_path / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    inventory = Inventory.load(path)
    assert len(inventory.hosts) == 50_000
    assert inventory.host("h49-999.example.com").vars["ssh_host"] == "10.0.49.249"


def test_range_error_names_the_inventory_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    app[0:99999999]:\n")
    with pytest.raises(InventoryError) as caught:
        Inventory.load(path)
    assert str(caught.value.source).endswith("inventory.yml:3")


# -- closed pipes ---------------------------------------------------------------------------------


def test_pipe_safe_stream_drops_writes_once_the_reader_is_gone() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = PipeSafeStream(os.fdopen(write_end, "w"))
    stream.write("x" * 100_000)
    stream.flush()
    assert stream.closed_by_reader
    assert stream.write("more\n") == 5
    stream.flush()


def test_closed_stdout_neither_stops_the_run_nor_changes_its_exit_code(tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    local1: {connection: local}\n")
    (tmp_path / "site.yml").write_text(f"""\
- hosts: all
  gather_facts: false
  tasks:
    - command: "echo {{{{ item }}}}"
      loop: "{{{{ range(30) | list }}}}"
    - copy: {{content: "done\\n", dest: {done}}}
    - command: "false"
""")
    proc = subprocess.Popen([sys.executable, "-m", "provision", "playbook", "site.yml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err  # the last task failed: a closed pipe must not turn that into 0
    assert done.read_text() == "done\n"  # the tasks after the pipe closed still ran
    assert b"Traceback" not in err and b"BrokenPipe" not in err


# -- connection failures, one line each -----------------------------------------------------------


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 (the implicit context is what paramiko leaves)
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(("error", "says"), [
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (TimeoutError("timed out"), "timed out after 10s"),
    (socket.gaierror(-2, "Name or service not known"), "cannot resolve the address"),
    (EOFError(), "closed during the SSH handshake"),
])
def test_connection_failures_are_one_line(error: BaseException, says: str) -> None:
    message = str(connect_failure(error, host="app1", target="root@10.0.0.1:22", timeout=10))
    assert says in message and "\n" not in message and message.startswith("host app1: cannot connect to")
    assert "(fix: " in message


def test_banner_failures_tell_closed_from_silent() -> None:
    import paramiko

    closed = _chained(paramiko.SSHException("Error reading SSH protocol banner"), EOFError())
    silent = _chained(paramiko.SSHException("Error reading SSH protocol banner"), TimeoutError())
    assert "closed before the SSH banner" in str(connect_failure(closed, host="h", target="t", timeout=5))
    assert "no SSH banner within 5s" in str(connect_failure(silent, host="h", target="t", timeout=5))


def test_auth_failure_is_an_auth_error() -> None:
    import paramiko

    error = connect_failure(paramiko.AuthenticationException("Authentication failed."), host="h", target="t",
                            timeout=5)
    assert isinstance(error, AuthError) and "authentication failed" in str(error)


def test_local_connection_strips_the_pid_mark_and_sees_a_cancel() -> None:
    cancel = threading.Event()
    connection = LocalConnection(cancel=cancel)
    result = connection.run("echo out; echo err >&2")
    assert result.stdout == "out\n" and result.stderr == "err\n"
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = connection.run("sleep 30")
    assert result.rc < 0 and "interrupted" in result.stderr and time.monotonic() - started < 10


def test_a_cut_script_is_never_evaluated() -> None:
    from provision.connection import BOOTSTRAP

    framed = b"40\necho half; touch /nonexistent/never"  # says 40 bytes, sends fewer, no end mark
    done = subprocess.run(["sh", "-c", BOOTSTRAP], input=framed, capture_output=True, timeout=10)
    assert done.returncode == 125 and done.stdout == b""


def test_split_pid_mark() -> None:
    assert split_pid_mark(b"\x1epv-pid 4242\nwarning\n") == (4242, b"warning\n")
    assert split_pid_mark(b"plain") == (None, b"plain")


# -- secrets in every form ------------------------------------------------------------------------

SECRET = "Pa'ss\\wo\"rd/+9="


def test_redactor_knows_the_common_encodings() -> None:
    redact = Redactor([SECRET])
    shown = [
        SECRET, shlex.quote(SECRET), json.dumps(SECRET), repr(SECRET), repr({"pw": SECRET}), repr([SECRET]),
        SECRET.upper(), SECRET.lower(), base64.b64encode(SECRET.encode()).decode(),
        urllib.parse.quote(SECRET, safe=""), urllib.parse.quote_plus(SECRET),
        f"mysql://app:{urllib.parse.quote(SECRET, safe='')}@db/app",
    ]
    for text in shown:
        assert SECRET not in redact(text) and REDACTED in redact(text), text
    assert redact("nothing secret here") == "nothing secret here"


@pytest.mark.parametrize("expression", [
    "{{ db_password | upper }}", "{{ db_password | b64encode }}", "{{ db_password | urlencode }}",
    "{{ db_password[:9] }}", "{{ {'a': db_password} | to_json }}", "{{ db_password | replace('P', 'Q') }}",
    "x={{ db_password | reverse | join('') }}", "{{ 'mysql://u:' ~ (db_password | urlencode) ~ '@h' }}",
])
def test_values_derived_from_a_secret_are_redacted(expression: str) -> None:
    redact = Redactor()
    secret = "Kq7-long-Secret-Value"
    rendered = Templar().render_string(expression, {"db_password": secret})
    text = str.__str__(rendered) if isinstance(rendered, Secret) else str(rendered)
    assert secret[:9] in text or text  # rendered for real
    assert REDACTED in redact(f"output: {text}"), (expression, text)


def test_secret_keeps_its_type_through_str_methods() -> None:
    secret = Secret("hunter2-hunter2")
    for derived in (secret.upper(), secret[:6], secret + "x", "x" + secret, secret.replace("h", "H"),
                    secret.split("-")[0], secret.strip()):
        assert isinstance(derived, Secret)
    assert repr(secret.upper()) == "Secret('********')"
