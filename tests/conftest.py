"""What every test tier shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# pytest-xdist's workers set COLUMNS=80, and provision's consoles honour COLUMNS off a terminal
# (as they should for a person who sets it): drop it so that a test sees the same output with and
# without workers. Tests that need a width make their console with one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


# `--dist loadfile` (scripts/test.sh): each test module runs on one xdist worker, except that the
# multi-server e2e modules count as one module, so their one session-scoped five-host deploy
# (tests/e2e/multiserver.py) happens once per run, on one worker. (xdist's own `loadgroup` cannot
# do this here: with pytest 9 its group suffix on the node ids is lost and every test of a module
# is scheduled alone, so each worker would set up the module fixtures, and the five hosts, again.)
MULTISERVER_GROUP = "multiserver"
MULTISERVER_TIMEOUT = 3600  # seconds: pyproject's 900 per test, but the first one waits for the deploy


def xdist_scope_of(nodeid: str) -> str:
    """The module a test is scheduled with: its file, or "multiserver" for tests/e2e/test_multi*.py and
    test_replica*.py."""
    path = Path(nodeid.split("::", 1)[0])
    if path.parent.name == "e2e" and path.name.startswith(("test_multi", "test_replica")):
        return MULTISERVER_GROUP
    return str(path)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope_of(nodeid)

    return ModuleScheduling(config, log)


# the multi-server modules in the order they were proven in: deploy, update, backup, replica
MULTISERVER_ORDER = ("test_multi_deploy.py", "test_multi_update.py", "test_multi_backup.py", "test_replica_multi.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    places = [i for i, item in enumerate(items) if xdist_scope_of(item.nodeid) == MULTISERVER_GROUP]
    ordered = sorted((items[i] for i in places), key=lambda item: (
        MULTISERVER_ORDER.index(item.path.name) if item.path.name in MULTISERVER_ORDER else len(MULTISERVER_ORDER)))
    for place, item in zip(places, ordered, strict=True):
        items[place] = item
        # whichever multi-server test runs first sets up the five-host deploy inside its own timeout
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(MULTISERVER_TIMEOUT))
