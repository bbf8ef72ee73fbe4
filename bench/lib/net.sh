# shellcheck shell=bash disable=SC2034 # sets variables for bench/net
# Helpers for bench/net: subnets and names of its own, Docker's firewall
# state before and after, and the removal of what each daemon leaves in
# the host's network (links, nftables tables, iptables chains, proxies).
# Source after bench/lib/common.sh.

# net_pick_subnet VAR: sets VAR to a free 10.A.B (A in 216..223) that no
# route on the host (any table) and no earlier pick of this run covers.
NET_PICKED=" "
net_pick_subnet() {
    local routes a b i
    routes=$(ip -4 route show table all 2>/dev/null)
    for ((i = 0; i < 1000; i++)); do
        a=$((216 + RANDOM % 8)) b=$((RANDOM % 256))
        case $routes in *"10.$a.$b."*) continue ;; esac
        case $NET_PICKED in *" 10.$a.$b "*) continue ;; esac
        NET_PICKED+="10.$a.$b "
        printf -v "$1" '%s' "10.$a.$b"
        return 0
    done
    return 1
}

# net_free_port IP VAR: sets VAR to a TCP port free on IP now and not
# handed out before in this run (Servin's published ports are DNAT rules,
# not listening sockets, so the kernel alone could hand one out twice).
NET_PORTS=" "
net_free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$(python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1")
        case $NET_PORTS in *" $p "*) continue ;; esac
        NET_PORTS+="$p "
        printf -v "$2" '%s' "$p"
        return 0
    done
    return 1
}

# The iptables-nft tables (family name) that iptables/ip6tables may create.
NET_XT_TABLES=("ip nat" "ip filter" "ip6 nat" "ip6 filter")

# net_fw_snapshot DIR: the host's firewall as it is before any daemon runs.
net_fw_snapshot() {
    local dir=$1
    mkdir -p "$dir"
    iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' >"$dir/iptables.before" || true
    nft list tables >"$dir/nft-tables.before" 2>/dev/null || true
    ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort >"$dir/links.before"
    local f
    for f in "${NET_SYSCTLS[@]}"; do
        [ -f "$f" ] && echo "$f $(cat "$f")"
    done >"$dir/sysctl.before"
}

# Host settings dockerd may turn on (ip_forward; bridge netfilter when
# br_netfilter is loaded).
NET_SYSCTLS=(/proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables
    /proc/sys/net/bridge/bridge-nf-call-ip6tables)

# net_sysctl_restore SNAPSHOT_DIR: puts back the settings that changed.
net_sysctl_restore() {
    local f v
    while read -r f v; do
        if [ "$(cat "$f" 2>/dev/null)" != "$v" ]; then
            note "$f changed during the run; setting it back to $v"
            echo "$v" >"$f" 2>/dev/null || note "cannot write $f"
        fi
    done <"$1/sysctl.before"
}

# xt_cmd FAMILY: iptables or ip6tables.
xt_cmd() {
    if [ "$1" = ip6 ]; then echo ip6tables; else echo iptables; fi
}

# net_docker_fw_clean BRIDGE SNAPSHOT_DIR: removes what a dockerd with
# iptables on added: every rule that jumps to a DOCKER* chain or names
# BRIDGE, then the DOCKER* chains, then the iptables-nft tables that were
# not there before and now hold no rule. dockerd leaves all of these in
# place when it stops.
net_docker_fw_clean() {
    local br=$1 dir=$2 ft fam table cmd rule chain words
    for ft in "${NET_XT_TABLES[@]}"; do
        read -r fam table <<<"$ft"
        cmd=$(xt_cmd "$fam")
        command -v "$cmd" >/dev/null || continue
        nft list table "$fam" "$table" >/dev/null 2>&1 || continue
        "$cmd" -t "$table" -S 2>/dev/null |
            grep -E -- '^-A [^ ]+ .*(-[jg] DOCKER| '"$br"'( |$))' |
            grep -v -- '^-A DOCKER' | while read -r rule; do
            read -ra words <<<"${rule#-A }"
            "$cmd" -t "$table" -D "${words[@]}" 2>/dev/null ||
                note "cannot delete $fam $table rule: $rule"
        done
        for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
            "$cmd" -t "$table" -F "$chain" 2>/dev/null
        done
        for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
            "$cmd" -t "$table" -X "$chain" 2>/dev/null || note "cannot delete $fam $table chain $chain"
        done
        if ! grep -qx "table $fam $table" "$dir/nft-tables.before" &&
            ! "$cmd" -t "$table" -S 2>/dev/null | grep -q '^-[AN] '; then
            nft delete table "$fam" "$table" 2>/dev/null || note "cannot delete nft table $fam $table"
        fi
    done
}

# net_docker_proxies SUBNET_PREFIX: PIDs of docker-proxy processes that
# forward to an address in SUBNET_PREFIX (10.A.B.).
net_docker_proxies() {
    local p exe args
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "${exe##*/}" = docker-proxy ] || continue
        args=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        case $args in *"-container-ip $1"*) echo "${p#/proc/}" ;; esac
    done
}

# net_links_with_prefix PREFIX...: links whose names start with a PREFIX.
net_links_with_prefix() {
    local name pre
    ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | while read -r name; do
        for pre in "$@"; do
            case $name in "$pre"*) echo "$name" ;; esac
        done
    done
}

# net_servin_clean TABLE PREFIX...: after servind has stopped, deletes its
# nftables table and links (bridges and veths named PREFIX…); prints how
# many it had to delete.
net_servin_clean() {
    local table=$1 n=0 link
    shift
    if nft list table ip "$table" >/dev/null 2>&1; then
        nft delete table ip "$table" 2>/dev/null || note "cannot delete nft table ip $table"
        n=$((n + 1))
    fi
    for link in $(net_links_with_prefix "$@"); do
        ip link del "$link" 2>/dev/null || note "cannot delete link $link"
        n=$((n + 1))
    done
    echo "$n"
}

# net_leak_report SNAPSHOT_DIR PREFIX...: says on stderr what differs from
# the snapshot after clean-up (Docker's iptables rules, iptables-nft
# tables and the tables NET_OWN_TABLES names (a|b), links named PREFIX…);
# returns 1 when something does.
net_leak_report() {
    local dir=$1 left=0 d
    shift
    d=$(diff <(iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//') \
        "$dir/iptables.before" | grep '^[<>]' | grep -i 'docker' || true)
    [ -z "$d" ] || { note "iptables differs from before the run:"; echo "$d" >&2; left=1; }
    # Only the tables this run could have made: others' daemons come and go.
    d=$(diff <(nft list tables 2>/dev/null) "$dir/nft-tables.before" | grep '^<' |
        grep -E "^< table (ip6? (nat|filter)|ip (${NET_OWN_TABLES:-none}))\$" || true)
    [ -z "$d" ] || { note "nft tables that were not there before: ${d//$'\n'/ }"; left=1; }
    d=$(net_links_with_prefix "$@" | tr '\n' ' ')
    [ -z "$d" ] || { note "links left: $d"; left=1; }
    return "$left"
}
