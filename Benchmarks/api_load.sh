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
BENCH_REMOVE_WORK=1
bench_start_api_run wrk
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
echo "wrk: ${DURATION}s, $CONNECTIONS connections, $BATCH signal(s) per request, against http://127.0.0.1:$API_PORT/v1/signals"
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$API_PORT" | tee "$WORK/wrk.txt"
accepted=$(redis-cli -s "$SOCK" XLEN ark:kyle)
for _ in $(seq 600); do
    recorded=$(sqlite3 "$ARK_STATE_DB" "SELECT COUNT(*) FROM passes" 2>/dev/null || echo 0)
    [ "$recorded" -ge "$accepted" ] && break
    sleep 0.5
done
echo "signals enqueued by the API: $accepted; passes recorded: $recorded"
[ "$recorded" -ge "$accepted" ] || { echo "FAIL: not every accepted signal was recorded"; exit 1; }
