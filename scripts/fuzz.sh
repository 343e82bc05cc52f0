#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with AddressSanitizer) of what ARK parses from outside:
# the event codec, JSONReader, Kyle's SignalValidator on the real clock, the API's intake and
# query parsing, and the paper book's arithmetic (the Fuzz/ package). Each target runs SECONDS (default 30) from its
# committed corpus (Fuzz/Corpus/<target>) and a scratch copy, so the committed corpus changes
# only when you ask:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]          # e.g. scripts/fuzz.sh 300 FuzzJSONReader
#   ARK_FUZZ_MERGE=1 scripts/fuzz.sh 600           # and merge what grew into Fuzz/Corpus
#
# A crash (a trap, a broken property, a memory error) stops the run with exit 1 and leaves
# the input in .ark/fuzz/crashes/<target>/; make it a regression test (docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzEventCodec FuzzJSONReader FuzzSignalValidator FuzzAPIIntake FuzzPaperBook)
echo "Building the fuzz targets (release, -sanitize=fuzzer,address)"
mkdir -p .ark/fuzz
# Once more on failure, without the old build plan: SwiftPM can keep planning a path
# dependency with the files it had when the plan was made, so a source file added to ARK
# since the last fuzz build is missing ("cannot find 'X' in scope").
swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address >.ark/fuzz/build.log 2>&1 ||
    { rm -f Fuzz/.build/release.yaml && swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address >.ark/fuzz/build.log 2>&1; } ||
    { tail -40 .ark/fuzz/build.log; exit 1; }
bin=$(swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address --show-bin-path)
status=0
for t in "${targets[@]}"; do
    work=.ark/fuzz/corpus/$t crashes=.ark/fuzz/crashes/$t
    mkdir -p "$work" "$crashes"
    echo "Fuzzing $t for ${seconds}s"
    # -use_value_profile: compare operands guide it too (numbers, key names).
    if ! "$bin/$t" -max_total_time="$seconds" -dict=Fuzz/json.dict -use_value_profile=1 -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "Fuzz/Corpus/$t" >".ark/fuzz/$t.log" 2>&1; then
        echo "$t: CRASH (input in $crashes/)"; grep -E "ERROR|Fatal error|Precondition|SUMMARY|precondition" ".ark/fuzz/$t.log" | head -5
        status=1
        continue
    fi
    grep -E "stat::number_of_executed_units|cov:" ".ark/fuzz/$t.log" | tail -2 | tr '\n' ' '; echo
    if [ "${ARK_FUZZ_MERGE:-0}" = 1 ]; then
        "$bin/$t" -merge=1 "Fuzz/Corpus/$t" "$work" >/dev/null 2>&1
    fi
done
[ "$status" = 0 ] && echo "fuzz: no crash in ${#targets[@]} targets × ${seconds}s"
exit "$status"
