"""Hardening sshd: no password logins, no root logins, and never a config that locks anyone out.

sshd keeps the FIRST value it reads for most keywords, and Debian's sshd_config includes
``sshd_config.d/*.conf`` in name order at its top: a cloud image's ``50-cloud-init.conf`` with
``PasswordAuthentication yes`` beats any later drop-in (cloud-init#5934). Ours is ``00-provision.conf``.
The drop-in goes in with ``sshd -t`` checked before the reload (the old file is restored if it
fails), ``sshd -T`` asserts the effective values after it, and the caller proves a fresh key
login before it forgets the backup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .steps import CHANGE, OK

DROPIN = "/etc/ssh/sshd_config.d/00-provision.conf"
BACKUP = DROPIN + ".provision-old"
HARDENED = {
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "permitrootlogin": "no",
    "pubkeyauthentication": "yes",
}
RELOAD = """if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl reload ssh 2>/dev/null || systemctl reload sshd
elif [ -x /etc/init.d/ssh ]; then /etc/init.d/ssh reload >/dev/null
elif [ -f /run/sshd.pid ]; then kill -HUP "$(cat /run/sshd.pid)"
else echo "cannot tell how to reload sshd here" >&2; exit 1; fi
"""


def dropin_text() -> str:
    lines = ["# Written by provision onboard. sshd keeps the FIRST value it reads: this file's name sorts before",
             "# 50-cloud-init.conf and every other drop-in, so these values win."]
    names = {"passwordauthentication": "PasswordAuthentication", "kbdinteractiveauthentication":
             "KbdInteractiveAuthentication", "permitrootlogin": "PermitRootLogin",
             "pubkeyauthentication": "PubkeyAuthentication"}
    lines += [f"{names[key]} {value}" for key, value in HARDENED.items()]
    return "\n".join(lines) + "\n"


def effective_script(users: Sequence[str]) -> str:
    """Print ``user key value`` for the hardened keywords as ``sshd -T`` computes them per user (Match blocks)."""
    keys = "|".join(HARDENED)
    parts = []
    for user in users:
        parts.append(f"sshd -T -C user={user},host=provision-check,addr=127.0.0.1 | "
                     f"awk -v u={user} 'tolower($1) ~ /^({keys})$/ {{print u, tolower($1), $2}}'")
    return "set -e\n" + "\n".join(parts) + "\n"


def parse_effective(text: str) -> dict[str, dict[str, str]]:
    """user → keyword → value, from ``effective_script``'s output."""
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3:
            found.setdefault(words[0], {})[words[1]] = words[2]
    return found


def not_hardened(effective: Mapping[str, Mapping[str, str]], users: Sequence[str]) -> list[str]:
    """``user: keyword is X, want Y`` for each value that is not the hardened one."""
    wrong = []
    for user in users:
        values = effective.get(user, {})
        for key, want in HARDENED.items():
            if values.get(key) != want:
                wrong.append(f"{user}: {key} is {values.get(key, 'unknown')}, want {want}")
    return wrong


def check_script(users: Sequence[str]) -> str:
    """OK when our drop-in is the one on stdin and sshd -T shows the hardened values."""
    keys = "|".join(HARDENED)
    tests = " && ".join(
        f"[ \"$(sshd -T -C user={user},host=provision-check,addr=127.0.0.1 | awk 'tolower($1) ~ /^({keys})$/' "
        f"| tr A-Z a-z | sort | tr '\\n' ' ')\" = {_expected_line()!r} ]" for user in users)
    return f"""if cmp -s - {DROPIN} && {tests}; then echo "sshd is hardened ({DROPIN})"; exit {OK}; fi
echo "write {DROPIN}: no password or root login"; exit {CHANGE}
"""


def _expected_line() -> str:
    return " ".join(f"{key} {value}" for key, value in sorted(HARDENED.items())) + " "


def preflight_script() -> str:
    """The host's current sshd config must pass ``sshd -t`` before we add to it (exit 3 with its error)."""
    return """if ! out=$(sshd -t 2>&1); then echo "$out"; exit 3; fi
grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\\.d/' /etc/ssh/sshd_config || {
    echo "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf"; exit 3; }
echo ok
"""


def install_script() -> str:
    """Put the drop-in on stdin in place; ``sshd -t`` must pass or the old file comes back; then reload."""
    return f"""set -u
mkdir -p "$(dirname {DROPIN})"
if [ -e {DROPIN} ]; then cp -p {DROPIN} {BACKUP}; else rm -f {BACKUP}; fi
cat > {DROPIN}.tmp && chmod 644 {DROPIN}.tmp && mv -f {DROPIN}.tmp {DROPIN} || exit 1
if ! out=$(sshd -t 2>&1); then
    if [ -e {BACKUP} ]; then mv -f {BACKUP} {DROPIN}; else rm -f {DROPIN}; fi
    echo "sshd -t rejected the hardened config, the previous one is back: $out" >&2; exit 3
fi
{RELOAD}echo "sshd reloaded with {DROPIN}"
"""


def restore_script() -> str:
    """Back to the config before ``install_script`` (its backup, or no drop-in at all), reloaded."""
    return f"""set -u
if [ -e {BACKUP} ]; then mv -f {BACKUP} {DROPIN}; else rm -f {DROPIN}; fi
sshd -t || exit 1
{RELOAD}echo "previous sshd config restored and reloaded"
"""


def forget_backup_script() -> str:
    return f"rm -f {BACKUP}\n"
