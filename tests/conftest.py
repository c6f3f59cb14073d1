"""What every test tier shares."""

from __future__ import annotations

import os

# pytest-xdist's workers set COLUMNS=80, and provision's consoles honour COLUMNS off a terminal
# (as they should for a person who sets it): drop it so that a test sees the same output with and
# without workers. Tests that need a width make their console with one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
