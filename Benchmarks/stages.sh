#!/usr/bin/env bash
# Each stage's own ceiling: SIGNALS signals are queued in ark:kyle, then the stages run one
# at a time, alone on the machine with Redis, and each one's drain of its input stream is
# timed (signals/s and CPU µs per signal of the stage process).
#
#   Benchmarks/stages.sh [SIGNALS]        (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
swift build -c release --product ark 2>&1 | tail -1
ARK=$PWD/.build/release/ark
WORK=$(mktemp -d /tmp/ark-stages-XXXXXX)
SOCK=$WORK/redis.sock
redis-server --port 0 --unixsocket "$SOCK" --dir "$WORK" --save "" --appendonly no --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
trap 'kill $(cat "$WORK/redis.pid") 2>/dev/null || true' EXIT
export REDIS_URL=unix://$SOCK ARK_STATE_DB=$WORK/ark_state.db ARK_GRAVEYARD_DIR=$PWD/graveyard ARK_LOG_LEVEL=warning
python3 - "$N" <<'PY' | redis-cli -s "$SOCK" --pipe >/dev/null
import json, sys, time
n = int(sys.argv[1]); out = sys.stdout.buffer
syms = ["AAPL", "MSFT", "NVDA", "SPY"]
for i in range(n):
    p = 100.0 + (i % 97) * 0.37
    buy = (i // len(syms)) % 2 == 0
    ev = {"trace_id": f"bench-{i}", "id": f"b{i}", "symbol": syms[i % len(syms)], "price": round(p, 2), "volume": 100 + i % 900,
          "ts": time.time(), "source": "bench", "action": "buy" if buy else "sell", "position_size_pct": 0.01, "leverage": 1.0,
          "stop_loss": round(p * (0.98 if buy else 1.02), 2), "risk_reward_ratio": 2.0}
    if i % 20 == 0: ev["leverage"] = 5.0
    args = [b"XADD", b"ark:kyle", b"*", b"event", json.dumps(ev).encode()]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
PY
printf '%-9s %10s %12s %14s\n' stage seconds signals/s "CPU µs/signal"
for stage in Kyle Joey HRM Kenny Aletheia; do
    in="ark:$(echo "$stage" | tr '[:upper:]' '[:lower:]')"
    start=$(date +%s.%N)
    "$ARK" agent "$stage" >>"$WORK/$stage.log" 2>&1 &
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
