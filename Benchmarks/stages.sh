#!/usr/bin/env bash
# Each stage's own ceiling: SIGNALS signals are queued in ark:kyle, then the stages run one
# at a time, alone on the machine with Redis, and each one's drain of its input stream is
# timed (signals/s and CPU µs per signal of the stage process).
#
#   Benchmarks/stages.sh [SIGNALS]        (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
source Benchmarks/lib.sh
bench_setup
trap 'kill $(cat "$WORK/redis.pid") 2>/dev/null || true' EXIT
bench_queue_signals "$N"
printf '%-9s %10s %12s %14s\n' stage seconds signals/s "CPU µs/signal"
# The agents as production runs them: ark-agent, beside ark.
agent=("$ARK" agent)
[ -x "$(dirname "$ARK")/ark-agent" ] && agent=("$(dirname "$ARK")/ark-agent")
for stage in Kyle Joey HRM Kenny Aletheia; do
    in="ark:$(echo "$stage" | tr '[:upper:]' '[:lower:]')"
    start=$(date +%s.%N)
    "${agent[@]}" "$stage" >>"$WORK/$stage.log" 2>&1 &
    pid=$!
    while true; do
        pending=$(redis-cli -s "$SOCK" XINFO GROUPS "$in" 2>/dev/null | awk '/^lag$/{getline; print; exit}')
        acked=$(redis-cli -s "$SOCK" XINFO GROUPS "$in" 2>/dev/null | awk '/^entries-read$/{getline; print; exit}')
        inflight=$(redis-cli -s "$SOCK" XPENDING "$in" "$stage" 2>/dev/null | head -1)
        [ "${acked:-0}" -ge "$N" ] && [ "${inflight:-1}" = 0 ] && break
        sleep 0.05
    done
    end=$(date +%s.%N)
    cpu=$(awk '{print $14 + $15}' /proc/$pid/stat)
    kill -INT $pid; wait $pid 2>/dev/null || true
    python3 -c "import os; t=$end-$start; hz=os.sysconf('SC_CLK_TCK'); print(f'{\"$stage\":<9} {t:10.2f} {$N/t:12,.0f} {$cpu/hz*1e6/$N:14.1f}')"
done
"$ARK" verify-audit | tail -1
