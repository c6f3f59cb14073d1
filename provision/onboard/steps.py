"""The bootstrap steps of onboarding, each a read-only check script and an apply script.

A step's check runs first, always (``--check`` runs nothing else) and exits with one of
``OK`` (already right), ``CHANGE`` (would change; stdout says what) or ``SKIP`` (cannot apply
here; stdout says why). The apply script makes the change and may still answer ``SKIP``.
Every script runs as root with ``sh`` and gets file contents over stdin, never on a command line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import OptionsError

OK, CHANGE, SKIP = 0, 10, 11
PACKAGES = ("sudo", "nftables", "unattended-upgrades")
AUTO_UPGRADES_FILE = "/etc/apt/apt.conf.d/20auto-upgrades"
AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
# Frappe's asset build runs out of memory on 2 GB servers without swap (bench build, node).
SWAP_BELOW_MB = 3072
SWAP_SIZE_MB = 2048
SWAPFILE = "/swapfile"
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TIMEZONE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


@dataclass(frozen=True)
class Step:
    """One idempotent change: ``check`` decides, ``apply`` does it."""

    name: str
    check: str
    apply: str
    stdin: bytes | None = None
    timeout: float = 120.0


@dataclass(frozen=True)
class Outcome:
    """What a check or an apply said."""

    status: int
    detail: str


def check_user_name(user: str) -> str:
    if not _USER.match(user):
        raise OptionsError(f"--deploy-user {user!r} is not a valid user name",
                           hint="use lowercase letters, digits, '_' or '-', starting with a letter")
    return user


def check_host_name(name: str) -> str:
    if not _HOSTNAME.match(name):
        raise OptionsError(f"--name {name!r} is not a valid host name",
                           hint="use 1-63 lowercase letters, digits or '-' (it becomes the server's hostname)")
    return name


def check_timezone(zone: str) -> str:
    if not _TIMEZONE.match(zone) or ".." in zone:
        raise OptionsError(f"--timezone {zone!r} is not a time zone name", hint="e.g. Etc/UTC or Europe/Berlin")
    return zone


def _write_file_scripts(path: str, mode: str) -> tuple[str, str]:
    """Check and apply scripts that make ``path`` hold exactly stdin, replaced atomically."""
    target = shlex.quote(path)
    check = (f'if cmp -s - {target}; then echo "{path} is up to date"; exit {OK}; fi\n'
             f'echo "write {path}"; exit {CHANGE}\n')
    apply = (f"set -e\ntmp=$(dirname {target})/.provision-$$.tmp\ncat > \"$tmp\"\n"
             f'chmod {mode} "$tmp"\nmv -f "$tmp" {target}\necho "wrote {path}"\n')
    return check, apply


def packages_step(lock_timeout: int) -> Step:
    names = " ".join(PACKAGES)
    apt = f"apt-get -o DPkg::Lock::Timeout={int(lock_timeout)} -q"
    check = f"""missing=""
for p in {names}; do
    dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then echo "installed: {names}"; exit {OK}; fi
echo "apt-get install$missing"; exit {CHANGE}
"""
    # A fresh cloud host's first-boot unattended-upgrades holds the dpkg lock for minutes: wait for it, boundedly.
    apply = f"""export DEBIAN_FRONTEND=noninteractive
out=$({apt} update 2>&1) || {{ printf '%s\\n' "$out" | tail -15 >&2; exit 1; }}
out=$({apt} install -y --no-install-recommends {names} 2>&1) || {{ printf '%s\\n' "$out" | tail -15 >&2; exit 1; }}
echo "installed {names}"
"""
    return Step("packages (sudo, nftables, unattended-upgrades)", check, apply, timeout=2 * lock_timeout + 600)


def deploy_user_step(user: str, public_key: str) -> Step:
    key = shlex.quote(public_key.strip())
    quoted = shlex.quote(user)
    find_home = f'home=$(getent passwd {quoted} | cut -d: -f6)'
    check = f"""if ! id -u {quoted} >/dev/null 2>&1; then
    echo "create user {user} with the control host's key"; exit {CHANGE}; fi
{find_home}
if grep -qxF {key} "$home/.ssh/authorized_keys" 2>/dev/null; then
    echo "{user} has the control host's key"; exit {OK}; fi
