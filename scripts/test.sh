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
# Test files run on parallel workers, each file on one worker (tests/conftest.py; the multi-server e2e
# modules count as one file and share one deploy), each e2e module on its own lab and /24 (tests/e2e/conftest.py):
# the e2e modules mostly wait on their hosts, so three workers fit a 2-core machine.
python -m pytest -m "unit or integration or e2e" -n "${PROVISION_TEST_WORKERS:-3}" --dist loadfile "$@"
