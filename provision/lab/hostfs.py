"""A host's own files, written into its overlay's upper layer before the overlay is mounted."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.lab import render
from provision.lab.base import PASSWORD_SUDO_USER, SUDO_USER
from provision.lab.mirror import AptSource, render_sources_list
from provision.lab.settings import LabHost
from provision.lab.system import run

LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
HOST_KEY_TYPES = ("ed25519", "ecdsa")  # RSA skipped: a 3072-bit key costs ~0.5 s per host
# Inside the host, bind-mounted from <state>/hosts/NAME/sshd.log; /etc/default/ssh points `service ssh` there too.
SSHD_LOG = "/var/log/lab-sshd.log"
# The child of tini: keeps an sshd running, so `service ssh restart` (which kills the sshd it finds in
# /run/sshd.pid) does not end the host. While a daemon started by `service ssh start` runs, it waits.
SSHD_LOOP = f"""#!/bin/sh
# Written by provision lab: keeps sshd running in this host (its pid 1, tini, runs this).
while :; do
    pid=$(cat /run/sshd.pid 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = sshd ]; then
        sleep 0.5
        continue
    fi
    /usr/sbin/sshd -D -E {SSHD_LOG}
    sleep 0.2
done
"""


@dataclass(frozen=True)
class HostFiles:
    """What a host's files are made from, beyond the host itself."""

    base: Path
    public_key: str
    password_hashes: Mapping[str, str]
    addresses: Mapping[str, str]
    gateway: str
    subnet: str
    proxy_url: str
    sources: Sequence[AptSource]


def prepare_host(host: LabHost, files: HostFiles) -> None:
    """Write the host's files into its upper layer; a host restarted after a crash keeps its changes."""
    layer = _Layer(files.base, host.upper_dir)
    marker = host.directory / "prepared"
    if marker.exists():
        layer.write("etc/hosts", render.render_etc_hosts(host.name, files.addresses, files.gateway))
        _ca_certificates(layer, files.base)
        return
    for directory in (host.upper_dir, host.work_dir, host.root_dir):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(host.directory, 0o700)
    _host_keys(layer, host.name)
    users = _users(files.base)
    layer.write("etc/hostname", f"{host.name}\n")
    layer.write("etc/hosts", render.render_etc_hosts(host.name, files.addresses, files.gateway))
    layer.write("etc/ssh/sshd_config.d/90-lab.conf", render.render_sshd_config(host.profile))
    if host.profile == "password":  # a fresh cloud VPS: its password login comes from cloud-init's drop-in
        layer.write("etc/ssh/sshd_config.d/50-cloud-init.conf", render.CLOUD_INIT_SSHD, mode=0o600)
    layer.write("usr/local/sbin/lab-sshd", SSHD_LOOP, mode=0o755)
    layer.write("etc/default/ssh", f'SSHD_OPTS="-E {SSHD_LOG}"\n')
    # No init system: let package scripts start their services, as on a container-based server. (Written per
    # host: mmdebstrap removes any policy-rc.d from the image it builds.)
    layer.write("usr/sbin/policy-rc.d", "#!/bin/sh\nexit 0\n", mode=0o755)
    if host.profile == "key":
        for user in render.LAB_USERS:
            uid, gid, home = users[user]
            layer.write(f"{home}/.ssh/authorized_keys", files.public_key + "\n", mode=0o600, uid=uid, gid=gid,
                        dir_mode=0o700)
    shadow = (files.base / "etc" / "shadow").read_text()
    layer.write("etc/shadow", render.set_password_hashes(shadow, files.password_hashes), mode=0o640, gid=_gid(
        files.base, "shadow"))
    _proxy_files(layer, files, users)
    _ca_certificates(layer, files.base)
    marker.touch()


def write_live_file(pid: int, relative: str, text: str) -> None:
    """Replace a file inside a running host, through its init's root (the mounted overlay)."""
    path = Path(f"/proc/{pid}/root") / relative
    temp = path.with_name(f".{path.name}.lab-tmp")
    temp.write_text(text)
    os.chmod(temp, 0o644)
    os.replace(temp, path)


