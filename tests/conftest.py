"""What every test tier shares."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest-xdist's workers set COLUMNS=80, and provision's consoles honour COLUMNS off a terminal
# (as they should for a person who sets it): drop it so that a test sees the same output with and
# without workers. Tests that need a width make their console with one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


# `--dist loadgroup` (scripts/test.sh): each test module is its own xdist group (the old per-file
# distribution), except the multi-server e2e modules, which share one group so that their one
# session-scoped five-host deploy (tests/e2e/multiserver.py) happens once per run, on one worker.
MULTISERVER_GROUP = "multiserver"
MULTISERVER_TIMEOUT = 3600  # seconds: pyproject's 900 per test, but the first one waits for the deploy


def xdist_group_of(path: Path) -> str:
    """The xdist group of a test module: "multiserver" for tests/e2e/test_multi*.py and test_replica*.py."""
    if path.parent.name == "e2e" and path.name.startswith(("test_multi", "test_replica")):
        return MULTISERVER_GROUP
    return str(path)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group_of(item.path)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
        # whichever multi-server test runs first sets up the five-host deploy inside its own timeout
        if group == MULTISERVER_GROUP and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(MULTISERVER_TIMEOUT))
