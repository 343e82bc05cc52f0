#!/usr/bin/env bash
# Runs every ARK test on a fresh machine: installs the system packages the build and the tests
# need (hiredis, SQLite, redis-server, curl, and promtool for monitoring/), builds, and runs
# the unit, integration and end-to-end suites. Each suite that needs Redis starts its own
# private redis-server; the metrics tests pick a free port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ark_ensure_system_packages "${ARK_SYSTEM_PACKAGES[@]}" "${ARK_TEST_PACKAGES[@]}"
swift build --build-tests
swift test --skip-build "$@"
