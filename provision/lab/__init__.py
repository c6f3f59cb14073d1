"""Throwaway SSH hosts on this machine (Linux, root): ``Lab(state_dir).up(3)``, ``.status()``, ``.down()``.

Command line (``provision lab …``, or ``python -m provision.lab …`` until the CLI is wired)::

    provision lab up 3                      # lab1..lab3, key login; a second `up` keeps running hosts
    provision lab up 2 --password-host fresh1   # plus fresh1: root logs in with a password only
    provision lab status                    # exit 1 if a recorded host is not running
    provision lab ssh lab1 -- uname -a      # ssh -F <state>/ssh_config lab1 (options before HOST)
    provision lab down [--purge]            # --purge also drops the base image, proxy cache and key

State dir: ``--state-dir``, else ``$PROVISION_LAB_DIR``, else /var/lib/provision-lab. Subnet: ``--subnet``,
else ``$PROVISION_LAB_SUBNET``, else 10.213.0.0/24 (bridge .1, labN at .(10+N), other names from .200).
Base image dir: ``$PROVISION_LAB_BASE_DIR``, else ``<state>/base``.

What ``up`` writes in the state dir:

- ``inventory.yml``: group ``lab`` (key hosts: ``ssh_host``, ``ssh_port``, ``ssh_user`` root,
  ``ssh_private_key_file``, ``ssh_known_hosts_file``) and group ``lab_password`` (password hosts).
- ``ssh_config`` (strict host key checking), ``known_hosts`` (every host key pinned), ``hosts.tsv``
  (``name<TAB>address<TAB>22``), ``id_ed25519`` (the lab key).
- ``ops-password`` (mode 600): sudo password of ``ops``; ``hosts/NAME/root-password`` (mode 600) for
  password hosts. Never printed.
- ``hosts/NAME/sshd.log``: the host's sshd log (LogLevel VERBOSE; count "Starting session:" lines).
- ``lab.json``: what was created (pids with start times, netns with inode, links marked with an alias
  naming this state dir, the bridge): ``down`` removes exactly that, so it also cleans up after a crash.

Each host: an overlay of the cached Debian bookworm base (mmdebstrap minbase + openssh-server, sudo,
python3, ca-certificates, tini, …; rebuilt only when its recipe changes), its own network, PID, mount,
UTS and IPC namespaces, tini as pid 1 keeping sshd running (``service ssh restart|reload|stop`` do not end
the host). Users: root and admin (passwordless sudo) and ops (sudo with its password), all with the lab
key. No route leaves the /24: apt, pip, npm and git use the lab's own apt-cacher-ng on the bridge address
(apt cached, HTTPS tunnelled); the machine's local CA certificates are trusted inside. Services start
without systemd (``service nginx start``; package scripts start them on install).

Not a security boundary: root in a host is root on the machine (same user namespace; only the
capabilities this machine lacks are missing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.lab.lab import HostStatus, Lab, LabStatus
    from provision.lab.settings import LabHost, LabSettings

__all__ = ["HostStatus", "Lab", "LabHost", "LabSettings", "LabStatus"]

# Loaded on first use, so `provision --help` does not pay for the lab's imports.
_LAZY = {"HostStatus": "lab", "Lab": "lab", "LabStatus": "lab", "LabHost": "settings", "LabSettings": "settings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"provision.lab.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
