"""Files the lab writes: inventory, ssh_config, known_hosts, hosts.tsv and the hosts' configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provision.lab import render
from provision.lab.settings import LabHost

pytestmark = pytest.mark.unit

KEY = Path("/s/id_ed25519")
KNOWN = Path("/s/known_hosts")
LAB1 = LabHost("lab1", "10.213.0.11", Path("/s/hosts/lab1"))
LAB2 = LabHost("lab2", "10.213.0.12", Path("/s/hosts/lab2"))
PW = LabHost("pw", "10.213.0.200", Path("/s/hosts/pw"), profile="password")


def test_inventory_has_group_lab_with_our_connection_vars() -> None:
    data = yaml.safe_load(render.render_inventory([LAB1, LAB2, PW], key_file=KEY, known_hosts=KNOWN))
    lab = data["all"]["children"]["lab"]
    assert lab["hosts"] == {"lab1": {"ssh_host": "10.213.0.11", "ssh_port": 22},
                            "lab2": {"ssh_host": "10.213.0.12", "ssh_port": 22}}
    assert lab["vars"] == {"ssh_user": "root", "ssh_private_key_file": "/s/id_ed25519",
                           "ssh_known_hosts_file": "/s/known_hosts"}
    password = data["all"]["children"]["lab_password"]
    assert password["hosts"] == {"pw": {"ssh_host": "10.213.0.200", "ssh_port": 22}}
    assert "ssh_private_key_file" not in password["vars"]


def test_inventory_without_password_hosts_has_no_empty_group() -> None:
    data = yaml.safe_load(render.render_inventory([LAB1], key_file=KEY, known_hosts=KNOWN))
    assert list(data["all"]["children"]) == ["lab"]


def test_ssh_config_is_strict_and_per_profile() -> None:
    text = render.render_ssh_config([LAB1, PW], key_file=KEY, known_hosts=KNOWN)
    lab1, pw = text.split("\n\n")[1:]
    assert lab1.splitlines()[:2] == ["Host lab1 10.213.0.11", "  HostName 10.213.0.11"]
    for block in (lab1, pw):
        assert "  StrictHostKeyChecking yes" in block
        assert "  UserKnownHostsFile /s/known_hosts" in block
    assert "  IdentityFile /s/id_ed25519" in lab1
    assert "IdentityFile" not in pw and "  PubkeyAuthentication no" in pw


def test_known_hosts_pins_name_and_address() -> None:
    text = render.render_known_hosts({LAB1: ["ssh-ed25519 AAAAkey root@lab1"],
                                      LabHost("x", "10.0.0.5", Path("/x"), port=2222): ["ssh-ed25519 BBBB"]})
    assert text == "lab1,10.213.0.11 ssh-ed25519 AAAAkey\n[x]:2222,[10.0.0.5]:2222 ssh-ed25519 BBBB\n"


def test_hosts_tsv() -> None:
    assert render.render_hosts_tsv([LAB1, PW]) == "lab1\t10.213.0.11\t22\npw\t10.213.0.200\t22\n"


def test_etc_hosts_lists_every_lab_host() -> None:
    text = render.render_etc_hosts("lab2", {"lab2": "10.213.0.12", "lab1": "10.213.0.11"}, "10.213.0.1")
    assert "127.0.1.1\tlab2" in text
    assert text.endswith("10.213.0.1\tlab-gw\n10.213.0.11\tlab1\n10.213.0.12\tlab2\n")


def test_sshd_config_profiles() -> None:
    key = render.render_sshd_config("key")
    for line in ("LogLevel VERBOSE", "MaxStartups 200:30:400", "MaxSessions 100", "UseDNS no",
                 "PasswordAuthentication no"):
        assert line in key.splitlines()
    password = render.render_sshd_config("password").splitlines()
    # Public key login stays on (no key is authorized): onboarding installs one and proves it before hardening.
    assert "PasswordAuthentication yes" in password and not any(line.startswith("Pubkey") for line in password)
    assert render.CLOUD_INIT_SSHD == "PasswordAuthentication yes\n"


def test_proxy_config_binds_the_bridge_and_tunnels_https() -> None:
    text = render.render_proxy_config(cache_dir=Path("/c"), log_dir=Path("/l"), run_dir=Path("/r"),
                                      address="10.213.0.1", port=3144)
    lines = text.splitlines()
    for line in ("BindAddress: 10.213.0.1", "Port: 3144", "CacheDir: /c", "SocketPath: /r/socket",
                 "PidFile: /r/pid", "ForeGround: 1", "PassThroughPattern: .*:443$"):
        assert line in lines
    assert not any(line.startswith(("Remap", "Proxy:")) for line in lines)


def test_proxy_settings_for_apt_pip_npm_git_and_the_environment() -> None:
    url = "http://10.213.0.1:3144"
    assert 'Acquire::http::Proxy "http://10.213.0.1:3144";' in render.render_apt_proxy(url)
    assert 'Acquire::http::Timeout "60";' in render.render_apt_proxy(url)  # a silent proxy is retried
    assert "proxy = http://10.213.0.1:3144" in render.render_pip_conf(url)
    assert "https-proxy=http://10.213.0.1:3144/" in render.render_npmrc(url)
    assert "proxy = http://10.213.0.1:3144" in render.render_gitconfig(url)
    bypass = render.no_proxy({"lab1": "10.213.0.11"}, "10.213.0.0/24")
    assert bypass == "localhost,127.0.0.1,::1,10.213.0.0/24,lab1,10.213.0.11"
    environment = render.render_environment(url, bypass)
    assert f'https_proxy="{url}"' in environment and f'no_proxy="{bypass}"' in environment


def test_shadow_password_replacement() -> None:
    shadow = "root:*:19000:0:99999:7:::\nops:!:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::"
    result = render.set_password_hashes(shadow, {"ops": "$6$salt$hash", "root": "$6$r$h"})
    assert result == "root:$6$r$h:19000:0:99999:7:::\nops:$6$salt$hash:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\n"
