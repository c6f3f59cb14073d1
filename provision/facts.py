"""Host facts, gathered in one round trip by one POSIX sh script (no remote Python needed)."""

from __future__ import annotations

from typing import Any

# Each line is "key=value"; parsing is forgiving so a missing tool leaves one fact empty, not all.
FACTS_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-}"
echo "os_like=${ID_LIKE:-}"
echo "os_name=${PRETTY_NAME:-}"
echo "kernel=$(uname -s)"
echo "kernel_release=$(uname -r)"
echo "architecture=$(uname -m)"
if [ -d /run/systemd/system ]; then echo init=systemd; elif [ -x /sbin/openrc ]; then echo init=openrc;
else echo init=sysv; fi
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
echo "cpu_count=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "python3=$(command -v python3 2>/dev/null)"
for pm in apt-get dnf yum apk zypper pacman; do
  if command -v "$pm" >/dev/null 2>&1; then echo "pkg_mgr=$pm"; break; fi
done
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "fqdn=$(hostname -f 2>/dev/null)"
echo "user=$(id -un)"
echo "uid=$(id -u)"
echo "home=$HOME"
if command -v ip >/dev/null 2>&1; then
  echo "default_ipv4=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)"
  echo "ipv4_addresses=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\n' ' ')"
else
  echo "ipv4_addresses=$(hostname -I 2>/dev/null)"
fi
"""

_FAMILY = {"debian": "Debian", "ubuntu": "Debian", "rhel": "RedHat", "fedora": "RedHat", "centos": "RedHat",
           "rocky": "RedHat", "almalinux": "RedHat", "alpine": "Alpine", "arch": "Archlinux", "suse": "Suse"}
_PKG_MANAGER = {"apt-get": "apt", "dnf": "dnf", "yum": "dnf", "apk": "apk", "zypper": "zypper", "pacman": "pacman"}


def parse_facts(output: str) -> dict[str, Any]:
    """Turn the facts script's output into the ``facts`` variable."""
    raw: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    os_id = raw.get("os_id", "unknown").lower()
    like = raw.get("os_like", "").lower().split()
    family = _FAMILY.get(os_id) or next((_FAMILY[x] for x in like if x in _FAMILY), "Unknown")
    addresses = raw.get("ipv4_addresses", "").split()
    memory_kb = _int(raw.get("memory_kb"))
    return {
        "os_id": os_id,
        "os_family": family,
        "os_version": raw.get("os_version", ""),
        "os_major": raw.get("os_version", "").split(".")[0],
        "os_codename": raw.get("os_codename", ""),
        "os_name": raw.get("os_name", ""),
        "kernel": raw.get("kernel", ""),
        "kernel_release": raw.get("kernel_release", ""),
        "architecture": raw.get("architecture", ""),
        "init": raw.get("init", "sysv"),
        "systemd": raw.get("init") == "systemd",
        "pid1": raw.get("pid1", ""),
        "cpu_count": _int(raw.get("cpu_count")) or 1,
        "memory_mb": memory_kb // 1024,
        "python3": raw.get("python3") or None,
        "pkg_mgr": _PKG_MANAGER.get(raw.get("pkg_mgr", ""), raw.get("pkg_mgr") or None),
        "hostname": raw.get("hostname", ""),
        "fqdn": raw.get("fqdn", "") or raw.get("hostname", ""),
        "user": raw.get("user", ""),
        "uid": _int(raw.get("uid")),
        "home": raw.get("home", ""),
        "primary_ipv4": raw.get("default_ipv4") or (addresses[0] if addresses else None),
        "ipv4_addresses": addresses,
    }


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
