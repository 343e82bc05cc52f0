#!/usr/bin/env bash
# End-to-end pipeline benchmark: five agent processes (`ark-agent`, release build) and a private
# redis-server on a unix socket, all on this machine.
#
#   Benchmarks/pipeline.sh [SIGNALS]        (default 200000)
#
# 1. Drain throughput: SIGNALS signals are queued in ark:kyle first, then the agents start
#    and the time until every pass is in the state store is measured (signals/s, nothing
#    lost: the count of recorded passes must equal SIGNALS).
# 2. Latency: `ark synthetic-loop` at 100 Hz and at 1 kHz, 10 s each, prints p50/p95/p99 of
#    the end-to-end latency (producer XADD to Aletheia's record).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
source Benchmarks/lib.sh
bench_setup
BENCH_PIDS=()
cleanup() {
    bench_stop_agents
    kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
}
trap cleanup EXIT

echo "Queueing $N signals in ark:kyle…"
bench_queue_signals "$N"
echo "Queued $(redis-cli -s "$SOCK" XLEN ark:kyle) entries."
echo -n "Drain (includes agent start-up): "
bench_drain "$ARK" "$PWD/graveyard" "$N"
sqlite3 "$ARK_STATE_DB" "SELECT '  verdicts: ' || group_concat(verdict || '=' || c, ', ') FROM (SELECT verdict, COUNT(*) c FROM passes GROUP BY verdict)"
sqlite3 "$ARK_STATE_DB" "SELECT '  denied among injected violations: ' || SUM(verdict='denied') || '/' || COUNT(*) FROM passes WHERE trace_id IN (SELECT 'bench-' || (value*20) FROM generate_series(0, $N/20 - 1))" 2>/dev/null || true
"$ARK" verify-audit | tail -1

for rate in 100 1000; do
    echo "Latency at $rate Hz (10 s):"
    "$ARK" synthetic-loop --duration 10 --rate "$rate" 2>&1 | grep -E "latency ms|completed|PASSED|FAILED" | sed 's/^/  /'
done
echo "CPU seconds (user+sys) and RSS of each agent, then redis-server:"
STAGES=(Kyle Joey HRM Kenny Aletheia)
for i in "${!BENCH_PIDS[@]}"; do
    ps -o time=,rss= -p "${BENCH_PIDS[$i]}" | awk -v s="${STAGES[$i]}" '{printf "  %-8s %s  RSS %d KB\n", s, $1, $2}'
done
ps -o time=,rss= -p "$(cat "$WORK/redis.pid")" | awk '{printf "  redis    %s  RSS %d KB\n", $1, $2}'
