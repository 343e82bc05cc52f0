#!/usr/bin/env bash
# Load on the API's front door: wrk (Debian's) posting one signal per request to
# POST /v1/signals of a release `ark run` (five stages and the API in one process) on a
# private Redis, on loopback, for a bounded time. Prints wrk's requests/s and latency
# percentiles, then checks that every signal the API accepted was recorded.
#   Benchmarks/api_load.sh [SECONDS] [CONNECTIONS] [BATCH]   (defaults 20, 16, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source Benchmarks/lib.sh
DURATION=${1:-20}
CONNECTIONS=${2:-16}
BATCH=${3:-1}
ark_ensure_system_packages wrk
bench_setup
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export API_PORT=$PORT METRICS_PORT=$MPORT JWT_SECRET=$(openssl rand -hex 32) ARK_ENV=test ARK_LOG_LEVEL=warning \
    API_RATE_LIMIT_PER_MINUTE=100000000 API_RATE_LIMIT_PER_HOUR=1000000000 WATCHDOG_ENABLED=false
"$ARK" run >"$WORK/ark-run.log" 2>&1 &
ARK_PID=$!
trap 'kill $ARK_PID 2>/dev/null; wait $ARK_PID 2>/dev/null; kill $(cat $WORK/redis.pid) 2>/dev/null; rm -rf $WORK' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$("$ARK" token --subject wrk --ttl 86400)
cat >"$WORK/post.lua" <<LUA
local batch = $BATCH
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local n = 0
request = function()
  local items = {}
  for i = 1, batch do
    n = n + 1
    items[i] = string.format('{"symbol":"AAPL","price":%.2f,"volume":100,"action":"buy","position_size_pct":0.001,"leverage":1.0,"stop_loss":99.0,"risk_reward_ratio":2.0}', 100 + (n % 50) / 10)
  end
  return wrk.format(nil, "/v1/signals", nil, "[" .. table.concat(items, ",") .. "]")
end
LUA
echo "wrk: ${DURATION}s, $CONNECTIONS connections, $BATCH signal(s) per request, against http://127.0.0.1:$PORT/v1/signals"
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/wrk.txt"
accepted=$(redis-cli -s "$SOCK" XLEN ark:kyle)
for _ in $(seq 600); do
    recorded=$(sqlite3 "$ARK_STATE_DB" "SELECT COUNT(*) FROM passes" 2>/dev/null || echo 0)
    [ "$recorded" -ge "$accepted" ] && break
    sleep 0.5
done
echo "signals enqueued by the API: $accepted; passes recorded: $recorded"
[ "$recorded" -ge "$accepted" ] || { echo "FAIL: not every accepted signal was recorded"; exit 1; }
