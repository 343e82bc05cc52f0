#!/usr/bin/env bash
# Stops exactly the processes start_production.sh started (by their pid files): SIGTERM so
# each agent finishes and commits its batch, then SIGKILL after a timeout.
#
#   deployment/stop_production.sh [--local] [--timeout SECONDS] [NAME...]
#
# NAMEs (api, watchdog, kyle, joey, hrm, kenny, aletheia, metrics, redis) stop only those,
# e.g. `stop_production.sh --local kenny && start_production.sh --local --no-synthetic`
# restarts Kenny; without them everything stops.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/lib.sh
LOCAL=0; TIMEOUT=15; ONLY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL=1 ;;
        --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        api|watchdog|kyle|joey|hrm|kenny|aletheia|metrics|redis) ONLY+=("$1") ;;
        *) echo "stop_production.sh: unknown option or process $1 (see --help)" >&2; exit 2 ;;
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
    if ! ark_pid_alive "$pid"; then
        echo "$name: not running (stale pid $pid)"; rm -f "$pidfile"; return
    fi
    kill -TERM "$pid"
    for _ in $(seq $((TIMEOUT * 10))); do ark_pid_alive "$pid" || break; sleep 0.1; done
    if ark_pid_alive "$pid"; then
        echo "$name: did not stop in ${TIMEOUT}s, killing"; kill -KILL "$pid"
    else
        echo "$name: stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

# The API first (no new signals come in), the watchdog (stopping agents are not faults), then
# the agents in pipeline order (so upstream stops feeding downstream), Redis last.
for name in api watchdog kyle joey hrm kenny aletheia metrics redis; do
    if [ ${#ONLY[@]} -gt 0 ] && [[ " ${ONLY[*]} " != *" $name "* ]]; then continue; fi
    # A supervised process's supervisor is told first, so it does not restart what is being
    # stopped; it passes SIGTERM on and ends with its process.
    if [ -f "$RUN_DIR/supervise/$name.pid" ]; then
        spid=$(cat "$RUN_DIR/supervise/$name.pid")
        ark_pid_alive "$spid" && kill -TERM "$spid"
        rm -f "$RUN_DIR/supervise/$name.pid"
    fi
    if [ -f "$RUN_DIR/$name.pid" ]; then
        stop_pid "$name" "$RUN_DIR/$name.pid"
    elif [ ${#ONLY[@]} -gt 0 ]; then
        echo "$name: not running (no pid file in $RUN_DIR)"
    fi
done
exit 0
