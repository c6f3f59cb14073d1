"""The lab: ``up`` builds or reuses the base and starts hosts, ``down`` removes what ``up`` recorded."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.errors import LabError
from provision.lab import network, render
from provision.lab.base import RECIPES, ensure_base, remove_stale_bases, wait_for_lock
from provision.lab.gitserve import stop_git
from provision.lab.hostfs import HostFiles, hash_password, prepare_host, write_live_file
from provision.lab.launch import init_pid, start_host, stop_hosts, wait_for_sshd
from provision.lab.mirror import AptSource, machine_sources
from provision.lab.proxy import purge_proxy_cache, start_proxy, stop_proxy
from provision.lab.settings import LabHost, LabSettings, allocate_addresses, check_host_name, numbered_names
from provision.lab.state import HostRecord, LabState, load_state, save_state, write_file_atomic
from provision.lab.system import check_machine, reap, run

LOCK_TIMEOUT = 60.0
PROFILES = ("key", "password")


@dataclass(frozen=True)
class HostStatus:
    host: LabHost
    running: bool
    pid: int | None


@dataclass(frozen=True)
class LabStatus:
    """What is up: each recorded host and whether it runs, the proxy, the bridge."""

    hosts: list[HostStatus]
    proxy_running: bool
    bridge: str | None


class Lab:
    """Throwaway SSH hosts on this machine, recorded under one state directory."""

    def __init__(self, settings: LabSettings | str | Path | None = None,
                 *, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings if isinstance(settings, LabSettings) else LabSettings.create(settings)
        self.log = log or (lambda message: print(message, file=sys.stderr))

    # Public files -----------------------------------------------------------------------------------------
    @property
    def inventory(self) -> Path:
        return self.settings.inventory_file

    @property
    def ssh_config(self) -> Path:
        return self.settings.ssh_config_file

    @property
    def known_hosts(self) -> Path:
        return self.settings.known_hosts_file

    @property
    def key(self) -> Path:
        return self.settings.key_file

    @property
    def ops_password_file(self) -> Path:
        return self.settings.ops_password_file

    # Commands ---------------------------------------------------------------------------------------------
    def up(self, count: int = 1, *, password_hosts: Sequence[str] = (), base: str = "fresh") -> list[LabHost]:
        """Ensure hosts lab1..labCOUNT (key login) and ``password_hosts`` run; running hosts are kept."""
        check_machine()
        if base not in RECIPES:
            raise LabError(f"unknown lab base {base!r}", hint=f"choose one of: {', '.join(RECIPES)}")
        wanted = [*numbered_names(count), *(check_host_name(n) for n in password_hosts)]
        if len(set(wanted)) != len(wanted):
            raise LabError(f"lab host names repeat: {', '.join(wanted)}", hint="give password hosts other names")
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(s.state_dir, 0o700)
        with self._locked():
            state = load_state(s.state_file, str(s.subnet))
            if state.subnet != str(s.subnet) and not state.empty():
                raise LabError(f"the lab in {s.state_dir} runs on {state.subnet}, not {s.subnet}",
                               hint="run `provision lab down` first, or use the same subnet")
            state.subnet = str(s.subnet)
            recipe = RECIPES[base]
            sources = machine_sources(recipe.codename)
            alias = network.link_aliases().get(s.bridge)
            if alias not in (None, "", self._owner):
                raise LabError(f"bridge {s.bridge} belongs to another lab ({alias}), on {s.subnet} too",
                               hint="choose another subnet with --subnet")
            network.check_subnet_free(s.subnet, s.bridge if alias is not None else "")
            self._ensure_key()
            base_path = ensure_base(recipe, s.base_dir, sources, log=self.log)
            self._ensure_network_and_proxy(state)
            profiles = {name: "password" if name in password_hosts else "key" for name in wanted}
            self._record_hosts(state, profiles, base_path)
            started = self._start_hosts(state, wanted, base_path, sources)
            if started:
                self._refresh_etc_hosts(state, skip=started)
            self._write_outputs(state)
            remove_stale_bases(s.base_dir, {Path(r.base) for r in state.hosts.values()} | {base_path})
            return [self._host(state.hosts[name]) for name in wanted]

    def down(self, *, purge: bool = False) -> None:
        """Stop every host and remove every namespace, link, mount and proxy recorded; ``purge`` drops caches."""
        s = self.settings
        if not s.state_dir.exists():
            return
        check_machine()
        with self._locked():
            state = load_state(s.state_file, str(s.subnet))
            stop_git(s)  # what `up --serve-git` started
            stop_hosts([r.process for r in state.hosts.values() if r.process])
            for name, record in list(state.hosts.items()):
                network.delete_netns(record.netns, recorded_id=record.netns_id)
                network.delete_link(record.veth, owner=self._owner)
                shutil.rmtree(s.host_dir(name), ignore_errors=True)
                del state.hosts[name]
                save_state(s.state_file, state)
            if state.proxy:
                stop_proxy(state.proxy)
                state.proxy = None
                save_state(s.state_file, state)
            if state.bridge:
                network.delete_link(state.bridge, owner=self._owner)
                state.bridge = None
                save_state(s.state_file, state)
            if state.run_netns_mount:
                network.release_run_netns_mount()
            for path in (s.inventory_file, s.ssh_config_file, s.known_hosts_file, s.hosts_tsv_file, s.state_file):
                path.unlink(missing_ok=True)
            shutil.rmtree(s.hosts_dir, ignore_errors=True)
            if purge:
                shutil.rmtree(s.base_dir, ignore_errors=True)
                purge_proxy_cache(s)
                for path in (s.key_file, s.key_file.with_suffix(".pub"), s.ops_password_file):
                    path.unlink(missing_ok=True)
        if purge:
            (s.state_dir / "lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                s.state_dir.rmdir()

    def status(self) -> LabStatus:
        """The recorded hosts and whether each runs (reads /proc only)."""
        state = load_state(self.settings.state_file, str(self.settings.subnet))
        hosts = []
        for record in state.hosts.values():
            running = _running(record)
            pid = init_pid(record.process) if record.process and running else None
            hosts.append(HostStatus(self._host(record), running, pid))
        return LabStatus(hosts, bool(state.proxy and state.proxy.alive()), state.bridge)

    def hosts(self) -> list[LabHost]:
        """Every host recorded in the state directory."""
        state = load_state(self.settings.state_file, str(self.settings.subnet))
        return [self._host(record) for record in state.hosts.values()]

    def ssh_argv(self, host: str, command: Sequence[str] = ()) -> list[str]:
        """``ssh -F <state>/ssh_config HOST [COMMAND]``."""
        if not self.settings.ssh_config_file.exists():
            raise LabError("the lab is not up", hint="run `provision lab up` first")
        if host not in {h.name for h in self.hosts()}:
            raise LabError(f"no lab host named {host!r}", hint="see `provision lab status`")
        return ["ssh", "-F", str(self.settings.ssh_config_file), host, *command]

    # Steps of up ------------------------------------------------------------------------------------------
    def _ensure_network_and_proxy(self, state: LabState) -> None:
        s = self.settings
        if not state.bridge:
            state.run_netns_mount = state.run_netns_mount or not network.run_netns_is_mount()
            state.bridge = s.bridge
            save_state(s.state_file, state)
        network.create_bridge(s.bridge, s.gateway, s.subnet.prefixlen, owner=self._owner)
        if not (state.proxy and state.proxy.alive()):
            state.proxy = start_proxy(s)
            save_state(s.state_file, state)

    def _record_hosts(self, state: LabState, profiles: dict[str, str], base_path: Path) -> None:
        s = self.settings
        for name, profile in profiles.items():
            record = state.hosts.get(name)
            if record and record.profile != profile:
                raise LabError(f"lab host {name} exists with the {record.profile!r} profile, not {profile!r}",
                               hint="run `provision lab down` first, or pick another name")
        taken = {name: ipaddress.IPv4Address(r.address) for name, r in state.hosts.items()}
        addresses = allocate_addresses(s.subnet, taken, profiles)
        for name, profile in profiles.items():
            if name not in state.hosts:
                address = addresses[name]
                state.hosts[name] = HostRecord(name=name, address=str(address), netns=s.netns(name),
                                               veth=s.veth(address), base=str(base_path), profile=profile)
        save_state(s.state_file, state)

    def _start_hosts(self, state: LabState, wanted: Sequence[str], base_path: Path,
                     sources: Sequence[AptSource]) -> set[str]:
        s = self.settings
        to_start = [state.hosts[n] for n in wanted if not _running(state.hosts[n])]
        if not to_start:
            return set()
        ops_hash = hash_password(self._secret(s.ops_password_file))
        addresses = {name: r.address for name, r in state.hosts.items()}
        started = []
        begin = time.monotonic()
        for record in to_start:
            if record.process:
                reap(record.process.pid)  # a crashed host that was our child
            if not Path(record.base).is_dir():
                # Its base was rebuilt from a new recipe: the old upper layer no longer fits.
                shutil.rmtree(s.host_dir(record.name), ignore_errors=True)
                record.base = str(base_path)
            host = self._host(record)
            hashes = {"ops": ops_hash}
            if record.profile == "password":
                host.directory.mkdir(parents=True, exist_ok=True)
                hashes["root"] = hash_password(self._secret(host.root_password_file))
            prepare_host(host, HostFiles(
                base=Path(record.base), public_key=s.key_file.with_suffix(".pub").read_text().strip(),
                password_hashes=hashes, addresses=addresses, gateway=str(s.gateway), subnet=str(s.subnet),
                proxy_url=s.proxy_url, sources=sources,
            ))
            record.netns_id = network.create_netns(record.netns, expected_id=record.netns_id)
            save_state(s.state_file, state)
            network.connect_host(record.netns, record.veth, s.bridge, ipaddress.IPv4Address(record.address),
                                 s.subnet.prefixlen, owner=self._owner)
            record.process = start_host(host, netns=record.netns, base=Path(record.base))
            save_state(s.state_file, state)
            started.append((host, record.process))
        wait_for_sshd(started)
        self.log(f"started {len(started)} lab host(s) in {time.monotonic() - begin:.1f} s")
        return {host.name for host, _ in started}

    def _refresh_etc_hosts(self, state: LabState, *, skip: set[str]) -> None:
        """Running hosts learn the names of hosts added after them."""
        addresses = {name: r.address for name, r in state.hosts.items()}
        for name, record in state.hosts.items():
            pid = init_pid(record.process) if record.process and name not in skip else None
            if pid is not None:
                text = render.render_etc_hosts(name, addresses, str(self.settings.gateway))
                with contextlib.suppress(OSError):
                    write_live_file(pid, "etc/hosts", text)

    def _write_outputs(self, state: LabState) -> None:
        s = self.settings
        hosts = [self._host(r) for r in state.hosts.values()]
        host_keys = {h: [p.read_text().strip() for p in h.host_key_files()] for h in hosts}
        write_file_atomic(s.known_hosts_file, render.render_known_hosts(host_keys))
        write_file_atomic(s.ssh_config_file, render.render_ssh_config(hosts, key_file=s.key_file,
                                                                      known_hosts=s.known_hosts_file))
        write_file_atomic(s.inventory_file, render.render_inventory(hosts, key_file=s.key_file,
                                                                    known_hosts=s.known_hosts_file))
        write_file_atomic(s.hosts_tsv_file, render.render_hosts_tsv(hosts))

    # Helpers ----------------------------------------------------------------------------------------------
    @property
    def _owner(self) -> str:
        return network.owner_tag(self.settings.state_dir)

    def _host(self, record: HostRecord) -> LabHost:
        return LabHost(record.name, record.address, self.settings.host_dir(record.name), record.profile)

    def _ensure_key(self) -> None:
        key = self.settings.key_file
        if not key.exists() or not key.with_suffix(".pub").exists():
            key.unlink(missing_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-lab", "-f", str(key)],
                what="generating the lab key")

    @staticmethod
    def _secret(path: Path) -> str:
        """A generated password kept in a mode-600 file; never printed."""
        if not path.exists():
            write_file_atomic(path, secrets.token_urlsafe(18) + "\n", mode=0o600)
        return path.read_text().strip()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One lab command at a time per state directory."""
        path = self.settings.state_dir / "lock"
        with open(path, "a") as handle:
            wait_for_lock(handle, timeout=LOCK_TIMEOUT, what="another lab command in this state directory")
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _running(record: HostRecord) -> bool:
    return record.process is not None and record.process.alive()
