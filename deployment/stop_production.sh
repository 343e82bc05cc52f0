#!/usr/bin/env bash
# Stops exactly the processes start_production.sh started (by their pid files): SIGTERM so
# each agent finishes and commits its batch, then SIGKILL after a timeout.
#
#   deployment/stop_production.sh [--local] [--timeout SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOCAL=0; TIMEOUT=15
while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL=1 ;;
        --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "stop_production.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$LOCAL" = 1 ]; then
    RUN_DIR="${ARK_RUN_DIR:-$ROOT/.ark/run}"
else
    [ -f .env.production ] && { set -a; source .env.production; set +a; }
    RUN_DIR="${ARK_RUN_DIR:-${ARK_LOG_DIR:-/var/log/ark}/../run}"
fi
[ -d "$RUN_DIR" ] || { echo "Nothing to stop: no $RUN_DIR"; exit 0; }

stop_pid() {
    local name=$1 pidfile=$2 pid
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$name: not running (stale pid $pid)"; rm -f "$pidfile"; return
    fi
    kill -TERM "$pid"
    for _ in $(seq $((TIMEOUT * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name: did not stop in ${TIMEOUT}s, killing"; kill -KILL "$pid"
    else
        echo "$name: stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

# The API first (no new signals come in), the watchdog (stopping agents are not faults), then
# the agents in pipeline order (so upstream stops feeding downstream), Redis last.
for name in api watchdog kyle joey hrm kenny aletheia metrics; do
    [ -f "$RUN_DIR/$name.pid" ] && stop_pid "$name" "$RUN_DIR/$name.pid"
done
[ -f "$RUN_DIR/redis.pid" ] && stop_pid redis "$RUN_DIR/redis.pid"
exit 0
