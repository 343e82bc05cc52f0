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
# The plugin's own verdict (2 regression, 4 improvement) reaches us only as SwiftPM's exit 1
# and its "error: benchmarkThreshold…" line, so read the line.
# SwiftPM can keep planning the path dependency (ARK) with the files it had when the plan was
# made: without the old plan, a source file added to ARK since is compiled too.
rm -f .build/release.yaml
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift package benchmark thresholds check --no-progress "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [[ $rc -ne 0 ]] && grep -q "benchmarkThresholdImprovement" "$log" && ! grep -q "benchmarkThresholdRegression" "$log"; then
    rc=4
fi
case $rc in
    0) echo "check.sh: every benchmark within its thresholds" ;;
    4) echo "check.sh: improvements only; save them with Benchmarks/check.sh --update"; rc=0 ;;
    *) echo "check.sh: a REGRESSION against Thresholds/ (the deviations are above), or the run failed (exit $rc)"; rc=1 ;;
esac
exit $rc
