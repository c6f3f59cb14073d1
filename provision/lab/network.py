"""The lab's network: a bridge in the root namespace, and one network namespace plus veth pair per host."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from provision.errors import LabError
from provision.lab.system import run

NETNS_DIR = Path("/run/netns")


def links() -> set[str]:
    """Names of the root namespace's network links."""
    return {item["ifname"] for item in json.loads(run(["ip", "-j", "link", "show"], what="listing links").stdout)}


def netns_names() -> set[str]:
    """Named network namespaces (``ip netns list``)."""
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def check_subnet_free(subnet: ipaddress.IPv4Network, own_bridge: str) -> None:
    """A LabError if any link but our bridge has an address in, or a route into, the lab's /24."""
    data = json.loads(run(["ip", "-j", "-4", "addr", "show"], what="listing addresses").stdout)
    for link in data:
        for info in link.get("addr_info", []):
            network = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            if link["ifname"] != own_bridge and network.overlaps(subnet):
                raise LabError(
                    f"the lab subnet {subnet} overlaps {network} on {link['ifname']}",
                    hint="choose another private /24 with --subnet or PROVISION_LAB_SUBNET",
                )


def run_netns_is_mount() -> bool:
    """True if /run/netns is a mount point (``ip netns add`` makes it one the first time)."""
    target = str(NETNS_DIR)
    return any(line.split()[4] == target for line in Path("/proc/self/mountinfo").read_text().splitlines())


def release_run_netns_mount() -> None:
    """Unmount /run/netns once no namespace is left in it (the lab made that mount)."""
    if run_netns_is_mount() and not netns_names():
        run(["umount", str(NETNS_DIR)], what="unmounting /run/netns", check=False)


def link_aliases() -> dict[str, str]:
    """Each root-namespace link and its alias (the lab marks its links with their owner)."""
    data = json.loads(run(["ip", "-j", "link", "show"], what="listing links").stdout)
    return {item["ifname"]: item.get("ifalias", "") for item in data}


def owner_tag(state_dir: Path) -> str:
    """The alias that marks a link as made by the lab of ``state_dir``."""
    return f"provision-lab:{state_dir}"


def create_bridge(name: str, gateway: ipaddress.IPv4Address, prefix: int, *, owner: str) -> None:
    """The lab bridge with the gateway address; IPv6 off so hosts get no link-local path to the machine."""
    _add_link(name, ["type", "bridge"], owner=owner, what="bridge")
    _disable_ipv6(name)
    run(["ip", "addr", "replace", f"{gateway}/{prefix}", "dev", name], what=f"addressing bridge {name}")
    run(["ip", "link", "set", name, "up"], what=f"bringing up bridge {name}")


def delete_link(name: str, *, owner: str) -> None:
    """Delete a link this lab made (its alias says so); a veth may already have vanished with its namespace."""
    alias = link_aliases().get(name)
    if alias is None or alias not in ("", owner):
        return
    result = run(["ip", "link", "del", name], what=f"deleting link {name}", check=False)
    if result.returncode != 0 and name in links():
        raise LabError(f"deleting link {name} failed: {result.stderr.strip()}",
                       hint=f"remove it by hand (ip link del {name}), then run `provision lab down` again")


def netns_id(netns: str) -> int | None:
    """The namespace's inode number (unique while it exists), None if there is no such namespace."""
    try:
        return (NETNS_DIR / netns).stat().st_ino
    except FileNotFoundError:
        return None


def create_netns(netns: str, *, expected_id: int) -> int:
    """Create the namespace, or reuse it if it is the one this lab recorded; its id."""
    current = netns_id(netns)
    if current is not None:
        if current != expected_id:
            raise LabError(f"network namespace {netns} exists but this lab did not create it",
                           hint="another lab uses the same subnet: choose another with --subnet")
        return current
    run(["ip", "netns", "add", netns], what=f"creating network namespace {netns}")
    created = netns_id(netns)
    if created is None:
        raise LabError(f"network namespace {netns} vanished right after `ip netns add`")
    return created


def connect_host(netns: str, veth: str, bridge: str, address: ipaddress.IPv4Address, prefix: int, *,
                 owner: str) -> None:
    """Give the namespace one link, ``eth0`` on the bridge; no default route, so it reaches only the /24."""
    if veth not in links():
        _add_link(veth, ["type", "veth", "peer", "name", "eth0", "netns", netns], owner=owner, what="veth")
    elif link_aliases().get(veth) not in ("", owner):
        raise LabError(f"veth {veth} exists but this lab did not create it",
                       hint="another lab uses the same subnet: choose another with --subnet")
    _disable_ipv6(veth)
    run(["ip", "link", "set", veth, "master", bridge, "up"], what=f"attaching {veth} to {bridge}")
    inside = ["ip", "-n", netns]
    run(["nsenter", f"--net={NETNS_DIR / netns}", "sh", "-c",
         "test ! -e /proc/sys/net/ipv6 || echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"],
        what=f"disabling IPv6 on eth0 of {netns}")
    run([*inside, "addr", "replace", f"{address}/{prefix}", "dev", "eth0"], what=f"addressing eth0 in {netns}")
    run([*inside, "link", "set", "eth0", "up"], what=f"bringing up eth0 in {netns}")
    run([*inside, "link", "set", "lo", "up"], what=f"bringing up lo in {netns}")


def delete_netns(netns: str, *, recorded_id: int) -> None:
    """Delete the namespace if it is the one this lab recorded."""
    if recorded_id and netns_id(netns) == recorded_id:
        run(["ip", "netns", "del", netns], what=f"deleting network namespace {netns}")


def _add_link(name: str, spec: list[str], *, owner: str, what: str) -> None:
    alias = link_aliases().get(name)
    if alias is None:
        run(["ip", "link", "add", name, *spec], what=f"creating {what} {name}")
    elif alias not in ("", owner):
        raise LabError(f"{what} {name} exists and belongs to another lab ({alias})",
                       hint="choose another subnet with --subnet")
    run(["ip", "link", "set", name, "alias", owner], what=f"marking {what} {name}")


def _disable_ipv6(link: str) -> None:
    path = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
    if path.exists():
        path.write_text("1\n")
