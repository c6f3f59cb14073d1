"""Text of the files the lab writes: inventory, ssh_config, known_hosts, and the hosts' own configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from provision.lab.base import PASSWORD_SUDO_USER, SUDO_USER
from provision.lab.settings import LabHost

GROUP = "lab"
PASSWORD_GROUP = "lab_password"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def render_inventory(hosts: Sequence[LabHost], *, key_file: Path, known_hosts: Path) -> str:
    """An Ansible-shaped YAML inventory: key hosts in group ``lab``, password hosts in ``lab_password``."""
    def entries(profile: str) -> dict[str, Any]:
        return {h.name: {"ssh_host": h.address, "ssh_port": h.port} for h in hosts if h.profile == profile}

    children: dict[str, Any] = {
        GROUP: {
            "hosts": entries("key"),
            "vars": {
                "ssh_user": "root",
                "ssh_private_key_file": str(key_file),
                "ssh_known_hosts_file": str(known_hosts),
            },
        },
    }
    password_hosts = entries("password")
    if password_hosts:
        children[PASSWORD_GROUP] = {
            "hosts": password_hosts,
            "vars": {"ssh_user": "root", "ssh_known_hosts_file": str(known_hosts)},
        }
    header = "# Written by `provision lab up`; rewritten on every up.\n"
    return header + yaml.safe_dump({"all": {"children": children}}, sort_keys=False, default_flow_style=False)


def render_ssh_config(hosts: Sequence[LabHost], *, key_file: Path, known_hosts: Path) -> str:
    """An ssh_config for ``ssh -F``: one block per host, strict host key checking against ``known_hosts``."""
    blocks = ["# Written by `provision lab up`: ssh -F THIS_FILE lab1\n"]
    for host in hosts:
        lines = [
            f"Host {host.name} {host.address}",
            f"  HostName {host.address}",
            f"  Port {host.port}",
            "  User root",
            f"  UserKnownHostsFile {known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  CheckHostIP no",
            "  ConnectTimeout 10",
            "  ServerAliveInterval 15",
            "  ServerAliveCountMax 4",
            "  LogLevel ERROR",
        ]
        if host.profile == "key":
            lines += [f"  IdentityFile {key_file}", "  IdentitiesOnly yes", "  PasswordAuthentication no"]
        else:
            lines += ["  PubkeyAuthentication no"]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def render_known_hosts(host_keys: Mapping[LabHost, Sequence[str]]) -> str:
    """known_hosts lines pinning each host's keys under its name and its address."""
    lines = []
    for host, keys in host_keys.items():
        names = host.name if host.port == 22 else f"[{host.name}]:{host.port}"
        address = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
        for key in keys:
            key_type, key_data = key.split()[:2]
            lines.append(f"{names},{address} {key_type} {key_data}\n")
    return "".join(lines)


def render_hosts_tsv(hosts: Sequence[LabHost]) -> str:
    """``name<TAB>address<TAB>port`` per line, as the benchmark runner reads it."""
    return "".join(f"{h.name}\t{h.address}\t{h.port}\n" for h in hosts)


def render_etc_hosts(hostname: str, addresses: Mapping[str, str], gateway: str) -> str:
    """/etc/hosts of a lab host: itself, every lab host and the bridge (``lab-gw``)."""
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{hostname}", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{gateway}\tlab-gw"]
    lines += [f"{address}\t{name}" for name, address in sorted(addresses.items())]
    return "\n".join(lines) + "\n"


def render_sshd_config(profile: str) -> str:
    """The lab's sshd drop-in; ``password`` hosts take only a password for root (as a fresh VPS does).

    A password host keeps public key authentication on (sshd's default, as on a cloud image) but has no
    authorized key for anyone, so a root password is the only way in until someone installs a key.
    """
    lines = [
        "# Written by provision lab. Earlier drop-ins (lower names) win: sshd keeps the first value it reads.",
        "LogLevel VERBOSE",
        "MaxStartups 200:30:400",
        "MaxSessions 100",
        "UseDNS no",
        "KbdInteractiveAuthentication no",
    ]
    if profile == "password":
        lines += ["PermitRootLogin yes", "PasswordAuthentication yes"]
    else:
        lines += ["PermitRootLogin prohibit-password", "PasswordAuthentication no", "PubkeyAuthentication yes"]
    return "\n".join(lines) + "\n"