echo "authorize the control host's key for {user}"; exit {CHANGE}
"""
    # Password '*' (none valid, not locked): sshd refuses a '!'-locked account when UsePAM is off.
    apply = f"""set -e
id -u {quoted} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --password '*' {quoted}
{find_home}
group=$(id -gn {quoted})
install -d -m 700 -o {quoted} -g "$group" "$home/.ssh"
file="$home/.ssh/authorized_keys"
touch "$file"
grep -qxF {key} "$file" || printf '%s\\n' {key} >> "$file"
chown {quoted}:"$group" "$file"
chmod 600 "$file"
echo "{user} can log in with the control host's key"
"""
    return Step(f"deploy user {user} with the control host's key", check, apply)


def sudoers_file(user: str) -> str:
    # sudo ignores drop-ins whose names contain a dot: keep the user name's dashes, never a dot.
    return f"/etc/sudoers.d/provision-{user}"


def sudoers_step(user: str) -> Step:
    path = sudoers_file(user)
    content = f"# Written by provision onboard: the deploy user runs every command as root without a password.\n" \
              f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    check, _ = _write_file_scripts(path, "440")
    # Validated before it goes live (visudo -cf), and the whole sudo config again after: a broken sudoers
    # file would take sudo away from every user.
    apply = f"""set -e
tmp=/etc/sudoers.d/.provision-$$.tmp
cat > "$tmp"
chmod 440 "$tmp"
if ! out=$(visudo -cf "$tmp" 2>&1); then rm -f "$tmp"; echo "visudo rejected the drop-in: $out" >&2; exit 1; fi
[ -e {path} ] && cp -p {path} {path}.provision-old || rm -f {path}.provision-old
mv -f "$tmp" {path}
if ! out=$(visudo -c 2>&1); then
    if [ -e {path}.provision-old ]; then mv -f {path}.provision-old {path}; else rm -f {path}; fi
    echo "sudo config invalid with the drop-in, restored: $out" >&2; exit 1
fi
rm -f {path}.provision-old
echo "wrote {path} (visudo -c passed)"
"""
    return Step(f"passwordless sudo for {user} ({path})", check, apply, stdin=content.encode())


def hostname_step(name: str) -> Step:
    check = f"""if [ "$(hostname)" = {name} ] && [ "$(cat /etc/hostname 2>/dev/null)" = {name} ] && \\
   grep -qE '^127\\.0\\.1\\.1[[:space:]]+{name}([[:space:]]|$)' /etc/hosts; then
    echo "hostname is {name}"; exit {OK}; fi
echo "hostname $(hostname) -> {name}"; exit {CHANGE}
"""
    apply = f"""set -e
if [ -d /run/systemd/system ] && command -v hostnamectl >/dev/null; then hostnamectl set-hostname {name}
else echo {name} > /etc/hostname; hostname {name}; fi
if grep -q '^127\\.0\\.1\\.1' /etc/hosts; then sed -i 's/^127\\.0\\.1\\.1.*/127.0.1.1\\t{name}/' /etc/hosts
else printf '127.0.1.1\\t%s\\n' {name} >> /etc/hosts; fi
echo "hostname set to {name}"
"""
    return Step(f"hostname {name}", check, apply)


def timezone_step(zone: str) -> Step:
    file = shlex.quote(f"/usr/share/zoneinfo/{zone}")
    check = f"""[ -f {file} ] || {{ echo "time zone {zone} is not installed on the host (tzdata)" >&2; exit 4; }}
