# shellcheck shell=bash disable=SC2034 # sets variables for the scripts that source it
# Shared helpers for the benchmark scripts in bench/. Source it from bash.
#
# Every daemon started here lives under one work dir ($BENCH_WORK), is
# tracked by PID, and is stopped by that PID on exit (SIGTERM, then SIGKILL);
# leftover mounts under the work dir are lazily unmounted before it is
# removed. Nothing listens beyond 127.0.0.1 or a unix socket.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_PIDS=()
# Functions that bench_cleanup calls after stopping BENCH_PIDS and before
# unmounting and removing $BENCH_WORK (e.g. stop_work_procs).
BENCH_CLEANUP_HOOKS=()

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "missing $tool ($(hint "$tool"))"
    done
}

hint() {
    case $1 in
        docker-registry) echo "apt-get install docker-registry" ;;
        skopeo) echo "apt-get install skopeo" ;;
        dockerd|containerd) echo "apt-get install docker.io" ;;
        /bin/busybox) echo "apt-get install busybox-static" ;;
        *) echo "install it" ;;
    esac
}

# Creates $BENCH_WORK and arranges for everything to be cleaned on exit.
bench_init() {
    BENCH_WORK=$(mktemp -d /tmp/servin-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local rc=$? i
    set +e
    # Newest first: dockerd stops before its containerd.
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${BENCH_PIDS[i]}"
    done
    for i in "${BENCH_CLEANUP_HOOKS[@]}"; do
        "$i"
    done
    if [ -n "${BENCH_WORK:-}" ] && [ -d "$BENCH_WORK" ]; then
        unmount_under "$BENCH_WORK"
        rm -rf "$BENCH_WORK"
    fi
    exit "$rc"
}

# Milliseconds since the epoch (bash 5's EPOCHREALTIME, no subprocess).
now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, wait, SIGKILL; reaps our children.
stop_pid() {
    local pid=$1 grace=${2:-15} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid ignored SIGTERM for ${grace}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    # Our children's exit status (143 after SIGTERM) is not a failure here.
    wait "$pid" 2>/dev/null || true
}

forget_pid() {
    local pid=$1 kept=() p
    for p in "${BENCH_PIDS[@]}"; do
        [ "$p" = "$pid" ] || kept+=("$p")
    done
    BENCH_PIDS=("${kept[@]}")
}

# Lazily unmounts every mount at or under DIR, deepest first.
unmount_under() {
    local dir=$1 m
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || note "cannot unmount $m"
        done
}

# wait_for SECONDS COMMAND...: retries COMMAND every 0.1 s.
wait_for() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# start_registry DIR: docker-registry on a free loopback port, storage in
# DIR. Sets REGISTRY (127.0.0.1:PORT) and REGISTRY_PID.
start_registry() {
    local dir=$1 port
    mkdir -p "$dir/data"
    port=$(free_port)
    REGISTRY=127.0.0.1:$port
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    BENCH_PIDS+=("$REGISTRY_PID")
    wait_for 30 curl -fsS "http://$REGISTRY/v2/" ||
        die "registry did not start: $(tail -n 20 "$dir/registry.log")"
}

# start_docker DIR [DOCKERD_ARGS...]: containerd + dockerd (Docker Engine
# 20.10) under DIR. Sets DOCKER_SOCK_HOST (unix://…) and the PIDs.
start_docker() {
    local dir=$1
    shift
    mkdir -p "$dir"
    # CRI off: it is not measured and would open a streaming port.
    cat >"$dir/containerd.toml" <<EOF
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
EOF
    containerd --config "$dir/containerd.toml" --root "$dir/ctr-root" --state "$dir/ctr-state" \
        --address "$dir/containerd.sock" >"$dir/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    BENCH_PIDS+=("$CONTAINERD_PID")
    wait_for 30 test -S "$dir/containerd.sock" ||
        die "containerd did not start: $(tail -n 20 "$dir/containerd.log")"
    echo '{}' >"$dir/daemon.json"
    dockerd --config-file "$dir/daemon.json" --containerd="$dir/containerd.sock" \
        --data-root "$dir/data" -H "unix://$dir/docker.sock" --pidfile "$dir/pid" \
        --exec-root "$dir/exec" --iptables=false --bridge=none \
        --insecure-registry "$REGISTRY" "$@" >"$dir/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    BENCH_PIDS+=("$DOCKERD_PID")
    DOCKER_SOCK_HOST=unix://$dir/docker.sock
    wait_for 60 docker -H "$DOCKER_SOCK_HOST" version ||
        die "dockerd did not start: $(tail -n 20 "$dir/dockerd.log")"
}

stop_docker() {
    local dir=$1
    stop_pid "$DOCKERD_PID" && forget_pid "$DOCKERD_PID"
    stop_pid "$CONTAINERD_PID" && forget_pid "$CONTAINERD_PID"
    unmount_under "$dir"
    rm -rf "$dir"
}

# The servind to benchmark: $SERVIND, else target/release/servind (built
# with `cargo build --release -p servin-daemon` when missing).
find_servind() {
    local target=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
    SERVIND=${SERVIND:-$target/release/servind}
    if [ ! -x "$SERVIND" ]; then
        note "building $SERVIND (cargo build --release -p servin-daemon)"
        if ! (cd "$BENCH_ROOT" && cargo build --release -p servin-daemon) >"$BENCH_WORK/cargo.log" 2>&1; then
            tail -n 20 "$BENCH_WORK/cargo.log" >&2
            return 1
        fi
    fi
    [ -x "$SERVIND" ]
}

# start_servind DIR [ARGS...]: our daemon with data root DIR/root and socket
# DIR/servin.sock. Sets SERVIN_SOCK_HOST and SERVIND_PID. Returns 1 (with
# the log tail on stderr) when it does not answer /_ping.
start_servind() {
    local dir=$1
    shift
    mkdir -p "$dir"
    "$SERVIND" --data-root "$dir/root" -H "unix://$dir/servin.sock" "$@" \
        >>"$dir/servind.log" 2>&1 &
    SERVIND_PID=$!
    BENCH_PIDS+=("$SERVIND_PID")
    SERVIN_SOCK_HOST=unix://$dir/servin.sock
    local i
    for ((i = 0; i < 300; i++)); do
        if curl -fsS --unix-socket "$dir/servin.sock" http://localhost/_ping >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$SERVIND_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    note "servind did not answer /_ping; last log lines:"
    tail -n 20 "$dir/servind.log" >&2
    stop_pid "$SERVIND_PID" 2 && forget_pid "$SERVIND_PID"
    return 1
}

stop_servind() {
    local dir=$1
    stop_pid "$SERVIND_PID" && forget_pid "$SERVIND_PID"
    unmount_under "$dir"
    rm -rf "$dir"
}

# stop_work_procs: stops (by PID) the processes left behind that belong to
# $BENCH_WORK: their command line names a path in it (container shims, docker
# CLIs talking to our sockets) or their root directory is in it (container
# processes). Shims outlive their daemon by design, so stopping the daemon
# is not enough.
stop_work_procs() {
    local dir=${BENCH_WORK:-} p root args pids=()
    [ -n "$dir" ] || return 0
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        if [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ]; then
            continue
        fi
        mapfile -d '' args 2>/dev/null <"/proc/$p/cmdline" || continue
        case " ${args[*]} " in
            *"$dir/"*) pids+=("$p"); continue ;;
        esac
        root=$(readlink "/proc/$p/root" 2>/dev/null) || continue
        case $root/ in
            "$dir/"*) pids+=("$p") ;;
        esac
    done
    for p in "${pids[@]}"; do
        note "stopping leftover process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-120)"
        stop_pid "$p" 5
    done
}

# cgroup_hierarchies: the mount points of the cgroup hierarchies (v1 and v2).
cgroup_hierarchies() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) ~ /^cgroup2?$/) print $5; break } }' \
        /proc/self/mountinfo | sort -u
}

# cgroup_list NAME: every cgroup at or under /NAME, in every hierarchy.
cgroup_list() {
    local h
    while read -r h; do
        if [ -d "$h/$1" ]; then
            find "$h/$1" -type d 2>/dev/null
        fi
    done < <(cgroup_hierarchies)
    return 0
}

# cgroup_remove_new NAME SNAPSHOT: removes, deepest first, the cgroups at or
# under /NAME that the file SNAPSHOT (an earlier `cgroup_list NAME`) does not
# list; prints how many it removed. rmdir refuses a cgroup that still has
# processes or children, so nobody's live cgroup can go.
cgroup_remove_new() {
    local d n=0
    while read -r d; do
        if rmdir "$d" 2>/dev/null; then
            n=$((n + 1))
        else
            note "cannot remove cgroup $d"
        fi
    done < <(cgroup_list "$1" | grep -vxF -f "$2" | sort -r)
    echo "$n"
}

# median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ms_to_s MS: seconds with three decimals.
ms_to_s() {
    awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }'
}
