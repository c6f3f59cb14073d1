"""The lab's own apt-cacher-ng: caches apt for every host and tunnels HTTPS (pip, npm) on the bridge address."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time

from provision.errors import LabError
from provision.lab.render import render_proxy_config
from provision.lab.settings import LabSettings
from provision.lab.state import ProcessRef
from provision.lab.state import write_file_atomic as write_file
from provision.lab.system import CLEAN_ENV, signal_process, spawn_detached, tail, wait_gone

START_TIMEOUT = 15.0


def start_proxy(settings: LabSettings) -> ProcessRef:
    """Start apt-cacher-ng with the lab's config, listening on the bridge address only."""
    directory = settings.proxy_dir
    conf_dir, cache_dir, log_dir, run_dir = (directory / n for n in ("conf", "cache", "log", "run"))
    for path in (conf_dir, cache_dir, log_dir, run_dir):
        path.mkdir(parents=True, exist_ok=True)
    upstream = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")
    write_file(conf_dir / "acng.conf", render_proxy_config(
        cache_dir=cache_dir, log_dir=log_dir, run_dir=run_dir, address=str(settings.gateway),
        port=settings.proxy_port, upstream=upstream,
    ))
    binary = shutil.which("apt-cacher-ng", path=CLEAN_ENV["PATH"]) or "/usr/sbin/apt-cacher-ng"
    console = directory / "console.log"
    ref = spawn_detached([binary, "-c", str(conf_dir)], log=console)
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(str(settings.gateway), settings.proxy_port):
        if not ref.alive() or time.monotonic() > deadline:
            stop_proxy(ref)
            raise LabError(
                f"the lab proxy (apt-cacher-ng) did not listen on {settings.gateway}:{settings.proxy_port} "
                f"within {START_TIMEOUT:.0f} s: {tail(console.read_text(errors='replace'))}",
                hint=f"is the port taken? (ss -ltnp); see {console} and {log_dir}",
            )
        time.sleep(0.05)
    return ref


def stop_proxy(ref: ProcessRef) -> None:
    """Stop the recorded apt-cacher-ng (SIGTERM, then SIGKILL after 5 s)."""
    signal_process(ref, signal.SIGTERM)
    try:
        wait_gone([ref], timeout=5, what="stopping the lab proxy")
    except LabError:
        signal_process(ref, signal.SIGKILL)
        wait_gone([ref], timeout=5, what="killing the lab proxy")


def purge_proxy_cache(settings: LabSettings) -> None:
    shutil.rmtree(settings.proxy_dir, ignore_errors=True)


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False
