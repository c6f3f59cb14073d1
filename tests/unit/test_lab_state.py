"""The lab's state file: round trip, atomic writes, process identity."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from provision.errors import LabError
from provision.lab.state import HostRecord, LabState, ProcessRef, load_state, save_state

pytestmark = pytest.mark.unit


def sample() -> LabState:
    return LabState(
        subnet="10.213.0.0/24",
        bridge="plbr-213-0",
        run_netns_mount=True,
        proxy=ProcessRef(123, 456),
        hosts={
            "lab1": HostRecord("lab1", "10.213.0.11", "plab-213-0-lab1", "plv-213-0-11", "/b/base", "key",
                               ProcessRef(200, 300)),
            "pw": HostRecord("pw", "10.213.0.200", "plab-213-0-pw", "plv-213-0-200", "/b/base", "password"),
        },
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    save_state(path, sample())
    assert load_state(path, "ignored") == sample()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["lab.json"]


def test_missing_file_is_an_empty_lab(tmp_path: Path) -> None:
    state = load_state(tmp_path / "none.json", "10.1.1.0/24")
    assert state == LabState(subnet="10.1.1.0/24")
    assert state.empty()
    assert not sample().empty()


def test_unreadable_file_is_a_lab_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text('{"version": 99}')
    with pytest.raises(LabError, match="unreadable"):
        load_state(path, "10.1.1.0/24")


def test_process_ref_tells_a_recycled_pid_apart() -> None:
    ref = ProcessRef.of(os.getpid())
    assert ref is not None and ref.alive()
    assert not ProcessRef(ref.pid, ref.start_time + 1).alive()


def test_process_ref_of_an_exited_process() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert ProcessRef.of(child.pid) is None
