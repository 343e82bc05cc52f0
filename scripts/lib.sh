# Shared helpers for ARK's scripts. Sourced, not run.

# Installs the Debian packages ARK needs when any is missing (root or sudo).
ark_ensure_system_packages() {
    local missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing missing system packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ark_pid_alive PID: the process exists and has not exited. A process that exited but was
# not reaped (a zombie: its parent, often PID 1 in a container, never waits) still answers
# `kill -0`; it is dead all the same.
ark_pid_alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

ARK_SYSTEM_PACKAGES=(libhiredis-dev libsqlite3-dev libssl-dev redis-server pkg-config sqlite3 curl jq psmisc)
# The tests also check monitoring/ with promtool (Debian's prometheus package), and drive the
# console in Chromium (with a font to draw its text: recommends are not installed).
ARK_TEST_PACKAGES=(prometheus logrotate chromium chromium-driver fonts-dejavu-core)