def hash_password(password: str) -> str:
    """A SHA-512 crypt hash for /etc/shadow (password given on stdin, never on a command line)."""
    result = run(["openssl", "passwd", "-6", "-stdin"], input_text=password + "\n", what="hashing a lab password")
    return result.stdout.strip()


def _host_keys(layer: _Layer, name: str) -> None:
    for key_type in HOST_KEY_TYPES:
        path = layer.path(f"etc/ssh/ssh_host_{key_type}_key")
        if not path.exists():
            layer.ensure_dir("etc/ssh")
            run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"root@{name}", "-f", str(path)],
                what=f"generating the {key_type} host key of lab host {name}")


def _proxy_files(layer: _Layer, files: HostFiles, users: Mapping[str, tuple[int, int, str]]) -> None:
    proxy = files.proxy_url
    layer.write("etc/apt/sources.list", render_sources_list(files.sources))
    layer.write("etc/apt/apt.conf.d/01lab-proxy", render.render_apt_proxy(proxy))
    layer.write("etc/environment", render.render_environment(proxy, render.no_proxy(files.addresses, files.subnet)))
    layer.write("etc/pip.conf", render.render_pip_conf(proxy))
    layer.write("etc/gitconfig", render.render_gitconfig(proxy))
    layer.write("etc/sudoers.d/lab-proxy", render.render_sudo_env_keep(), mode=0o440)
    npmrc = render.render_npmrc(proxy)
    layer.write("etc/npmrc", npmrc)
    layer.write("etc/skel/.npmrc", npmrc)  # users the deploy creates later get it too
    for user in render.LAB_USERS:
        uid, gid, home = users[user]
        layer.write(f"{home}/.npmrc", npmrc, uid=uid, gid=gid)


def _ca_certificates(layer: _Layer, base: Path) -> None:
    """Trust this machine's local CAs (its gateway's among them), read now: one is regenerated at boot."""
    bundle = (base / render.CA_BUNDLE.lstrip("/")).read_text()
    extra = []
    for cert in sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []:
        text = cert.read_text()
        layer.write(f"usr/local/share/ca-certificates/{cert.name}", text)
        if text.strip() not in bundle:
            extra.append(text if text.endswith("\n") else text + "\n")
    layer.write(render.CA_BUNDLE.lstrip("/"), bundle + "".join(extra))


def _users(base: Path) -> dict[str, tuple[int, int, str]]:
    """uid, gid and home (relative to /) of the lab users, from the base's /etc/passwd."""
    found = {}
    for line in (base / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] in (SUDO_USER, PASSWORD_SUDO_USER, "root"):
            found[fields[0]] = (int(fields[2]), int(fields[3]), fields[5].lstrip("/"))
    return found


def _gid(base: Path, group: str) -> int:
    for line in (base / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return int(fields[2])
    return 0


class _Layer:
    """Writes into an overlay's upper layer; new directories copy owner and mode from the base, as overlay shows
    an upper directory's attributes rather than the lower one's."""

    def __init__(self, base: Path, upper: Path) -> None:
        self.base = base
        self.upper = upper

    def path(self, relative: str) -> Path:
        return self.upper / relative

    def ensure_dir(self, relative: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        current = Path()
        for part in Path(relative).parts:
            current /= part
            target = self.upper / current
            if target.is_dir():
                continue
            lower = self.base / current
            if lower.is_dir():
                info = lower.stat()
                target.mkdir()
                os.chown(target, info.st_uid, info.st_gid)
                os.chmod(target, stat.S_IMODE(info.st_mode))
            else:
                target.mkdir()
                os.chown(target, uid, gid)
                os.chmod(target, mode)

    def write(self, relative: str, text: str, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
              dir_mode: int = 0o755) -> None:
        parent = str(Path(relative).parent)
        if parent != ".":
            self.ensure_dir(parent, mode=dir_mode, uid=uid, gid=gid)
        target = self.upper / relative
        temp = target.with_name(f".{target.name}.lab-tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.chown(temp, uid, gid)
        os.chmod(temp, mode)
        os.replace(temp, target)
