#!/usr/bin/env bash
# A/B drain benchmark: this tree's build against another revision's, in turns (A B A B …), so
# both see the same machine when its speed drifts; on two shared cores, figures from
# different moments are not comparable. Each run queues SIGNALS signals in a fresh private
# Redis and state store and times the five agents draining them.
#
#   Benchmarks/compare.sh REV [SIGNALS] [PAIRS]     (defaults: 100000 signals, 3 pairs)
#   Benchmarks/compare.sh 1372be4                   # e.g. before the monitoring instrumentation
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: Benchmarks/compare.sh REV [SIGNALS] [PAIRS]}
N=${2:-100000}
PAIRS=${3:-3}
source Benchmarks/lib.sh
OTHER=$(mktemp -d /tmp/ark-compare-XXXXXX)
BENCH_PIDS=()
cleanup() {
    bench_stop_agents
    [ -n "${WORK:-}" ] && kill "$(cat "$WORK/redis.pid" 2>/dev/null)" 2>/dev/null || true
    git worktree remove --force "$OTHER" 2>/dev/null || rm -rf "$OTHER"
}
trap cleanup EXIT
git worktree add --detach "$OTHER" "$REV" >/dev/null 2>&1 || { echo "cannot check out $REV" >&2; exit 2; }
echo "Building $REV (release)…"
(cd "$OTHER" && swift build -c release --product ark 2>&1 | tail -1 && { swift build -c release --product ark-agent >/dev/null 2>&1 || true; })
echo "Building this tree (release)…"
swift build -c release --product ark 2>&1 | tail -1
swift build -c release --product ark-agent 2>&1 | tail -1
A=$PWD/.build/release/ark
B=$OTHER/.build/release/ark
for i in $(seq "$PAIRS"); do
    for side in this "$REV"; do
        if [ "$side" = this ]; then ark=$A; gy=$PWD/graveyard; else ark=$B; gy=$OTHER/graveyard; fi
        bench_start_redis
        export ARK_STATE_DB=$WORK/ark_state.db ARK_LOG_LEVEL=warning
        bench_queue_signals "$N"
        printf '%-8s ' "$side"
        bench_drain "$ark" "$gy" "$N"
        bench_stop_agents
        kill "$(cat "$WORK/redis.pid")"; sleep 0.3; rm -rf "$WORK"
    done
done
