#!/usr/bin/env bash
# Starts ARK: validates the configuration, backs up the state store, then the metrics server,
# the watchdog, the five agents (separate processes over Redis Streams into the SQLite state
# store) and the API, waits for /healthz and /readyz, then proves it all with the synthetic
# validation loop sent through the API, and prints the SLOs.
#
#   deployment/start_production.sh [--local] [--duration N] [--no-synthetic] [--canary [-- FLAGS]]
#
#   --local         everything under ./.ark/ (state, logs, pids); installs missing system
#                   packages and, when REDIS_URL is unset, starts a private redis-server
#   --duration N    seconds of synthetic validation at 1 Hz (default 300)
#   --no-synthetic  skip the validation loop
#   --canary        roll this build out as a canary beside the running baseline: package it
#                   as a release, then `ark canary start --percent 10 --step-minutes 10`
#                   (FLAGS after -- replace those), with synthetic traffic through the API
#
# Without --local, settings come from .env.production (see .env.production.template).
# Idempotent: agents already running (by pid file) are kept, not started twice.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/lib.sh

LOCAL=0; DURATION=300; SYNTHETIC=1; CANARY=0; CANARY_FLAGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL=1 ;;
        --duration) DURATION="${2:?--duration needs a number of seconds}"; shift ;;
        --duration=*) DURATION="${1#*=}" ;;
        --no-synthetic) SYNTHETIC=0 ;;
        --canary) CANARY=1 ;;
        --) shift; CANARY_FLAGS=("$@"); break ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "start_production.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$DURATION" in ''|*[!0-9]*) echo "start_production.sh: --duration must be a whole number of seconds" >&2; exit 2 ;; esac

step() { printf '\n==> %s\n' "$*"; }

if [ "$LOCAL" = 1 ]; then
    step "System packages"
    ark_ensure_system_packages "${ARK_SYSTEM_PACKAGES[@]}"
    export ARK_ENV="${ARK_ENV:-local}"
    export ARK_STATE_DB="${ARK_STATE_DB:-$ROOT/.ark/ark_state.db}"
    export ARK_LOG_DIR="${ARK_LOG_DIR:-$ROOT/.ark/logs}"
    export ARK_BACKUP_DIR="${ARK_BACKUP_DIR:-$ROOT/.ark/backups}"
    export ARK_GRAVEYARD_DIR="${ARK_GRAVEYARD_DIR:-$ROOT/graveyard}"
    RUN_DIR="${ARK_RUN_DIR:-$ROOT/.ark/run}"
    # The local API's signing secret: made once beside the state store (mode 600), where
    # `ark token --local` finds it too.
    if [ -z "${JWT_SECRET:-}" ]; then
        secret_file="$(dirname "$ARK_STATE_DB")/jwt_secret"
        mkdir -p "$(dirname "$secret_file")"
        [ -s "$secret_file" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"; echo >>"$secret_file")
        JWT_SECRET=$(tr -d '\n' <"$secret_file")
        export JWT_SECRET
    fi
    # The audit's signing key, made after the build at first start (mode 600, public half in .pub).
    export ARK_AUDIT_KEY="${ARK_AUDIT_KEY:-$(dirname "$ARK_STATE_DB")/audit_ed25519.pem}"
else
    if [ -f .env.production ]; then
        set -a; source .env.production; set +a
    else
        echo "start_production.sh: no .env.production. Fix: cp .env.production.template .env.production and edit it, or use --local" >&2
        exit 78
    fi
    : "${REDIS_URL:?REDIS_URL must be set in .env.production}"
    export ARK_GRAVEYARD_DIR="${ARK_GRAVEYARD_DIR:-$ROOT/graveyard}"
    # The ethics rules are immutable in production: read-only for everyone.
    chmod 444 "$ARK_GRAVEYARD_DIR"/* 2>/dev/null || true
    RUN_DIR="${ARK_RUN_DIR:-${ARK_LOG_DIR:-/var/log/ark}/../run}"
fi
export ARK_LOG_DIR="${ARK_LOG_DIR:-/var/log/ark}"
mkdir -p "$RUN_DIR" "$ARK_LOG_DIR"
[ "$LOCAL" = 1 ] && mkdir -p "$ARK_BACKUP_DIR" "$(dirname "$ARK_STATE_DB")"

# ARK_BUILD=debug runs the debug build (the tests do, having built it); ARK_SKIP_BUILD=1
# uses the binary as it is.
BUILD="${ARK_BUILD:-release}"
# Two binaries: ark, and ark-agent, which runs one stage and links nothing else (less RSS
# per agent).
ARK="$ROOT/.build/$BUILD/ark"
ARK_AGENT="$ROOT/.build/$BUILD/ark-agent"
step "Build"
if [ "${ARK_SKIP_BUILD:-0}" = 1 ] && [ -x "$ARK" ] && [ -x "$ARK_AGENT" ]; then
    echo "using $ARK and $ARK_AGENT as built (ARK_SKIP_BUILD=1)"
elif ! { swift build -c "$BUILD" --product ark && swift build -c "$BUILD" --product ark-agent; } >"$ARK_LOG_DIR/build.log" 2>&1; then
    tail -n 40 "$ARK_LOG_DIR/build.log" >&2
    echo "Build failed: the whole output is in $ARK_LOG_DIR/build.log" >&2
    exit 1
else
    tail -n 1 "$ARK_LOG_DIR/build.log"
fi

alive() { [ -f "$1" ] && ark_pid_alive "$(cat "$1")"; }

if [ "$LOCAL" = 1 ] && [ ! -f "$ARK_AUDIT_KEY" ]; then
    step "Audit key"
    "$ARK" audit-key generate --out "$ARK_AUDIT_KEY"
fi

# make_release: this build, its rules and its settings as a release directory (printed).
export ARK_RELEASES_DIR="${ARK_RELEASES_DIR:-$([ "$LOCAL" = 1 ] && echo "$ROOT/.ark/releases" || echo /opt/ark/releases)}"
make_release() {
    local name rel
    name="$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo build)"
    rel="$ARK_RELEASES_DIR/$name"
    mkdir -p "$rel/graveyard"
    cp "$ARK" "$ARK_AGENT" "$rel/"
    cp "$ARK_GRAVEYARD_DIR"/ethics_rules.json* "$rel/graveyard/"
    chmod 444 "$rel/graveyard/"*
    if [ -f .env.production ] && [ "$LOCAL" = 0 ]; then
        (umask 077; cp .env.production "$rel/.env.production")
    else
        (umask 077; echo "ARK_ENV=$ARK_ENV" >"$rel/.env.production")
    fi
    # Keep the newest five releases, and always the current and previous ones.
    local keep_current keep_previous old
    keep_current=$(readlink -f "$ARK_RELEASES_DIR/current" 2>/dev/null || true)
    keep_previous=$(readlink -f "$ARK_RELEASES_DIR/previous" 2>/dev/null || true)
    for old in $(ls -1dt "$ARK_RELEASES_DIR"/*/ 2>/dev/null | tail -n +6); do
        old=${old%/}
        [ "$old" = "$keep_current" ] || [ "$old" = "$keep_previous" ] || [ "$old" = "$rel" ] || rm -rf "$old"
    done
    echo "$rel"
}