# What cloud-init writes on a cloud image whose user data enables password login (cloud-init#5934): sshd keeps the
# first value it reads, so this beats any later drop-in that turns password login off.
CLOUD_INIT_SSHD = "PasswordAuthentication yes\n"


def render_proxy_config(*, cache_dir: Path, log_dir: Path, run_dir: Path, address: str, port: int,
                        upstream: str | None = None) -> str:
    """apt-cacher-ng's config: the lab's own instance, on the bridge address only, HTTPS passed through."""
    lines = [
        "# Written by provision lab: its own apt-cacher-ng, not the system service.",
        f"CacheDir: {cache_dir}",
        f"LogDir: {log_dir}",
        f"PidFile: {run_dir / 'pid'}",
        f"SocketPath: {run_dir / 'socket'}",
        f"BindAddress: {address}",
        f"Port: {port}",
        "ForeGround: 1",
        "ReportPage: acng-report.html",
        "ExThreshold: 4",
        "VerboseLog: 1",
        "UnbufferLogs: 1",
        # pip and npm reach their registries over HTTPS: tunnel any host's port 443 (CONNECT), uncached.
        "PassThroughPattern: .*:443$",
    ]
    if upstream:
        lines.append(f"Proxy: {upstream}")
    return "\n".join(lines) + "\n"


def render_apt_proxy(proxy_url: str) -> str:
    # Timeout: apt-cacher-ng can leave a request unanswered when several hosts fetch the same index in
    # one second ("Failure to move file ... InRelease out of the way"); apt gives up on a silent
    # connection after 60 s and retries, instead of waiting for the package task's own bound.
    return (f'Acquire::http::Proxy "{proxy_url}";\nAcquire::https::Proxy "{proxy_url}";\nAcquire::Retries "3";\n'
            'Acquire::http::Timeout "60";\n')


def no_proxy(addresses: Mapping[str, str], subnet: str) -> str:
    """Where nothing goes through the proxy: loopback and the lab itself (by name, address and /24)."""
    return ",".join(["localhost", "127.0.0.1", "::1", subnet, *sorted(addresses), *sorted(addresses.values())])


def render_environment(proxy_url: str, bypass: str) -> str:
    """/etc/environment (read by pam_env for ssh sessions and sudo): proxy and CA bundle for every tool."""
    values = {
        "http_proxy": proxy_url, "https_proxy": proxy_url, "no_proxy": bypass,
        "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "NO_PROXY": bypass,
        "REQUESTS_CA_BUNDLE": CA_BUNDLE, "NODE_EXTRA_CA_CERTS": CA_BUNDLE,
    }
    return "".join(f'{key}="{value}"\n' for key, value in values.items())


def render_pip_conf(proxy_url: str) -> str:
    return f"[global]\nproxy = {proxy_url}\ncert = {CA_BUNDLE}\n"


def render_npmrc(proxy_url: str) -> str:
    return f"proxy={proxy_url}/\nhttps-proxy={proxy_url}/\ncafile={CA_BUNDLE}\n"


def render_gitconfig(proxy_url: str) -> str:
    return f"[http]\n\tproxy = {proxy_url}\n\tsslCAInfo = {CA_BUNDLE}\n"


def render_sudo_env_keep() -> str:
    """sudoers drop-in: keep the proxy variables through ``sudo`` (Debian's env_reset drops them)."""
    names = "http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY REQUESTS_CA_BUNDLE NODE_EXTRA_CA_CERTS"
    return f'Defaults env_keep += "{names}"\n'


def set_password_hashes(shadow: str, hashes: Mapping[str, str]) -> str:
    """/etc/shadow with the password field of each user in ``hashes`` replaced."""
    lines = []
    for line in shadow.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[0] in hashes:
            fields[1] = hashes[fields[0]]
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


LAB_USERS = ("root", SUDO_USER, PASSWORD_SUDO_USER)
