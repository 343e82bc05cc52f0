# Sets up an operator's shell for the commands in RUNBOOK.md: the settings the running ARK
# reads, `ark` on PATH, and the start and stop scripts for this layout.
#
#   . deployment/ark_env.sh            production: settings from .env.production beside this checkout
#   . deployment/ark_env.sh --local    the local layout of `start_production.sh --local`
#
# Exports ARK's settings (ARK_STATE_DB, ARK_LOG_DIR, ARK_BACKUP_DIR, ARK_GRAVEYARD_DIR,
# ARK_RELEASES_DIR, REDIS_URL, METRICS_PORT, API_PORT), plus ARK_RUN_DIR (the pid files),
# ARK_METRICS_URL and ARK_API_URL, and defines `ark_start` and `ark_stop`, which run
# deployment/start_production.sh and stop_production.sh with the layout's flag. Settings
# already in the environment win, as they do for the start script.
# Meant to be sourced: it changes the calling shell and never exits it.

ark_env_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ark_env_layout=""
if [ "${1:-}" = "--local" ]; then
    ark_env_layout="--local"
    export ARK_ENV="${ARK_ENV:-local}"
    export ARK_STATE_DB="${ARK_STATE_DB:-$ark_env_root/.ark/ark_state.db}"
    export ARK_LOG_DIR="${ARK_LOG_DIR:-$ark_env_root/.ark/logs}"
    export ARK_BACKUP_DIR="${ARK_BACKUP_DIR:-$ark_env_root/.ark/backups}"
    export ARK_GRAVEYARD_DIR="${ARK_GRAVEYARD_DIR:-$ark_env_root/graveyard}"
    export ARK_RELEASES_DIR="${ARK_RELEASES_DIR:-$ark_env_root/.ark/releases}"
    export ARK_RUN_DIR="${ARK_RUN_DIR:-$ark_env_root/.ark/run}"
    export REDIS_URL="${REDIS_URL:-unix://${ARK_REDIS_DIR:-$ark_env_root/.ark/redis}/redis.sock}"
    export ARK_AUDIT_KEY="${ARK_AUDIT_KEY:-$(dirname "$ARK_STATE_DB")/audit_ed25519.pem}"
    if [ -z "${JWT_SECRET:-}" ] && [ -r "$(dirname "$ARK_STATE_DB")/jwt_secret" ]; then
        JWT_SECRET=$(tr -d '\n' <"$(dirname "$ARK_STATE_DB")/jwt_secret")
        export JWT_SECRET
    fi
else
    ark_env_file="${1:-$ark_env_root/.env.production}"
    if [ -r "$ark_env_file" ]; then
        set -a
        # shellcheck source=/dev/null
        . "$ark_env_file"
        set +a
    else
        echo "ark_env.sh: cannot read $ark_env_file. Fix: name the env file ARK runs with, or use --local" >&2
    fi
    export ARK_GRAVEYARD_DIR="${ARK_GRAVEYARD_DIR:-$ark_env_root/graveyard}"
    export ARK_RELEASES_DIR="${ARK_RELEASES_DIR:-/opt/ark/releases}"
    export ARK_LOG_DIR="${ARK_LOG_DIR:-/var/log/ark}"
    export ARK_RUN_DIR="${ARK_RUN_DIR:-$ARK_LOG_DIR/../run}"
fi
export METRICS_PORT="${METRICS_PORT:-9090}" API_PORT="${API_PORT:-8000}"
export ARK_METRICS_URL="http://127.0.0.1:$METRICS_PORT" ARK_API_URL="http://127.0.0.1:$API_PORT"
case ":$PATH:" in
    *":$ark_env_root/.build/${ARK_BUILD:-release}:"*) ;;
    *) export PATH="$ark_env_root/.build/${ARK_BUILD:-release}:$PATH" ;;
esac
eval "ark_start() { \"$ark_env_root/deployment/start_production.sh\" $ark_env_layout \"\$@\"; }"
eval "ark_stop() { \"$ark_env_root/deployment/stop_production.sh\" $ark_env_layout \"\$@\"; }"
unset ark_env_root ark_env_layout ark_env_file
