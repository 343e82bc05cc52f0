#!/usr/bin/env bash
# A local Redis Cluster for trying ARK's scale-out (docs/scale-out.md): three primaries with
# REPLICAS replicas each (2 by default: nine nodes) on 127.0.0.1, ports BASE.. (7000 by
# default), each node in its own directory under DIR with append-only persistence; node
# timeout 2 s; the other shards keep serving while one is down
# (cluster-require-full-coverage no). With two replicas a primary, losing one leaves its
# promoted replica with a replica of its own, so its shards' intake (confirmed by WAIT 1)
# stays open (docs/risk.md, Ledger and reconciliation).
#   scripts/redis_cluster.sh start [DIR] [BASE]   # prints the REDIS_URL to use
#   scripts/redis_cluster.sh stop  [DIR]
set -euo pipefail
cmd=${1:-}
dir=${2:-./.ark/cluster}
base=${3:-7000}
replicas=${REPLICAS:-2}
nodes=$((3 * (1 + replicas)))
# redis-server resolves its log and pid files after changing to --dir: make the path absolute.
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case "$cmd" in
start)
    seeds=()
    for i in $(seq 0 $((nodes - 1))); do
        port=$((base + i))
        mkdir -p "$dir/$port"
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --daemonize yes \
            --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
            --cluster-require-full-coverage no --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction
        seeds+=("127.0.0.1:$port")
    done
    for s in "${seeds[@]}"; do
        until redis-cli -h 127.0.0.1 -p "${s#*:}" ping >/dev/null 2>&1; do sleep 0.1; done
    done
    if ! redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok'; then
        redis-cli --cluster create "${seeds[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log"
        until redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done
    fi
    echo "REDIS_URL=redis://$(IFS=,; echo "${seeds[*]}")"
    ;;
stop)
    for pid in "$dir"/*/redis.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    ;;
*)
    echo "usage: $0 start|stop [DIR] [BASE]" >&2
    exit 64
    ;;
esac
