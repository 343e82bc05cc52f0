#!/usr/bin/env bash
# Runs the hot-path benchmarks (release) and compares their p90 figures with the ones saved
# in Thresholds/, within the tolerances set in Benchmarks/HotPaths/HotPaths.swift.
# Exit 0: no regression (improvements are reported, and pass); 1: a regression, or the run failed.
#   Benchmarks/check.sh [--filter REGEX]   compare with the saved thresholds
#   Benchmarks/check.sh --update   save this run's figures as the new thresholds (commit them)
set -uo pipefail
cd "$(dirname "$0")"
if [[ "${1:-}" == "--update" ]]; then
    exec swift package --allow-writing-to-package-directory benchmark thresholds update --no-progress
fi
swift package benchmark thresholds check --no-progress "$@"
rc=$?
case $rc in
    0) echo "check.sh: every benchmark within its thresholds" ;;
    4) echo "check.sh: improvements only; save them with Benchmarks/check.sh --update"; rc=0 ;;
    *) echo "check.sh: a REGRESSION against Thresholds/ (the deviations are above), or the run failed (exit $rc)"; rc=1 ;;
esac
exit $rc
