# Shared by the benchmark scripts. Sourced, not run.

# Builds ark and ark-agent in release mode (sets ARK), starts a private Redis, and points ARK's state,
# rules and log level at the benchmark's temp dir.
bench_setup() {
    swift build -c release --product ark 2>&1 | tail -1
    swift build -c release --product ark-agent 2>&1 | tail -1
    ARK=$PWD/.build/release/ark
    bench_start_redis
    export ARK_STATE_DB=$WORK/ark_state.db ARK_GRAVEYARD_DIR=$PWD/graveyard ARK_LOG_LEVEL=warning
}

# Starts a private redis-server (no persistence) on a unix socket in a new temp dir;
# sets WORK, SOCK and REDIS_URL, and stops it on exit.
bench_start_redis() {
    WORK=$(mktemp -d /tmp/ark-bench-XXXXXX)
    SOCK=$WORK/redis.sock
    redis-server --port 0 --unixsocket "$SOCK" --dir "$WORK" --save "" --appendonly no --daemonize yes \
        --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
    export REDIS_URL=unix://$SOCK
}

# Queues N producer signals in ark:kyle, as Python's json.dumps writes them; one in 20
# breaks the leverage rule.
bench_queue_signals() {
    python3 - "$1" <<'PY' | redis-cli -s "$SOCK" --pipe >/dev/null
import json, sys, time
n = int(sys.argv[1]); out = sys.stdout.buffer
syms = ["AAPL", "MSFT", "NVDA", "SPY", "AMZN", "META", "TSLA", "JPM"]
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
}

# Starts the five agents of binary $1 (with ark-agent beside it when there is one, as
# start_production.sh and `ark bench` do; else `ark agent`) with graveyard dir $2 (their pids in BENCH_PIDS), waits
# until all $3 queued signals are recorded, and prints the drain rate and each agent's CPU
# seconds so far. Needs bench_start_redis and bench_queue_signals first.
bench_drain() {
    local ark=$1 graveyard=$2 n=$3 start end cpu="" p s agent=("$1" agent)
    [ -x "$(dirname "$ark")/ark-agent" ] && agent=("$(dirname "$ark")/ark-agent")
    BENCH_PIDS=()
    start=$(date +%s.%N)
    for s in Kyle Joey HRM Kenny Aletheia; do
        ARK_GRAVEYARD_DIR=$graveyard "${agent[@]}" "$s" >>"$WORK/$s.log" 2>&1 &
        BENCH_PIDS+=($!)
    done
    while [ "$(sqlite3 "$ARK_STATE_DB" "SELECT COUNT(*) FROM passes" 2>/dev/null || echo 0)" -lt "$n" ]; do sleep 0.2; done
    end=$(date +%s.%N)
    for p in "${BENCH_PIDS[@]}"; do cpu="$cpu $(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$p/stat")"; done
    python3 -c "n=$n; t=$end-$start; print(f'{n/t:,.0f} signals/s ({n} in {t:.2f} s; agent CPU s Kyle Joey HRM Kenny Aletheia:$cpu)')"
}

# Stops the agents bench_drain started (SIGINT: each finishes its batch).
bench_stop_agents() {
    local p
    for p in "${BENCH_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${BENCH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    BENCH_PIDS=()
}

# A free TCP port on loopback.
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts `$ARK run` (five stages, metrics server and API in one process) on the private Redis
# of bench_start_redis, with a fresh JWT_SECRET and rate limits out of the way; waits for the
# API's /readyz, mints a token for subject $1 (TOKEN), and sets API_PORT and ARK_PID. Stops
# it and the Redis on exit (and removes $WORK when BENCH_REMOVE_WORK=1). Extra settings come
# from the caller's environment.
bench_start_api_run() {
    export API_PORT METRICS_PORT JWT_SECRET ARK_ENV=test WATCHDOG_ENABLED=false \
        API_RATE_LIMIT_PER_MINUTE=100000000 API_RATE_LIMIT_PER_HOUR=1000000000
    API_PORT=$(bench_free_port)
    METRICS_PORT=$(bench_free_port)
    JWT_SECRET=$(openssl rand -hex 32)
    "$ARK" run >"$WORK/ark-run.log" 2>&1 &
    ARK_PID=$!
    trap 'kill $ARK_PID 2>/dev/null; wait $ARK_PID 2>/dev/null; kill $(cat "$WORK/redis.pid") 2>/dev/null; [ "${BENCH_REMOVE_WORK:-0}" = 1 ] && rm -rf "$WORK"; true' EXIT
    for _ in $(seq 150); do curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null || { echo "ark run did not become ready:"; tail -20 "$WORK/ark-run.log"; exit 1; }
    TOKEN=$("$ARK" token --subject "$1" --ttl 86400)
}
