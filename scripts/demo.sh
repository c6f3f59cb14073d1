#!/usr/bin/env bash
# The main job end to end, on a fresh Debian machine as root: two lab hosts come up, `provision deploy`
# turns them into production Frappe benches (the framework stand-in of tests/fixtures, served over git
# from the lab's bridge, since this machine has no internet), and the sites answer through nginx.
# Afterwards: `provision lab ssh lab1`, and `provision lab down` to remove everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_system_packages
install_python_env
exec python scripts/demo.py "$@"
