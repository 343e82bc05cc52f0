#!/usr/bin/env bash
# Runs every ARK test on a fresh machine: installs the system packages the build and the tests
# need (hiredis, SQLite, redis-server, curl, promtool for monitoring/, Chromium and its driver
# for the console; Python's `cryptography` for the audit proof's hand check and `selenium`
# for the console's browser test), builds, and runs
# the unit, integration and end-to-end suites (the Redis Cluster ones last, on their own). Each suite that needs Redis starts its own
# private redis-server; the metrics tests pick a free port. Before the suites, the API is
# fuzzed for ARK_FUZZ_SECONDS (60; 0 skips it) by schemathesis from PyPI against its own
# OpenAPI document (scripts/fuzz_api.sh): no 5xx, no crash, every answer as documented; and
# what ARK parses (codec, JSONReader, SignalValidator, the API's intake) by libFuzzer for
# half that per target (scripts/fuzz.sh): no crash, every property held.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ark_ensure_system_packages "${ARK_SYSTEM_PACKAGES[@]}" "${ARK_TEST_PACKAGES[@]}"
# The audit proof is checked by scripts/verify_audit_proof.py, which needs `cryptography`; the
# console is driven in Debian's Chromium by Selenium (Tests/Console/console_check.py).
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check cryptography
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check selenium
swift build --build-tests
if [ "${ARK_FUZZ_SECONDS:-60}" != 0 ]; then
    ARK_BUILD=debug ARK_SKIP_BUILD=1 scripts/fuzz_api.sh "${ARK_FUZZ_SECONDS:-60}"
    # Each libFuzzer target for half as long, from its committed corpus (which holds every
    # crash found so far: each run replays them first).
    scripts/fuzz.sh $(( ${ARK_FUZZ_SECONDS:-60} / 2 ))
fi
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
# The Redis Cluster suites start six redis-servers and five agent processes of four shard
# threads each, again and again: run beside the rest on two cores they starve the suites that
# wait on a timer, so they run after them, on their own.
cluster_suites='ClusterSlotTests|ClusterConnectionTests|ClusterPipelineTests'
status=0
swift test --skip-build --skip "$cluster_suites" || status=$?
swift test --skip-build --filter "$cluster_suites" || status=$?
exit $status
