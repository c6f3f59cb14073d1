#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root: installs what it needs, then runs
# unit, integration (real sshd, MariaDB, Redis on loopback) and e2e (lab hosts) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_system_packages
install_python_env test
ruff check provision tests
mypy provision
python -m pytest -m "unit or integration or e2e" "$@"
