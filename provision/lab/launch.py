"""Starting a host (its own mount, PID, UTS and IPC namespaces, tini as pid 1, sshd) and stopping it."""

from __future__ import annotations

import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from provision.errors import LabError
from provision.lab.network import NETNS_DIR
from provision.lab.settings import LabHost
from provision.lab.state import ProcessRef
from provision.lab.system import CLEAN_ENV, children, signal_process, spawn_detached, tail, wait_gone

SSHD_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

# Pid 1 of the host's new namespaces runs this before becoming tini. All mounts live in the host's own mount
# namespace: they vanish with it. pivot_root (not chroot) then detaches every mount of the machine, so the
# host holds no copy of other namespaces' /run/netns files and sees only its own mounts.
INIT_SCRIPT = r"""
set -eu
base=$1 upper=$2 work=$3 root=$4 name=$5 log=$6
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=755,nosuid,size=16m tmpfs "$root/dev"
for dev in null zero full random urandom tty; do
    touch "$root/dev/$dev"
    mount --bind "/dev/$dev" "$root/dev/$dev"
done
# FUSE (sshfs mounts of a deploy's shared files) where the machine has it; the host's own mounts stay in
# its mount namespace.
if [ -c /dev/fuse ]; then
    touch "$root/dev/fuse"
    mount --bind /dev/fuse "$root/dev/fuse"
fi
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mkdir -p "$root/run/sshd" "$root/run/lock"
touch "$root/var/log/lab-sshd.log"
mount --bind "$log" "$root/var/log/lab-sshd.log"
chmod 1777 "$root/run/lock"
hostname "$name"
cd "$root"
pivot_root . lab-oldroot
umount -l /lab-oldroot
echo "lab host $name: starting sshd" >&2
exec /usr/bin/tini -- /usr/local/sbin/lab-sshd
"""


def start_host(host: LabHost, *, netns: str, base: Path) -> ProcessRef:
    """Start the host's namespaces and sshd; returns the ``unshare`` process that holds them."""
    nsenter = shutil.which("nsenter", path=CLEAN_ENV["PATH"]) or "/usr/bin/nsenter"
    argv = [
        nsenter, f"--net={NETNS_DIR / netns}",
        "unshare", "--mount", "--pid", "--fork", "--uts", "--ipc", "--kill-child=SIGKILL",
        "sh", "-c", INIT_SCRIPT, "lab-init",
        str(base), str(host.upper_dir), str(host.work_dir), str(host.root_dir), host.name, str(host.sshd_log),
    ]
    host.sshd_log.touch(mode=0o600)
    return spawn_detached(argv, log=host.sshd_log)


def init_pid(holder: ProcessRef) -> int | None:
    """Host-side pid of the host's pid 1 (tini), the child of its ``unshare``."""
    if not holder.alive():
        return None
    found = children(holder.pid)
    return found[0] if found else None


def wait_for_sshd(hosts: Sequence[tuple[LabHost, ProcessRef]], *, timeout: float = SSHD_TIMEOUT) -> None:
    """Wait until each host's sshd sends its banner; a LabError naming the host and its log otherwise."""
    deadline = time.monotonic() + timeout
    for host, holder in hosts:
        while not _ssh_banner(host.address, host.port):
            if not holder.alive():
                raise LabError(
                    f"lab host {host.name} exited while starting: {tail(_read(host.sshd_log))}",
                    hint=f"see {host.sshd_log}; then `provision lab down` and `provision lab up` again",
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"sshd of lab host {host.name} ({host.address}:{host.port}) did not answer within {timeout:.0f} s",
                    hint=f"see {host.sshd_log}",
                )
            time.sleep(0.05)


def stop_hosts(holders: Sequence[ProcessRef]) -> None:
    """Kill each host's pid 1 (the kernel then kills its whole PID namespace) and wait for the holders to exit."""
    for holder in holders:
        pid = init_pid(holder)
        if pid is not None:
            signal_process(ProcessRef.of(pid) or holder, signal.SIGKILL)
        else:
            signal_process(holder, signal.SIGKILL)
    wait_gone(holders, timeout=STOP_TIMEOUT, what="stopping lab hosts")


def _ssh_banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
