"""``firewall``: the host's nftables table, as onboard manages it, with service ports open to named hosts only.

The ruleset is onboard's (``provision.onboard.firewall.render_ruleset``: the one ``inet provision``
table, SSH accepted before any drop), plus ``allow`` rules: each of their ports from their addresses
only. A deploy uses it on the database, Redis and files hosts (their ports from the app hosts).
Unchanged when the rules file holds the same ruleset and the table is loaded.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import ArgumentError
from ..onboard import firewall
from .base import Arg, Module, Plan, PlanContext
from .facts import Probe


def restricted_rules(allow: list[Any]) -> list[tuple[list[int], list[str]]]:
    """``allow`` ([{ports: [...], from: [...]}, ...]) as render_ruleset's (ports, addresses) pairs."""
    rules: list[tuple[list[int], list[str]]] = []
    for entry in allow:
        if not isinstance(entry, dict) or "ports" not in entry or "from" not in entry:
            raise ArgumentError("firewall: each allow entry is {ports: [PORT, ...], from: [ADDRESS, ...]}")
        ports = [int(p) for p in (entry["ports"] if isinstance(entry["ports"], list) else [entry["ports"]])]
        sources = [str(a) for a in (entry["from"] if isinstance(entry["from"], list) else [entry["from"]])]
        rules.append((ports, sources))
    return rules


class Firewall(Module):
    """nftables: SSH and ``ports`` from anywhere, each ``allow`` entry's ports from its addresses only.

    ssh_port: the SSH port (always accepted, as is 22)
    ports: ports accepted from anywhere
    allow: [{ports: [...], from: [addresses]}]: ports accepted from those addresses only
    """

    name = "firewall"
    args = {
        "ssh_port": Arg(int, default=22),
        "ports": Arg(list, default=[]),
        "allow": Arg(list, default=[]),
    }

    def check_args(self, args: dict[str, Any]) -> None:
        restricted_rules(args["allow"])

    def ruleset(self, args: dict[str, Any]) -> str:
        return firewall.render_ruleset(args["ssh_port"], [int(p) for p in args["ports"]],
                                       restricted_rules(args["allow"]))

    def facts(self, args: dict[str, Any]) -> Probe[str]:
        return Probe(f"sha256sum {firewall.RULES_FILE} 2>/dev/null || true\n"
                     f"nft list table {firewall.TABLE} >/dev/null 2>&1 && echo live=yes || echo live=no\n", str)

    def plan(self, args: dict[str, Any], facts: str, ctx: PlanContext) -> Plan:
        ruleset = self.ruleset(args)
        digest = hashlib.sha256(ruleset.encode()).hexdigest()
        if facts.split()[:1] == [digest] and "live=yes" in facts:
            return Plan(f"nftables: {firewall.TABLE} is live")
        return Plan(f"applied the nftables ruleset ({firewall.RULES_FILE})", script=firewall.deploy_apply_script(),
                    stdin=ruleset.encode(), check_msg="would apply the nftables ruleset", timeout=60)