if [ "$CANARY" = 1 ]; then
    for stage in kyle joey hrm kenny aletheia; do
        alive "$RUN_DIR/$stage.pid" || { echo "start_production.sh: --canary needs the baseline running ($stage is not). Fix: start it first without --canary" >&2; exit 1; }
    done
    [ -z "${REDIS_URL:-}" ] && [ "$LOCAL" = 1 ] && export REDIS_URL="unix://${ARK_REDIS_DIR:-$ROOT/.ark/redis}/redis.sock"
    step "Canary release"
    REL=$(make_release)
    echo "release $REL"
    export API_PORT="${API_PORT:-8000}"
    API_URL="http://127.0.0.1:$API_PORT"
    LOOP_PID=""
    if [ "$SYNTHETIC" = 1 ] && [ "${API_ENABLED:-true}" != "false" ]; then
        # Traffic for the judgement: the 1 Hz synthetic loop through the API while the canary runs.
        nohup "$ARK" synthetic-loop --duration 86400 --rate 1 --api-url "$API_URL" >>"$ARK_LOG_DIR/canary_synthetic.log" 2>&1 &
        LOOP_PID=$!
        echo "synthetic traffic through the API (pid $LOOP_PID), log $ARK_LOG_DIR/canary_synthetic.log"
    fi
    [ ${#CANARY_FLAGS[@]} -eq 0 ] && CANARY_FLAGS=(--percent 10 --step-minutes 10)
    step "Canary: ark canary start ${CANARY_FLAGS[*]}"
    status=0
    "$ARK" canary start --release "$REL" --run-dir "$RUN_DIR" "${CANARY_FLAGS[@]}" | tee -a "$ARK_LOG_DIR/canary.log" || status=${PIPESTATUS[0]}
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null
    exit "$status"
fi

# start_process NAME LABEL LOG [--supervised] BINARY ARGS…: `BINARY ARGS…` in the
# background, its pid in NAME.pid and its output in LOG, unless the process of NAME.pid still
# runs. --supervised runs it under supervise.sh, which restarts it when it dies (systemd's
# Restart=on-failure, in --local mode) and keeps NAME.pid on the live process; the
# supervisor's own pid is in supervise/NAME.pid.
start_process() {
    local name=$1 label=$2 log=$3 supervised=0
    shift 3
    [ "$1" = --supervised ] && { supervised=1; shift; }
    if alive "$RUN_DIR/$name.pid"; then
        echo "$label already running (pid $(cat "$RUN_DIR/$name.pid"))"
        return
    fi
    if [ "$supervised" = 1 ]; then
        mkdir -p "$RUN_DIR/supervise"
        rm -f "$RUN_DIR/$name.pid"
        nohup "$ROOT/deployment/supervise.sh" "$RUN_DIR/$name.pid" "$@" >>"$ARK_LOG_DIR/$log" 2>&1 &
        echo $! >"$RUN_DIR/supervise/$name.pid"
        for _ in $(seq 50); do [ -s "$RUN_DIR/$name.pid" ] && break; sleep 0.1; done
        echo "$label started (pid $(cat "$RUN_DIR/$name.pid" 2>/dev/null), restarted if it dies), log $ARK_LOG_DIR/$log"
        return
    fi
    nohup "$@" >>"$ARK_LOG_DIR/$log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
    echo "$label started (pid $!), log $ARK_LOG_DIR/$log"
}

# wait_http_200 URL NAME LOG WHAT: waits for URL to answer 200 while NAME.pid's process
# lives; otherwise prints the answer and "WHAT", and stops the start.
wait_http_200() {
    local url=$1 name=$2 log=$3 what=$4 code=000
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
        [ "$code" = 200 ] && break
        alive "$RUN_DIR/$name.pid" || break
        sleep 0.2
    done
    if [ "$code" != 200 ]; then
        curl -s "$url" >&2 || true
        echo "$what ($code): see $ARK_LOG_DIR/$log" >&2
        exit 1
    fi
    echo "GET $url: 200"
}

# --local runs a private Redis when REDIS_URL is unset or names that Redis's own socket (as
# `. deployment/ark_env.sh --local` exports it), so a start after Redis died starts it again.
REDIS_DIR="${ARK_REDIS_DIR:-$ROOT/.ark/redis}"
if [ "$LOCAL" = 1 ] && { [ -z "${REDIS_URL:-}" ] || [ "$REDIS_URL" = "unix://$REDIS_DIR/redis.sock" ]; }; then
    step "Private Redis ($REDIS_DIR)"
    mkdir -p "$REDIS_DIR"
    if alive "$RUN_DIR/redis.pid"; then
        echo "redis-server already running (pid $(cat "$RUN_DIR/redis.pid"))"
    else
        redis-server --port 0 --unixsocket "$REDIS_DIR/redis.sock" --unixsocketperm 700 --dir "$REDIS_DIR" \
            --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction --daemonize yes \
            --pidfile "$RUN_DIR/redis.pid" --logfile "$ARK_LOG_DIR/redis.log"
        for _ in $(seq 50); do [ -S "$REDIS_DIR/redis.sock" ] && break; sleep 0.1; done
        echo "redis-server started (pid $(cat "$RUN_DIR/redis.pid")), socket $REDIS_DIR/redis.sock"
    fi
    export REDIS_URL="unix://$REDIS_DIR/redis.sock"
fi

step "Configuration"
# A running ARK holds its own ports: checking them would only find ARK itself. (A server
# restarted next to a running ARK whose port another process took says so as it starts.)
port_flag=""
{ alive "$RUN_DIR/metrics.pid" || alive "$RUN_DIR/api.pid"; } && port_flag="--skip-ports"
if ! "$ARK" config validate $port_flag; then
    echo "start_production.sh: fix the configuration above, then start again" >&2
    exit 78
fi

if [ -f "$ARK_STATE_DB" ]; then
    step "State backup"
    "$ARK" backup || { echo "start_production.sh: the backup failed (above); fix it before starting" >&2; exit 1; }
fi

export METRICS_PORT="${METRICS_PORT:-9090}"
METRICS_URL="http://${METRICS_BIND:-127.0.0.1}:$METRICS_PORT"
[ "${METRICS_BIND:-}" = "0.0.0.0" ] && METRICS_URL="http://127.0.0.1:$METRICS_PORT"
if [ "${METRICS_SERVER_ENABLED:-true}" != "false" ]; then
    step "Metrics server on $METRICS_URL"
    start_process metrics "metrics server" metrics_server.log "$ARK" metrics-server
fi

if [ "${WATCHDOG_ENABLED:-true}" != "false" ]; then
    step "Watchdog (quarantine ${WATCHDOG_QUARANTINE_ENABLED:-true})"
    start_process watchdog watchdog watchdog.log "$ARK" watchdog
fi

step "Agents"
if ! alive "$RUN_DIR/kyle.pid"; then
    # A fresh start runs this build: it becomes the current release (the canary's baseline).
    REL=$(make_release)
    mkdir -p "$ARK_RELEASES_DIR"
    [ -L "$ARK_RELEASES_DIR/current" ] && ln -sfn "$(readlink -f "$ARK_RELEASES_DIR/current")" "$ARK_RELEASES_DIR/previous"
    ln -sfn "$REL" "$ARK_RELEASES_DIR/current"
    echo "release $REL is current"
fi
for stage in Kyle Joey HRM Kenny Aletheia; do
    name=$(echo "$stage" | tr '[:upper:]' '[:lower:]')
    if [ "$LOCAL" = 1 ]; then
        start_process "$name" "$stage" "$name.log" --supervised "$ARK_AGENT" "$stage"
    else
        start_process "$name" "$stage" "$name.log" "$ARK_AGENT" "$stage"
    fi
done

export API_PORT="${API_PORT:-8000}"
API_URL="http://${API_BIND:-127.0.0.1}:$API_PORT"
[ "${API_BIND:-}" = "0.0.0.0" ] && API_URL="http://127.0.0.1:$API_PORT"
if [ "${API_ENABLED:-true}" != "false" ]; then
    step "API on $API_URL"
    start_process api API api.log "$ARK" api
fi

step "Health: waiting for every agent's heartbeat"
redis_cli() {
    case "$REDIS_URL" in
        unix://*) redis-cli -s "${REDIS_URL#unix://}" "$@" ;;
        *) redis-cli -u "$REDIS_URL" "$@" ;;
    esac
}
healthy=0
for _ in $(seq 100); do
    running=0
    for stage in kyle joey hrm kenny aletheia; do alive "$RUN_DIR/$stage.pid" && running=$((running + 1)); done
    beats=$(redis_cli HLEN ark:heartbeats 2>/dev/null || echo 0)
    if [ "$running" = 5 ] && [ "${beats:-0}" -ge 5 ]; then healthy=1; break; fi
    sleep 0.2
done
if [ "$healthy" != 1 ]; then
    echo "Not every agent came up: see the logs in $ARK_LOG_DIR" >&2
    exit 1
fi
echo "All five agents are running and sending heartbeats"
if [ "${METRICS_SERVER_ENABLED:-true}" != "false" ]; then
    wait_http_200 "$METRICS_URL/healthz" metrics metrics_server.log "The metrics server does not report healthy"
fi
if [ "${API_ENABLED:-true}" != "false" ]; then
    wait_http_200 "$API_URL/readyz" api api.log "The API is not ready"
fi

status=0
if [ "$SYNTHETIC" = 1 ]; then
    if [ "${API_ENABLED:-true}" != "false" ]; then
        step "Synthetic validation (${DURATION}s at 1 Hz, through the API)"
        "$ARK" synthetic-loop --duration "$DURATION" --rate 1 --api-url "$API_URL" || status=$?
    else
        step "Synthetic validation (${DURATION}s at 1 Hz, straight into Redis: API_ENABLED=false)"
        "$ARK" synthetic-loop --duration "$DURATION" --rate 1 || status=$?
    fi
fi

step "Status"
"$ARK" status --once || true
cat <<INFO
  state store   $ARK_STATE_DB
  logs          $ARK_LOG_DIR/{kyle,joey,hrm,kenny,aletheia,metrics_server,watchdog,api}.log
  redis         $REDIS_URL
  pid files     $RUN_DIR
  SLOs          curl -s $METRICS_URL/slos
  health        curl -s $METRICS_URL/healthz   (or: $ARK health$([ "$LOCAL" = 1 ] && echo " --local"))
  metrics       curl -s $METRICS_URL/metrics
  API           $API_URL (token: $ARK token --subject NAME$([ "$LOCAL" = 1 ] && echo " --local"); document: curl -s $API_URL/openapi.json)
  dashboard     $ARK status$([ "$LOCAL" = 1 ] && echo " --local")
  console       $METRICS_URL/ in a browser (actions take a token: $ARK token --subject NAME$([ "$LOCAL" = 1 ] && echo " --local"))
  watchdog      $ARK watchdog status$([ "$LOCAL" = 1 ] && echo " --local")   (release: $ARK watchdog release Kenny$([ "$LOCAL" = 1 ] && echo " --local"))
  one pass      $ARK trace <trace_id>$([ "$LOCAL" = 1 ] && echo " --local")
  audit log     $ARK verify-audit$([ "$LOCAL" = 1 ] && echo " --local")   (one decision's proof: $ARK verify-audit --trace <trace_id>$([ "$LOCAL" = 1 ] && echo " --local"))
  stop          deployment/stop_production.sh$([ "$LOCAL" = 1 ] && echo " --local")
INFO
exit $status
