"""Where a lab keeps its files, what its network is called, and which host gets which address."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from provision.errors import LabError

DEFAULT_STATE_DIR = Path("/var/lib/provision-lab")
DEFAULT_SUBNET = "10.213.0.0/24"
# Not 3142: a system apt-cacher-ng service (started by its Debian package) listens there on every address.
DEFAULT_PROXY_PORT = 3144
STATE_DIR_ENV = "PROVISION_LAB_DIR"
SUBNET_ENV = "PROVISION_LAB_SUBNET"
BASE_DIR_ENV = "PROVISION_LAB_BASE_DIR"

HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_NUMBERED = re.compile(r"^lab([1-9][0-9]*)$")
# labN gets .(10+N); any other name (e.g. a password host) gets the lowest free address from here up.
_NUMBERED_OFFSET = 10
_NAMED_FIRST = 200


@dataclass(frozen=True)
class LabSettings:
    """The fixed parameters of one lab: its directories, its /24 and its proxy port."""

    state_dir: Path
    subnet: ipaddress.IPv4Network
    proxy_port: int = DEFAULT_PROXY_PORT
    base_root: Path | None = None

    @classmethod
    def create(
        cls,
        state_dir: str | Path | None = None,
        *,
        subnet: str | None = None,
        proxy_port: int = DEFAULT_PROXY_PORT,
        base_dir: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LabSettings:
        """Settings from explicit values, else the environment, else the defaults."""
        env = os.environ if environ is None else environ
        directory = Path(state_dir or env.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
        base = base_dir or env.get(BASE_DIR_ENV)
        return cls(
            state_dir=directory.absolute(),
            subnet=parse_subnet(subnet or env.get(SUBNET_ENV) or DEFAULT_SUBNET),
            proxy_port=proxy_port,
            base_root=Path(base).absolute() if base else None,
        )

    @property
    def tag(self) -> str:
        """A short name for this lab's network objects, derived from its /24 (e.g. ``213-0``)."""
        octets = str(self.subnet.network_address).split(".")
        return f"{octets[1]}-{octets[2]}"

    @property
    def bridge(self) -> str:
        return f"plbr-{self.tag}"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's address: the proxy listens here, nothing is routed through it."""
        return self.subnet.network_address + 1

    @property
    def proxy_url(self) -> str:
        return f"http://{self.gateway}:{self.proxy_port}"

    def netns(self, host: str) -> str:
        return f"plab-{self.tag}-{host}"

    def veth(self, address: ipaddress.IPv4Address) -> str:
        """Root-side veth name; at most 15 characters, as Linux requires."""
        return f"plv-{self.tag}-{str(address).rsplit('.', 1)[1]}"

    @property
    def base_dir(self) -> Path:
        return self.base_root or self.state_dir / "base"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    @property
    def proxy_dir(self) -> Path:
        return self.state_dir / "proxy"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def ops_password_file(self) -> Path:
        return self.state_dir / "ops-password"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def inventory_file(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def ssh_config_file(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def known_hosts_file(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def hosts_tsv_file(self) -> Path:
        return self.state_dir / "hosts.tsv"


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """A private IPv4 /24, or a LabError saying why not."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"lab subnet {text!r} is not a network: {exc}", hint="give e.g. 10.213.0.0/24") from None
    if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen != 24 or not network.is_private:
        raise LabError(f"lab subnet {text!r} must be a private IPv4 /24", hint="give e.g. 10.213.0.0/24")
    return network


def check_host_name(name: str) -> str:
    """The name itself if it can name a lab host (and a netns), else a LabError."""
    if not HOST_NAME.match(name):
        raise LabError(
            f"lab host name {name!r} is not valid",
            hint="use 1-16 lowercase letters, digits or '-', starting with a letter",
        )
    return name


def numbered_names(count: int) -> list[str]:
    """The key-login hosts of an ``up COUNT``: lab1 … labCOUNT."""
    limit = _NAMED_FIRST - _NUMBERED_OFFSET - 1
    if not 0 <= count <= limit:
        raise LabError(f"a lab has 0 to {limit} numbered hosts, not {count}")
    return [f"lab{n}" for n in range(1, count + 1)]


def allocate_addresses(
    subnet: ipaddress.IPv4Network,
    taken: Mapping[str, ipaddress.IPv4Address],
    names: Iterable[str],
) -> dict[str, ipaddress.IPv4Address]:
    """Addresses for ``names``: hosts in ``taken`` keep theirs, labN gets .(10+N), others the lowest free .200+."""
    result = dict(taken)
    used = set(taken.values())
    for name in names:
        if name in result:
            continue
        match = _NUMBERED.match(name)
        if match and int(match.group(1)) < _NAMED_FIRST - _NUMBERED_OFFSET:
            candidates: Iterable[int] = [_NUMBERED_OFFSET + int(match.group(1))]
        else:
            candidates = range(_NAMED_FIRST, 255)
        address = next((subnet.network_address + c for c in candidates if subnet.network_address + c not in used),
                       None)
        if address is None:
            raise LabError(f"no free address in {subnet} for lab host {name!r}",
                           hint="bring some hosts down (provision lab down) or use fewer named hosts")
        result[name] = address
        used.add(address)
    return result


@dataclass(frozen=True)
class LabHost:
    """A lab host as users see it: its name, address, login profile and files."""

    name: str
    address: str
    directory: Path
    profile: str = "key"
    port: int = 22

    @property
    def upper_dir(self) -> Path:
        """The host's writable overlay layer (its changes to the base)."""
        return self.directory / "upper"

    @property
    def work_dir(self) -> Path:
        return self.directory / "work"

    @property
    def root_dir(self) -> Path:
        """Mount point of the host's root; mounted only inside the host's own mount namespace."""
        return self.directory / "root"

    @property
    def sshd_log(self) -> Path:
        """sshd's log (LogLevel VERBOSE): count sessions by its "Starting session:" lines."""
        return self.directory / "sshd.log"

    @property
    def root_password_file(self) -> Path:
        """Root's password (mode 600), only for hosts of the ``password`` profile."""
        return self.directory / "root-password"

    def host_key_files(self) -> list[Path]:
        return sorted((self.upper_dir / "etc" / "ssh").glob("ssh_host_*_key.pub"))
