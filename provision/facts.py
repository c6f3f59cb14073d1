"""Host facts, gathered in one round trip by one POSIX sh script (no remote Python needed)."""

from __future__ import annotations

import re
from typing import Any

# Each line is "key=value", or a raw `ip -o addr` line; parsing is forgiving, so a missing tool
# leaves one fact empty, not all. The host does as little as it can: shell builtins read /proc, and
# the few programs run once each and print straight out (no pipes, no command substitutions), so
# a fact costs no fork of its own. Ten hosts sharing a machine gather in parallel.
FACTS_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-}"
echo "os_like=${ID_LIKE:-}"
echo "os_name=${PRETTY_NAME:-}"
printf 'uname='; uname -s -r -m
if [ -d /run/systemd/system ]; then echo init=systemd; elif [ -x /sbin/openrc ]; then echo init=openrc;
else echo init=sysv; fi
_pv_v=; read -r _pv_v 2>/dev/null < /proc/1/comm; echo "pid1=${_pv_v:-}"
printf 'cpu_count='; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
while read -r _pv_k _pv_v _; do
  if [ "$_pv_k" = MemTotal: ]; then echo "memory_kb=$_pv_v"; break; fi
done 2>/dev/null < /proc/meminfo
printf 'python3='; command -v python3 2>/dev/null || echo
for pm in apt-get dnf yum apk zypper pacman; do
  if command -v "$pm" >/dev/null 2>&1; then echo "pkg_mgr=$pm"; break; fi
done
_pv_v=; read -r _pv_v 2>/dev/null < /proc/sys/kernel/hostname; echo "hostname=${_pv_v:-}"
printf 'fqdn='; hostname -f 2>/dev/null || echo
printf 'id='; LC_ALL=C id 2>/dev/null || echo
echo "home=$HOME"
printf 'route='; ip -4 -o route get 1.1.1.1 2>/dev/null || echo
ip -4 -o addr show scope global 2>/dev/null
"""

# `ip -4 -o addr` prints "2: eth0    inet 10.0.0.5/24 brd ..." per address.
_IP_ADDR = re.compile(r"^\d+:\s+\S+\s+inet\s+(\d+\.\d+\.\d+\.\d+)/")
_ROUTE_SRC = re.compile(r"\bsrc\s+(\d+\.\d+\.\d+\.\d+)")
_ID = re.compile(r"^uid=(\d+)(?:\(([^)]*)\))?")

_FAMILY = {"debian": "Debian", "ubuntu": "Debian", "rhel": "RedHat", "fedora": "RedHat", "centos": "RedHat",
           "rocky": "RedHat", "almalinux": "RedHat", "alpine": "Alpine", "arch": "Archlinux", "suse": "Suse"}
_PKG_MANAGER = {"apt-get": "apt", "dnf": "dnf", "yum": "dnf", "apk": "apk", "zypper": "zypper", "pacman": "pacman"}


def parse_facts(output: str) -> dict[str, Any]:
    """Turn the facts script's output into the ``facts`` variable."""
    raw: dict[str, str] = {}
    addresses: list[str] = []
    for line in output.splitlines():
        if found := _IP_ADDR.match(line):
            addresses.append(found[1])
            continue
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    os_id = raw.get("os_id", "unknown").lower()
    like = raw.get("os_like", "").lower().split()
    family = _FAMILY.get(os_id) or next((_FAMILY[x] for x in like if x in _FAMILY), "Unknown")
    kernel, kernel_release, architecture = [*raw.get("uname", "").split(), "", "", ""][:3]
    identity = _ID.match(raw.get("id", ""))
    route = _ROUTE_SRC.search(raw.get("route", ""))
    memory_kb = _int(raw.get("memory_kb"))
    return {
        "os_id": os_id,
        "os_family": family,
        "os_version": raw.get("os_version", ""),
        "os_major": raw.get("os_version", "").split(".")[0],
        "os_codename": raw.get("os_codename", ""),
        "os_name": raw.get("os_name", ""),
        "kernel": kernel,
        "kernel_release": kernel_release,
        "architecture": architecture,
        "init": raw.get("init", "sysv"),
        "systemd": raw.get("init") == "systemd",
        "pid1": raw.get("pid1", ""),
        "cpu_count": _int(raw.get("cpu_count")) or 1,
        "memory_mb": memory_kb // 1024,
        "python3": raw.get("python3") or None,
        "pkg_mgr": _PKG_MANAGER.get(raw.get("pkg_mgr", ""), raw.get("pkg_mgr") or None),
        "hostname": raw.get("hostname", ""),
        "fqdn": raw.get("fqdn", "") or raw.get("hostname", ""),
        "user": (identity[2] or "") if identity else "",
        "uid": int(identity[1]) if identity else 0,
        "home": raw.get("home", ""),
        "primary_ipv4": route[1] if route else (addresses[0] if addresses else None),
        "ipv4_addresses": addresses,
    }


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
