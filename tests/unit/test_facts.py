"""Facts: the script on this machine's /bin/sh agrees with Python's view of it; parsing is forgiving."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess

import pytest

from provision.facts import FACTS_SCRIPT, parse_facts

pytestmark = pytest.mark.unit


def test_facts_of_this_machine() -> None:
    output = subprocess.run(["sh", "-c", FACTS_SCRIPT], capture_output=True, text=True, timeout=30).stdout
    facts = parse_facts(output)
    uname = os.uname()
    assert (facts["kernel"], facts["kernel_release"], facts["architecture"]) == (
        uname.sysname, uname.release, uname.machine)
    assert facts["uid"] == os.getuid()
    assert facts["user"] == pwd.getpwuid(os.getuid()).pw_name
    assert facts["hostname"] == socket.gethostname()
    assert facts["cpu_count"] == len(os.sched_getaffinity(0))
    assert facts["memory_mb"] > 0
    assert facts["home"] == os.environ["HOME"]
    assert facts["os_id"] != "unknown" and facts["os_family"] != "Unknown"
    if facts["ipv4_addresses"]:
        assert facts["primary_ipv4"] in facts["ipv4_addresses"]


def test_parse_facts_from_a_sample() -> None:
    sample = "\n".join([
        "os_id=ubuntu", "os_version=24.04", "os_codename=noble", "os_like=debian", "os_name=Ubuntu 24.04 LTS",
        "uname=Linux 6.8.0-45-generic aarch64", "init=systemd", "pid1=systemd", "cpu_count=4",
        "memory_kb=8048000", "python3=/usr/bin/python3", "pkg_mgr=apt-get", "hostname=web1",
        "fqdn=web1.example.org", "id=uid=1001(frappe) gid=1001(frappe) groups=1001(frappe),27(sudo)",
        "home=/home/frappe", "route=1.1.1.1 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 1001 \\    cache ",
        "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever",
        "3: eth1    inet 192.168.1.9/24 scope global eth1\\       valid_lft forever",
    ])
    facts = parse_facts(sample)
    assert facts["os_family"] == "Debian" and facts["os_major"] == "24"
    assert (facts["kernel"], facts["architecture"]) == ("Linux", "aarch64")
    assert facts["systemd"] is True and facts["cpu_count"] == 4 and facts["memory_mb"] == 7859
    assert facts["pkg_mgr"] == "apt" and facts["fqdn"] == "web1.example.org"
    assert (facts["user"], facts["uid"]) == ("frappe", 1001)
    assert facts["primary_ipv4"] == "10.0.0.5"
    assert facts["ipv4_addresses"] == ["10.0.0.5", "192.168.1.9"]


def test_parse_facts_with_tools_missing() -> None:
    facts = parse_facts("os_id=alpine\nuname=\nid=\nroute=\ncpu_count=\n")
    assert facts["os_family"] == "Alpine"
    assert (facts["kernel"], facts["user"], facts["uid"]) == ("", "", 0)
    assert facts["cpu_count"] == 1 and facts["primary_ipv4"] is None and facts["ipv4_addresses"] == []
