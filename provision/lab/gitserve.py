"""A ``git daemon`` on the lab's bridge address, serving a directory of repositories for as long as the lab is up.

Lab hosts reach only the lab's /24, so app repositories a demo or a test deploys from are served
here (``git://<gateway>:9418/<name>``). ``lab up --serve-git DIR`` (or ``serve_git``) starts it
and records it in ``<state>/git-daemon.json``; ``lab down`` stops the recorded process (never a
process of the same name it did not start). Starting it again for the same directory keeps the
running one.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from provision.errors import LabError
from provision.lab.settings import LabSettings
from provision.lab.state import ProcessRef, write_file_atomic
from provision.lab.system import CLEAN_ENV, signal_process, spawn_detached, tail, wait_gone

GIT_PORT = 9418
START_TIMEOUT = 15.0
RECORD_NAME = "git-daemon.json"


def record_file(settings: LabSettings) -> Path:
    return settings.state_dir / RECORD_NAME


def git_url(settings: LabSettings) -> str:
    """The base URL hosts clone from: ``git://<gateway>:9418``."""
    return f"git://{settings.gateway}:{GIT_PORT}"


def serve_git(settings: LabSettings, repos: Path) -> str:
    """Serve every repository under ``repos`` on the bridge address; returns the base URL."""
    repos = repos.resolve()
    if not repos.is_dir():
        raise LabError(f"--serve-git {repos}: no such directory", hint="give the directory holding the repositories")
    running = _recorded(settings)
    if running is not None:
        ref, served = running
        if ref.alive() and served == str(repos):
            return git_url(settings)
        stop_git(settings)
    log = settings.state_dir / "git-daemon.log"
    ref = spawn_detached([*_daemon_argv(), "--reuseaddr", "--export-all", f"--base-path={repos}",
                          f"--listen={settings.gateway}", f"--port={GIT_PORT}", str(repos)], log=log)
    write_file_atomic(record_file(settings), json.dumps(
        {"pid": ref.pid, "start_time": ref.start_time, "repos": str(repos)}) + "\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(str(settings.gateway)):
        if not ref.alive() or time.monotonic() > deadline:
            stop_git(settings)
            raise LabError(f"git daemon did not listen on {settings.gateway}:{GIT_PORT} within "
                           f"{START_TIMEOUT:.0f} s: {tail(log.read_text(errors='replace'))}",
                           hint="is the port taken? (ss -ltnp)")
        time.sleep(0.05)
    return git_url(settings)


def stop_git(settings: LabSettings) -> None:
    """Stop the recorded git daemon, if any (SIGTERM, then SIGKILL after 5 s), and forget it."""
    running = _recorded(settings)
    if running is not None:
        ref = running[0]
        signal_process(ref, signal.SIGTERM)
        try:
            wait_gone([ref], timeout=5, what="stopping the lab's git daemon")
        except LabError:
            signal_process(ref, signal.SIGKILL)
            wait_gone([ref], timeout=5, what="killing the lab's git daemon")
    record_file(settings).unlink(missing_ok=True)


def git_served(settings: LabSettings) -> bool:
    """True while the recorded git daemon runs."""
    running = _recorded(settings)
    return running is not None and running[0].alive()


def ls_remote_ok(url: str) -> bool:
    """True when ``git ls-remote URL`` answers (bounded)."""
    try:
        return subprocess.run(["git", "ls-remote", url], capture_output=True, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _daemon_argv() -> list[str]:
    """``git-daemon`` itself when git has it (the recorded pid is then the server, not git's wrapper)."""
    git = shutil.which("git", path=CLEAN_ENV["PATH"]) or "/usr/bin/git"
    try:
        exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        exec_path = ""
    daemon = Path(exec_path) / "git-daemon"
    return [str(daemon)] if exec_path and daemon.is_file() else [git, "daemon"]


def _recorded(settings: LabSettings) -> tuple[ProcessRef, str] | None:
    try:
        data = json.loads(record_file(settings).read_text())
        return ProcessRef(int(data["pid"]), int(data["start_time"])), str(data["repos"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _listening(address: str) -> bool:
    try:
        with socket.create_connection((address, GIT_PORT), timeout=1):
            return True
    except OSError:
        return False
