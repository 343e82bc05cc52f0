#!/usr/bin/env bash
# Runs one ARK process and restarts it when it dies, as systemd's Restart=on-failure does in
# production (RestartSec=2 there, 1 s here): what start_production.sh --local runs each
# stage under, so a signal that kills its stage is isolated and dead-lettered by the
# restarted process instead of stopping the pipeline.
#
#   deployment/supervise.sh PIDFILE COMMAND [ARG...]
#
# PIDFILE always holds the running child's pid (what stop_production.sh, the tests and the
# runbook signal). A child that exits 0 (stopped with SIGTERM), 64 or 78 (a usage or
# configuration error, which a restart cannot mend) is not restarted; SIGTERM or
# SIGINT to the supervisor stops the child and then the supervisor.
set -u
pidfile=${1:?usage: supervise.sh PIDFILE COMMAND [ARG...]}
shift
[ $# -gt 0 ] || { echo "usage: supervise.sh PIDFILE COMMAND [ARG...]" >&2; exit 2; }
child=0
stopping=0
trap 'stopping=1; [ "$child" -gt 0 ] && kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
    "$@" &
    child=$!
    echo "$child" >"$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"
    wait "$child"
    rc=$?
    # A trapped signal ends `wait` early: wait for the child itself.
    while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
    [ "$stopping" = 1 ] && exit 0
    # A clean stop, a usage error (64) or a configuration error (78): restarting cannot help.
    case "$rc" in 0|64|78) exit "$rc" ;; esac
    echo "supervise.sh: $1 (pid $child) exited with status $rc; restarting it in 1 s" >&2
    sleep 1
    [ "$stopping" = 1 ] && exit 0
done
