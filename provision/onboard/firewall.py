"""The firewall: nftables allowing SSH, 80 and 443, applied so that a mistake cannot lock anyone out.

Established sessions survive a new ruleset; a lockout shows only at the next login. So, as
iptables-apply(8) does: the ruleset is checked with ``nft -c -f``, the whole current ruleset is
saved, and a detached job (its own session, immune to our SSH session ending) applies the new
ruleset and restores the saved one after ``revert_after`` seconds. Only a FRESH login, made after
the new ruleset is live, cancels that job. The job applies the ruleset a second after the script
that starts it has returned, so our own session never waits on a reply the new rules might drop.
"""

from __future__ import annotations

from collections.abc import Sequence

from .steps import CHANGE, OK

TABLE = "inet provision"
RULES_FILE = "/etc/provision/firewall.nft"
STATE_DIR = "/var/lib/provision/firewall"
NFTABLES_CONF = "/etc/nftables.conf"
# Seconds between starting the job and applying the rules (our script's reply is out by then).
APPLY_DELAY = 1


def render_ruleset(ssh_port: int, ports: Sequence[int] = (80, 443),
                   restricted: Sequence[tuple[Sequence[int], Sequence[str]]] = ()) -> str:
    """Our own table (other tables are left alone), replaced in one transaction by ``nft -f``.

    ``restricted``: (ports, source addresses) pairs, each port accepted from those addresses only
    (a deploy's database, Redis and files hosts: their ports from the app hosts).
    """
    allowed = ", ".join(str(p) for p in sorted({ssh_port, 22, *ports}))
    header = ("# Written by provision onboard: incoming SSH, HTTP and HTTPS only; everything the host starts "
              "itself is answered.")
    only_from = ""
    if restricted:
        header = ("# Written by provision deploy: incoming SSH, and each service port from the hosts that use it "
                  "only; everything the host starts itself is answered.")
        only_from = "".join(_restricted_rule(list(p), list(a)) for p, a in restricted if p and a)
    return f"""#!/usr/sbin/nft -f
{header}
table {TABLE}
delete table {TABLE}
table {TABLE} {{
    chain input {{
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        # SSH before the invalid-state drop: a busy long-lived session whose packets conntrack
        # misjudges (TCP window tracking under load) must never be cut by the firewall itself.
        tcp dport {ssh_port} accept
        ct state invalid drop
        iif "lo" accept
        meta l4proto {{ icmp, ipv6-icmp }} accept
        tcp dport {{ {allowed} }} accept
{only_from}    }}
}}
"""


def _restricted_rule(ports: Sequence[int], addresses: Sequence[str]) -> str:
    dports = ", ".join(str(p) for p in sorted(set(ports)))
    lines = ""
    for family, group in (("ip", [a for a in addresses if ":" not in a]), ("ip6", [a for a in addresses if ":" in a])):
        if group:
            sources = ", ".join(sorted(set(group)))
            lines += f"        {family} saddr {{ {sources} }} tcp dport {{ {dports} }} accept\n"
    return lines


def deploy_apply_script() -> str:
    """Apply the ruleset on stdin now (checked first with ``nft -c``) and keep it across reboots.

    A deploy has no second login to confirm with (onboard's revert timer, ``arm_script``): it is safe
    without one because every ruleset of ``render_ruleset`` accepts SSH before any drop, and the
    established session survives ``nft -f`` (conntrack keeps it).
    """
    return f"""set -e
command -v nft >/dev/null || {{ echo "nft is not installed (Debian package nftables)" >&2; exit 1; }}
mkdir -p "$(dirname {RULES_FILE})"
cat > {RULES_FILE}.new
if ! out=$(nft -c -f {RULES_FILE}.new 2>&1); then
    echo "nft -c rejected the ruleset: $out" >&2; rm -f {RULES_FILE}.new; exit 3
fi
nft -f {RULES_FILE}.new
mv -f {RULES_FILE}.new {RULES_FILE}
if [ -f {NFTABLES_CONF} ] && ! grep -qF 'include "{RULES_FILE}"' {NFTABLES_CONF}; then
    printf '\\n# Added by provision\\ninclude "{RULES_FILE}"\\n' >> {NFTABLES_CONF}
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then systemctl enable -q nftables || true; fi
echo "nftables: {TABLE} applied and kept in {RULES_FILE}"
"""


def check_script() -> str:
    """OK when the live ruleset is the one on stdin (kept in RULES_FILE) and our table is loaded."""
    return f"""if cmp -s - {RULES_FILE} && nft list table {TABLE} >/dev/null 2>&1; then
    echo "nftables: {TABLE} is live"; exit {OK}; fi
echo "apply the nftables ruleset, with a revert timer"; exit {CHANGE}
"""


def arm_script(revert_after: int) -> str:
    """Check the ruleset on stdin, save the current one, start the job that applies it and reverts later."""
    state = STATE_DIR
    return f"""set -e
command -v nft >/dev/null || {{ echo "nft is not installed" >&2; exit 1; }}
mkdir -p {state}
chmod 700 {state}
cat > {state}/new.nft
if ! out=$(nft -c -f {state}/new.nft 2>&1); then echo "nft -c rejected the ruleset: $out" >&2; exit 3; fi
old=$(cat {state}/job.pid 2>/dev/null || true)
[ -n "$old" ] && kill -TERM -"$old" 2>/dev/null || true
{{ echo "flush ruleset"; nft list ruleset; }} > {state}/revert.nft
echo armed > {state}/status
setsid sh -c 'sleep {APPLY_DELAY}; nft -f "$1/new.nft" && echo applied > "$1/status"
    sleep {int(revert_after)}; nft -f "$1/revert.nft"; echo reverted > "$1/status"' provision-firewall {state} \\
    </dev/null >/dev/null 2>&1 &
echo $! > {state}/job.pid
echo "armed: applies in {APPLY_DELAY} s, reverts after {int(revert_after)} s unless confirmed"
"""


def confirm_script() -> str:
    """Cancel the revert (after a fresh login worked) and keep the ruleset across reboots."""
    state = STATE_DIR
    return f"""set -e
st=$(cat {state}/status 2>/dev/null || echo none)
[ "$st" = applied ] || {{ echo "the ruleset is not live (state: $st)" >&2; exit 3; }}
pid=$(cat {state}/job.pid)
kill -TERM -"$pid" 2>/dev/null || true
for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL -"$pid" 2>/dev/null || true
st=$(cat {state}/status)
[ "$st" = applied ] || {{ echo "the revert timer fired before the confirmation (state: $st)" >&2; exit 3; }}
echo confirmed > {state}/status
rm -f {state}/job.pid
mkdir -p "$(dirname {RULES_FILE})"
cp {state}/new.nft {RULES_FILE}.tmp && mv -f {RULES_FILE}.tmp {RULES_FILE}
if [ -f {NFTABLES_CONF} ] && ! grep -qF 'include "{RULES_FILE}"' {NFTABLES_CONF}; then
    printf '\\n# Added by provision onboard\\ninclude "{RULES_FILE}"\\n' >> {NFTABLES_CONF}
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then systemctl enable -q nftables || true; fi
echo "ruleset confirmed by a fresh login and kept in {RULES_FILE}"
"""


def status_script() -> str:
    return f"cat {STATE_DIR}/status 2>/dev/null || echo none\n"