if [ "$(readlink -f /etc/localtime)" = "$(readlink -f {file})" ]; then echo "time zone is {zone}"; exit {OK}; fi
echo "time zone $(readlink /etc/localtime | sed 's|.*zoneinfo/||') -> {zone}"; exit {CHANGE}
"""
    apply = f"""set -e
if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null; then timedatectl set-timezone {zone}
else ln -sfn {file} /etc/localtime; echo {zone} > /etc/timezone; fi
echo "time zone set to {zone}"
"""
    return Step(f"time zone {zone}", check, apply)


def swap_step(below_mb: int = SWAP_BELOW_MB, size_mb: int = SWAP_SIZE_MB) -> Step:
    check = f"""mem=$(awk '/^MemTotal:/ {{print int($2/1024)}}' /proc/meminfo)
swap=$(awk '/^SwapTotal:/ {{print int($2/1024)}}' /proc/meminfo)
if [ "$swap" -gt 0 ]; then echo "swap present (${{swap}} MB)"; exit {OK}; fi
if [ "$mem" -ge {below_mb} ]; then echo "${{mem}} MB of memory: no swap needed"; exit {OK}; fi
init=$(cat /proc/1/comm 2>/dev/null || echo unknown)
case "$init" in systemd|init) ;; *) echo "pid 1 is $init (a container or namespace): swap is the machine's, skipped"
    exit {SKIP};; esac
echo "${{mem}} MB of memory and no swap: add a {size_mb} MB {SWAPFILE}"; exit {CHANGE}
"""
    apply = f"""set -e
made=no
if [ ! -f {SWAPFILE} ]; then
    fallocate -l {size_mb}M {SWAPFILE} 2>/dev/null || dd if=/dev/zero of={SWAPFILE} bs=1M count={size_mb} status=none
    chmod 600 {SWAPFILE}; mkswap {SWAPFILE} >/dev/null; made=yes
fi
if ! err=$(swapon {SWAPFILE} 2>&1); then
    [ "$made" = yes ] && rm -f {SWAPFILE}
    echo "swapon is not possible here ($err): skipped, no swap"; exit {SKIP}
fi
grep -q '^{SWAPFILE}[[:space:]]' /etc/fstab || echo '{SWAPFILE} none swap sw 0 0' >> /etc/fstab
echo "{size_mb} MB swap on {SWAPFILE}"
"""
    return Step("swap when memory is small", check, apply, timeout=600)


def auto_upgrades_step() -> Step:
    check, apply = _write_file_scripts(AUTO_UPGRADES_FILE, "644")
    return Step("unattended security upgrades", check, apply, stdin=AUTO_UPGRADES.encode())


def bootstrap_steps(*, user: str, public_key: str, name: str, timezone: str,
                    lock_timeout: int) -> list[Step]:
    """The steps before the firewall and sshd, in order."""
    return [
        packages_step(lock_timeout),
        deploy_user_step(user, public_key),
        sudoers_step(user),
        hostname_step(name),
        timezone_step(timezone),
        swap_step(),
        auto_upgrades_step(),
    ]


Runner = Callable[[str, "bytes | None", float], "tuple[int, str, str]"]


def run_check(run: Runner, step: Step) -> Outcome:
    """Run a step's check; an unexpected exit code is a failure of the step."""
    rc, out, err = run(step.check, step.stdin, 60.0)
    if rc not in (OK, CHANGE, SKIP):
        raise StepFailed(step.name, f"its check failed (exit {rc}): {(err or out).strip()[-800:]}")
    return Outcome(rc, out.strip())


def run_apply(run: Runner, step: Step) -> Outcome:
    rc, out, err = run(step.apply, step.stdin, step.timeout)
    if rc not in (OK, SKIP):
        raise StepFailed(step.name, f"exit {rc}: {(err or out).strip()[-800:]}")
    return Outcome(rc, out.strip())


class StepFailed(Exception):
    """A step's script failed on the host."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
