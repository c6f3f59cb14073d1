"""Lab settings: subnet checks, derived names, host names and address allocation."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from provision.errors import LabError
from provision.lab.settings import (
    DEFAULT_STATE_DIR,
    LabSettings,
    allocate_addresses,
    check_host_name,
    numbered_names,
    parse_subnet,
)

pytestmark = pytest.mark.unit

NET = ipaddress.IPv4Network("10.213.0.0/24")


def addr(last: int) -> ipaddress.IPv4Address:
    return NET.network_address + last


def test_defaults_and_environment_overrides() -> None:
    assert LabSettings.create(environ={}).state_dir == DEFAULT_STATE_DIR
    settings = LabSettings.create(environ={"PROVISION_LAB_DIR": "/srv/l", "PROVISION_LAB_SUBNET": "10.9.8.0/24"})
    assert settings.state_dir == Path("/srv/l")
    assert str(settings.subnet) == "10.9.8.0/24"
    explicit = LabSettings.create("/x", subnet="10.1.2.0/24", environ={"PROVISION_LAB_DIR": "/srv/l"})
    assert explicit.state_dir == Path("/x")
    assert explicit.base_dir == Path("/x/base")
    assert LabSettings.create("/x", base_dir="/cache", environ={}).base_dir == Path("/cache")


def test_names_derive_from_the_subnet_and_fit_linux_limits() -> None:
    settings = LabSettings.create("/x", subnet="10.255.255.0/24", environ={})
    assert settings.bridge == "plbr-255-255"
    assert settings.veth(ipaddress.IPv4Address("10.255.255.254")) == "plv-255-255-254"
    assert len(settings.veth(ipaddress.IPv4Address("10.255.255.254"))) <= 15
    assert settings.netns("lab1") == "plab-255-255-lab1"
    assert str(settings.gateway) == "10.255.255.1"
    assert settings.proxy_url == "http://10.255.255.1:3144"


@pytest.mark.parametrize("text", ["8.8.8.0/24", "10.0.0.0/16", "10.0.0.1/24", "nonsense", "fd00::/64"])
def test_bad_subnets_are_refused(text: str) -> None:
    with pytest.raises(LabError, match="subnet"):
        parse_subnet(text)


@pytest.mark.parametrize("name", ["Lab1", "1lab", "lab_1", "a" * 17, ""])
def test_bad_host_names_are_refused(name: str) -> None:
    with pytest.raises(LabError, match="not valid"):
        check_host_name(name)


def test_numbered_names() -> None:
    assert numbered_names(3) == ["lab1", "lab2", "lab3"]
    assert numbered_names(0) == []
    with pytest.raises(LabError):
        numbered_names(500)


def test_numbered_hosts_get_fixed_addresses_and_others_the_lowest_free_from_200() -> None:
    result = allocate_addresses(NET, {}, ["lab1", "lab3", "pw", "fresh"])
    assert result == {"lab1": addr(11), "lab3": addr(13), "pw": addr(200), "fresh": addr(201)}


def test_existing_hosts_keep_their_addresses() -> None:
    taken = {"pw": addr(200), "lab2": addr(12)}
    result = allocate_addresses(NET, taken, ["lab2", "other", "lab1"])
    assert result["pw"] == addr(200)
    assert result["lab2"] == addr(12)
    assert result["other"] == addr(201)
    assert result["lab1"] == addr(11)


def test_running_out_of_addresses_is_a_clear_error() -> None:
    taken = {f"h{i}": addr(i) for i in range(200, 255)}
    with pytest.raises(LabError, match="no free address"):
        allocate_addresses(NET, taken, ["one-more"])
