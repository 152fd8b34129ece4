# Shell helpers shared by scripts/setup, scripts/test, scripts/bench.
# Source it; it defines functions and a few variables, and runs nothing.

KUBELING_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBELING_LOG_DIR=/var/log/kubeling
KUBELING_VENV="$KUBELING_ROOT/.venv"

# The engine from Debian's docker.io speaks API 1.41; a newer CLI that may come
# first on PATH (/usr/local/bin/docker) would need negotiation and buildx, so we
# prefer the client that ships with the engine.
if [[ -x /usr/bin/docker ]]; then
    DOCKER=/usr/bin/docker
else
    DOCKER=docker
fi
# The classic builder needs no buildx plugin and handles FROM scratch images fine.
export DOCKER_BUILDKIT=0

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [[ $EUID -eq 0 ]] || die "$(basename "$0") must run as root (try: sudo $0)"
}

have_systemd() { [[ -d /run/systemd/system ]]; }

docker_up() { "$DOCKER" info >/dev/null 2>&1; }

# cgroup v1 hierarchies must be mounted before dockerd can run containers; a
# machine booted without an init that does it (no systemd here) may lack them.
ensure_cgroups() {
    if [[ -e /sys/fs/cgroup/cgroup.controllers || -d /sys/fs/cgroup/cpu || -d /sys/fs/cgroup/memory ]]; then
        return 0
    fi
    if command -v cgroupfs-mount >/dev/null 2>&1; then
        say "mounting cgroup hierarchies"
        cgroupfs-mount
    else
        warn "no cgroup hierarchy mounted and cgroupfs-mount not found; dockerd may fail"
    fi
}

# Start dockerd in the background unless it already answers.
ensure_dockerd() {
    local timeout="${1:-60}"
    docker_up && return 0
    # The pid file, not pgrep: tests run more dockerds of their own (one per
    # node netns), which say nothing about the machine's.
    local pid
    pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        say "waiting for the running dockerd to answer"
    elif have_systemd; then
        say "starting docker (systemd)"
        systemctl start docker 9>&- || true
    else
        ensure_cgroups
        mkdir -p "$KUBELING_LOG_DIR"
        local log="$KUBELING_LOG_DIR/dockerd.log"
        say "starting dockerd (log: $log)"
        # setsid + nohup: the daemon must outlive this script and its terminal.
        # 9>&-: fd 9 is scripts/setup's lock; a daemon inheriting it would hold
        # the lock forever and make every later setup wait.
        setsid nohup /usr/sbin/dockerd >>"$log" 2>&1 </dev/null 9>&- &
    fi
    local waited=0
    until docker_up; do
        if (( waited >= timeout * 2 )); then
            printf 'error: dockerd did not answer within %ss. Last lines of its log:\n' "$timeout" >&2
            tail -n 30 "$KUBELING_LOG_DIR/dockerd.log" >&2 2>/dev/null \
                || journalctl -u docker -n 30 --no-pager >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
}

# An image's recorded source hash, empty when the image is missing.
image_hash() {
    "$DOCKER" image inspect --format '{{ index .Config.Labels "kubeling.source-hash" }}' "$1" 2>/dev/null || true
}
