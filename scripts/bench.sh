#!/usr/bin/env bash
# `make bench`: the benchmarks, one section each, never part of `make test`.
#
#   scripts/bench.sh BUILD_DIR [--only SECTION] [section options]
#
# Sections: socklb — connect()+close() through the socket LB vs direct vs kube-proxy-style iptables DNAT at
# several service counts (bench/README.md). Options of socklb: --sizes 10,1000,10000 --iters 4000 (per case
# and round) --rounds 30 --iptables nft|legacy (default: whichever `iptables` is) --endpoints 1..3 (of the
# dialed service, default 3) --agent-args "ARGS" (extra agent options, e.g. --no-sockmap) --hbone-listener 0|1
# (1: the HBONE capture's listener set in every agent's xm_hbone_proxy, with one tunnelled address nobody dials,
# so that each connect pays the capture's checks without being captured).
# Results land in BUILD_DIR/bench/*.json.
#
# Everything lives in namespaces and a child cgroup this script creates (names carry its PID), nothing touches
# the machine's interfaces, iptables or root cgroup, and one trap removes all of it, also on failure.
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
shift || true
cd "$(dirname "$0")/.."

ONLY=""
SIZES=10,1000,10000
ITERS=4000
ROUNDS=30
IPT_BACKEND=""
DIAL_EPS=3
AGENT_ARGS=""
BPF_STATS=0
HBONE_LISTENER=0
BPF_STATS_SAVED=""
WARMUP=200
MAX_CASE_MS=600
while [ $# -gt 0 ]; do
	case $1 in
	--only) ONLY=$2 ;;
	--sizes) SIZES=$2 ;;
	--iters) ITERS=$2 ;;
	--rounds) ROUNDS=$2 ;;
	--iptables) IPT_BACKEND=$2 ;;
	--endpoints) DIAL_EPS=$2 ;;
	--agent-args) AGENT_ARGS=$2 ;;
	--bpf-stats) BPF_STATS=$2 ;;
	--hbone-listener) HBONE_LISTENER=$2 ;;
	*)
		echo "bench.sh: unknown option $1" >&2
		exit 2
		;;
	esac
	shift 2
done

log() { echo "# $(date +%T) $*"; }
die() {
	echo "bench.sh: $*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------------------------
# Resources of this run, and the one teardown that removes them.

P="xmb$$-"
CGROOT=/sys/fs/cgroup/unified
CG="$CGROOT/xmesh-bench-$$"
PIN=/sys/fs/bpf/xmesh-bench-$$
TMP=""
NETNS=()
PIDS=()
CG_MADE=0

stop_pid() { # SIGTERM, up to 5 s, then SIGKILL: only PIDs this script started
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

teardown() {
	local rc=$? pid ns d i
	set +e
	trap - EXIT INT TERM
	[ -z "$BPF_STATS_SAVED" ] || sysctl -qw "kernel.bpf_stats_enabled=$BPF_STATS_SAVED"
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ -d "$PIN" ]; then
		for d in "$PIN"/*/; do
			[ -d "$d" ] || continue
			d=${d%/}
			timeout -k 5 30 "$BUILD/xmesh" cleanup --bpffs "$d" --cgroup "$CG/mesh-${d##*/}" \
				>"$TMP/cleanup.log" 2>&1 ||
				echo "teardown: xmesh cleanup of $d failed: $(tail -n 3 "$TMP/cleanup.log")" >&2
		done
	fi
	if [ "$CG_MADE" = 1 ] && [ -d "$CG" ]; then
		# Whatever still runs in our cgroups is ours (the bench client moves itself in); kill it, then rmdir.
		echo 1 >"$CG/cgroup.kill" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			[ -n "$(cat "$CG/cgroup.procs" "$CG"/*/cgroup.procs 2>/dev/null)" ] || break
			sleep 0.05
		done
		for d in "$CG"/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
		rmdir "$CG" 2>/dev/null || echo "teardown: could not remove $CG" >&2
	fi
	case "$PIN" in /sys/fs/bpf/xmesh-bench-*) [ -e "$PIN" ] && rm -rf -- "$PIN" ;; esac
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ -n "$TMP" ] && [ -d "$TMP" ] && rm -rf -- "$TMP"
	exit "$rc"
}

setup_common() {
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, cgroups, BPF)"
	[ "$(stat -f -c %T "$CGROOT" 2>/dev/null)" = cgroup2fs ] || die "cgroup v2 is not mounted at $CGROOT"
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	trap teardown EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	TMP=$(mktemp -d "/tmp/xmesh-bench-$$.XXXXXX")
	mkdir "$CG"
	CG_MADE=1
	mkdir -p "$PIN" "$BUILD/bench"
	log "bench $$: netns ${P}*, cgroup $CG, pins $PIN, files $TMP"
}

netns_add() {
	ip netns add "$P$1"
	NETNS+=("$P$1")
	ip -n "$P$1" link set lo up
}

# wait_line FILE REGEX SECONDS PID: polls until FILE has a matching line; fails early if PID died.
wait_line() {
	local file=$1 re=$2 secs=$3 pid=$4 deadline
	deadline=$(($(date +%s) + secs))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { grep -qE -- "$re" "$file" 2>/dev/null && return 0 || return 2; }
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------------------------------------------------
# socklb: connect()+close() through the socket LB, direct, and through kube-proxy-style iptables DNAT.
#
# node   br0 10.200.1.1/24 — the bridge joining everything, no route out
# srv    10.200.1.11-13: one accept-and-close server on :8080 (CPU 1)
# cli    10.200.1.101: the direct baseline (child cgroup "plain", nothing attached) and the socket LB (child
#        cgroup mesh-N, one agent per size N, each agent on its own cgroup and pin directory)
# ipt-N  10.200.1.(110+i): no agent, nat/filter rules of kube-proxy's iptables mode for N services
# The client (CPU 0) moves itself between these namespaces and cgroups, round after round.

SRV=bench/socklb

socklb_server() { # socklb_server [--banner]: (re)starts the server; SRV_PID
	if [ -n "${SRV_PID:-}" ]; then socklb_server_stop; fi
	timeout -k 5 900 nsenter --net="/run/netns/${P}srv" -- "$BUILD/$SRV" serve --port 8080 --cpu 1 "$@" \
		>"$TMP/server.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_line "$TMP/server.log" ' ready$' 10 "$SRV_PID" || die "server did not start: $(cat "$TMP/server.log")"
}

socklb_server_stop() { # stops the server and forgets its PID (so the teardown never signals a reused PID)
	local p keep=()
	stop_pid "$SRV_PID"
	for p in "${PIDS[@]}"; do [ "$p" = "$SRV_PID" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
	SRV_PID=""
}

# socklb_extra_server NAME NETNS CGROUP PORT [serve options]: one more server (CPU 1) in NETNS and CGROUP: the
# one outside the node (case socklb_ext).
socklb_extra_server() {
	local name=$1 ns=$2 cg=$3 port=$4 pid
	shift 4
	timeout -k 5 900 sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$cg" \
		nsenter --net="/run/netns/$P$ns" -- "$BUILD/$SRV" serve --port "$port" --cpu 1 "$@" \
		>"$TMP/server-$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_line "$TMP/server-$name.log" ' ready$' 10 "$pid" || die "server $name did not start: $(cat "$TMP/server-$name.log")"
}

admin_query() { # admin_query SOCKET COMMAND...: an agent's answer on its admin socket
	timeout -k 2 10 python3 - "$1" "${*:2}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode(errors="replace"))
PY
}

probe() { # probe NETNS CGROUP ADDR EXPECT_PEER BACKEND...
	local ns=$1 cg=$2 addr=$3 peer=$4 b args=()
	shift 4
	for b in "$@"; do args+=(--expect-backend "$b"); done
	timeout -k 5 20 "$BUILD/$SRV" probe --netns "/run/netns/$P$ns" --cgroup "$cg" --addr "$addr" \
		--expect-peer "$peer" "${args[@]}" | sed "s|^|  [$ns ${cg##*/}] |"
	return "${PIPESTATUS[0]}"
}

# Per attached program of the mesh cgroup (and sk_msg), run_cnt and run_time_ns over BPF_STATS connects of one
# case run alone: "name runs/connect ns/connect ns/run". bpf_stats_enabled is on only for this and restored.
prog_stats() { # prog_stats CGROUP PIN_DIR: "id name cnt ns" for the cgroup's programs and the sk_msg on PIN_DIR's sockhash
	local id map
	map=$(bpftool -j map show pinned "$2/xm_sock_pairs" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || echo none)
	for id in $(bpftool -j cgroup show "$1" | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin) if "id" in p))' 2>/dev/null) \
		$(bpftool -j prog show | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin) if p.get("type")=="sk_msg" and str(sys.argv[1]) in map(str, p.get("map_ids",[]))))' "$map" 2>/dev/null); do
		bpftool -j prog show id "$id" 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["id"], p["name"], p.get("run_cnt",0), p.get("run_time_ns",0))' 2>/dev/null || true
	done
}

socklb_bpf_stats() { # socklb_bpf_stats SIZE... -- VIP...
	local sizes=() vips=() n i k c before after
	while [ "$1" != -- ]; do sizes+=("$1"); shift; done
	shift
	vips=("$@")
	BPF_STATS_SAVED=$(sysctl -n kernel.bpf_stats_enabled)
	sysctl -qw kernel.bpf_stats_enabled=1
	log "bpf_stats: $BPF_STATS connects per case alone (+ $WARMUP warm-up), per connect:"
	for i in "${!sizes[@]}"; do
		n=${sizes[$i]}
		for k in "socklb,$n,/run/netns/${P}cli,$CG/mesh-$n,${vips[$i]}:80" \
			"socklb_nonsvc,$n,/run/netns/${P}cli,$CG/mesh-$n,10.200.1.11:8080" \
			"socklb_ext,$n,/run/netns/${P}cli,$CG/mesh-$n,10.200.1.50:8080"; do
			before=$(prog_stats "$CG/mesh-$n" "$PIN/$n")
			timeout -k 5 300 "$BUILD/$SRV" run --case "direct,0,/run/netns/${P}cli,$CG/plain,10.200.1.11:8080" \
				--case "$k" --iters "$BPF_STATS" --rounds 1 --warmup "$WARMUP" --max-case-ms 600000 --cpu 0 \
				>/dev/null 2>&1 || die "bpf_stats run of $k failed"
			after=$(prog_stats "$CG/mesh-$n" "$PIN/$n")
			c=$((BPF_STATS + WARMUP))
			python3 - "$c" "${k%%,/*}" "$before" "$after" <<'PY'
import sys
conns, case, before, after = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
b = {l.split()[0]: l.split() for l in before.splitlines() if l.strip()}
tot = 0.0
for l in after.splitlines():
    if not l.strip():
        continue
    pid, name, cnt, ns = l.split()
    pb = b.get(pid, [pid, name, "0", "0"])
    dc, dn = int(cnt) - int(pb[2]), int(ns) - int(pb[3])
    if dc <= 0:
        continue
    tot += dn / conns
    print(f"  {case:<18} {name:<16} id {pid:<6} runs/conn {dc / conns:5.2f}  ns/conn {dn / conns:7.0f}  ns/run {dn / dc:6.0f}")
print(f"  {case:<18} {'total':<16} {'':<9} {'':<16} ns/conn {tot:7.0f}")
PY
		done
	done
	sysctl -qw "kernel.bpf_stats_enabled=$BPF_STATS_SAVED"
	BPF_STATS_SAVED=""
}

# The HBONE capture switched on in the pinned maps under DIR: listener 10.200.1.1:15002 (IPv4), and one
# remote pod 10.244.0.1 (STRICT) that no case dials. Connects then pay the listener lookup and the two
# destination lookups, (addr, port) then (addr, 0), and are not captured.
hbone_listener_on() { # hbone_listener_on PIN_DIR
	bpftool map update pinned "$1/xm_hbone_proxy" key 0 0 0 0 value hex \
		0a c8 01 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 3a 9a 01 00
	bpftool map update pinned "$1/xm_hbone_dsts" key hex \
		0a f4 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 04 00 value hex 02 00 00 00
}

section_socklb() {
	local sizes n i ipt_ver ipt_restore cases=() vip vips=() backends=(10.200.1.11 10.200.1.12 10.200.1.13)
	local dialed=("${backends[@]:0:$DIAL_EPS}") agent_extra=()
	read -r -a agent_extra <<<"$AGENT_ARGS"
	local agent_pids=() t0 ns
	IFS=, read -r -a sizes <<<"$SIZES"
	[ "${#sizes[@]}" -le 8 ] || die "at most 8 sizes"

	ipt_ver=$(iptables --version)
	if [ -z "$IPT_BACKEND" ]; then
		case $ipt_ver in *nf_tables*) IPT_BACKEND=nft ;; *) IPT_BACKEND=legacy ;; esac
	fi
	ipt_restore="iptables-$IPT_BACKEND-restore"
	command -v "$ipt_restore" >/dev/null || die "$ipt_restore not installed"
	ipt_ver=$("iptables-$IPT_BACKEND" --version)
	log "socklb: sizes ${sizes[*]}, $ITERS ops x $ROUNDS rounds per case, iptables: $ipt_ver"

	netns_add node
	ip -n "${P}node" link add br0 type bridge
	ip -n "${P}node" addr add 10.200.1.1/24 dev br0
	ip -n "${P}node" link set br0 up
	attach() { # attach NS ADDR...: a veth from the node's bridge into NS, with the addresses
		local name=$1 a
		shift
		netns_add "$name"
		ip -n "${P}node" link add "v-$name" type veth peer name eth0 netns "$P$name"
		ip -n "${P}node" link set "v-$name" master br0 up
		for a in "$@"; do ip -n "$P$name" addr add "$a/24" dev eth0; done
		ip -n "$P$name" link set eth0 up
		ip -n "$P$name" route add 10.96.0.0/16 via 10.200.1.1
		# Belt and braces next to SO_LINGER 0: reuse of TIME_WAIT ports should any appear.
		ip netns exec "$P$name" sysctl -qw net.ipv4.tcp_tw_reuse=1
	}
	attach srv "${backends[@]}"
	ip netns exec "${P}srv" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
	attach cli 10.200.1.101
	# A server that is no pod of this node (in no EndpointSlice, no Pod, no Node address): not in xm_local_ips.
	attach ext 10.200.1.50
	mkdir "$CG/plain"

	for i in "${!sizes[@]}"; do
		n=${sizes[$i]}
		vip=$("$BUILD/$SRV" gen --services "$n" --dial-endpoints "$DIAL_EPS" --yaml "$TMP/services-$n.yaml" --iptables "$TMP/iptables-$n.rules")
		vip=${vip%% *}
		vips+=("$vip")
		attach "ipt-$n" "10.200.1.$((110 + i))"
		t0=$(date +%s%N)
		ip netns exec "${P}ipt-$n" "$ipt_restore" <"$TMP/iptables-$n.rules" ||
			die "$ipt_restore failed for $n services"
		log "ipt-$n: $(grep -c '^-A' "$TMP/iptables-$n.rules") rules loaded in" \
			"$((($(date +%s%N) - t0) / 1000000)) ms ($ipt_restore)"
		mkdir "$CG/mesh-$n"
		timeout -k 5 900 nsenter --net="/run/netns/${P}node" -- "$BUILD/xmesh" agent \
			--config "$TMP/services-$n.yaml" --cgroup "$CG/mesh-$n" --bpffs "$PIN/$n" --node node1 \
			--metrics "127.0.0.1:$((15090 + i))" --admin "$TMP/admin-$n.sock" --state-dir "$TMP/agent-state" "${agent_extra[@]}" \
			>"$TMP/agent-$n.log" 2>&1 &
		agent_pids+=("$!")
		PIDS+=("$!")
	done
	for i in "${!sizes[@]}"; do
		n=${sizes[$i]}
		wait_line "$TMP/agent-$n.log" 'ready' 180 "${agent_pids[$i]}" ||
			die "agent for $n services not ready: $(tail -n 5 "$TMP/agent-$n.log")"
		log "agent for $n services ready (pid ${agent_pids[$i]}), dialing ${vips[$i]}:80"
		if [ "$HBONE_LISTENER" = 1 ]; then
			hbone_listener_on "$PIN/$n" || die "cannot set the HBONE listener in $PIN/$n"
			log "agent for $n services: HBONE capture listener set (10.200.1.1:15002), one remote pod"
		fi
	done

	# Every path must really reach the server before anything is timed.
	socklb_server --banner
	log "probes (a banner server names the address each connection reached):"
	probe cli "$CG/plain" 10.200.1.11:8080 10.200.1.11 10.200.1.11 || die "direct path broken"
	cases+=("direct,0,/run/netns/${P}cli,$CG/plain,10.200.1.11:8080")
	for i in "${!sizes[@]}"; do
		n=${sizes[$i]}
		vip=${vips[$i]}
		probe cli "$CG/mesh-$n" "$vip:80" "$vip" "${dialed[@]}" || die "socket LB path broken ($n services)"
		probe cli "$CG/mesh-$n" 10.200.1.11:8080 10.200.1.11 10.200.1.11 || die "mesh non-service path broken"
		probe "ipt-$n" "$CG/plain" "$vip:80" "$vip" "${dialed[@]}" || die "iptables path broken ($n services)"
		probe "ipt-$n" "$CG/plain" 10.200.1.11:8080 10.200.1.11 10.200.1.11 || die "iptables non-service broken"
		cases+=("socklb,$n,/run/netns/${P}cli,$CG/mesh-$n,$vip:80"
			"iptables,$n,/run/netns/${P}ipt-$n,$CG/plain,$vip:80"
			"socklb_nonsvc,$n,/run/netns/${P}cli,$CG/mesh-$n,10.200.1.11:8080"
			"iptables_nonsvc,$n,/run/netns/${P}ipt-$n,$CG/plain,10.200.1.11:8080")
	done
	# And the VIP works only through a mechanism: outside the mesh cgroup, the client netns cannot reach it.
	if probe cli "$CG/plain" "${vips[0]}:80" "${vips[0]}" >/dev/null 2>&1; then
		die "${vips[0]} answered from outside the mesh cgroup: the socket LB is not what is being measured"
	fi
	log "  [cli plain] ${vips[0]}:80 unreachable outside the mesh cgroup, as it should be"

	# What a user pays: an address outside the node, and one request/response per connection. The server's
	# end of those is a listener of the bench process itself in the server netns and, for the mesh, in the
	# first size's agent cgroup (both ends in the mesh); the plain cgroup for the direct baseline.
	socklb_extra_server ext ext "$CG/plain" 8080
	cases+=("direct_ext,0,/run/netns/${P}cli,$CG/plain,10.200.1.50:8080"
		"direct_rr,0,/run/netns/${P}cli,$CG/plain,10.200.1.11:8082,/run/netns/${P}srv,$CG/plain,8082"
		"socklb_rr,${sizes[0]},/run/netns/${P}cli,$CG/mesh-${sizes[0]},${vips[0]}:81,/run/netns/${P}srv,$CG/mesh-${sizes[0]},8081"
		"socklb_nonsvc_rr,${sizes[0]},/run/netns/${P}cli,$CG/mesh-${sizes[0]},10.200.1.11:8083,/run/netns/${P}srv,$CG/mesh-${sizes[0]},8083")
	for i in "${!sizes[@]}"; do
		cases+=("socklb_ext,${sizes[$i]},/run/netns/${P}cli,$CG/mesh-${sizes[$i]},10.200.1.50:8080")
	done

	socklb_server
	log "timing: client on CPU 0, server on CPU 1 ($(nproc) CPUs)"
	local run_args=()
	for i in "${cases[@]}"; do run_args+=(--case "$i"); done
	timeout -k 5 600 "$BUILD/$SRV" run "${run_args[@]}" --iters "$ITERS" --rounds "$ROUNDS" --warmup "$WARMUP" \
		--max-case-ms "$MAX_CASE_MS" \
		--cpu 0 --json "$BUILD/bench/socklb.json" \
		--meta "iptables=$ipt_ver" --meta "iptables_restore=$ipt_restore" \
		--meta "kernel=$(uname -r)" --meta "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
		--meta "nproc=$(nproc)" --meta "dialed_service_endpoints=$DIAL_EPS" --meta "agent_args=$AGENT_ARGS" --meta "hbone_listener=$HBONE_LISTENER" \
		--meta "lb_algorithm=agent default (no DestinationRule)" \
		--meta "topology=client netns -> veth -> bridge -> veth -> server netns; client CPU 0, server CPU 1" \
		--meta "xmesh=$("$BUILD/xmesh" version 2>/dev/null | head -n 1)" \
		--meta "tree=$(git describe --always --dirty 2>/dev/null || echo unknown)"
	for n in "${agent_pids[@]}"; do kill -0 "$n" 2>/dev/null || die "an agent died during the run"; done
	log "sockmap of the agent for ${sizes[0]} services (the request/response cases): $(admin_query \
		"$TMP/admin-${sizes[0]}.sock" sockmap status | grep -E '^(redirected_msgs|fallback_no_peer|sockets_inserted|peer_not_local) ' |
		tr -s ' \n' ' ')"
	[ "$BPF_STATS" -gt 0 ] && socklb_bpf_stats "${sizes[@]}" -- "${vips[@]}"
	socklb_server_stop
	log "server: $(tail -n 1 "$TMP/server.log")"
}

# ---------------------------------------------------------------------------------------------------------

# Sections run in this order; each is a function section_NAME defined above the main loop at the end of the
# file, so that a section added below still runs under the one setup and teardown.
SECTIONS=(socklb sockmap xdp apply l7hop l7 mtls authz)

# ---------------------------------------------------------------------------------------------------------
# BEGIN section sockmap (owner: sockmap). Same-node pod-to-pod TCP, redirect on vs off, loopback TCP and a
# unix socket pair as floors (bench/sockmap.c). Result: BUILD/bench/sockmap.json.
#
# node   br0 10.200.7.1/24, no route out; pods xms<PID>-a 10.200.7.11 (client), xms<PID>-b 10.200.7.12
# (server) on veths. The bench process loads sockmap unpinned, attaches it to the child cgroup
# $CG/sockmap, joins that cgroup, and runs its client/server threads inside the two pods' namespaces.
# Options: SOCKMAP_RR_ITERS (default 20000), SOCKMAP_STREAM_SECS (default 3).

section_sockmap() {
	local sp="xms$$-" n
	for n in node a b; do
		ip netns add "$sp$n"
		NETNS+=("$sp$n")
		ip -n "$sp$n" link set lo up
	done
	ip -n "${sp}node" link add br0 type bridge
	ip -n "${sp}node" addr add 10.200.7.1/24 dev br0
	ip -n "${sp}node" link set br0 up
	for n in a b; do
		ip -n "${sp}node" link add "v-$n" type veth peer name eth0 netns "$sp$n"
		ip -n "${sp}node" link set "v-$n" master br0 up
		ip -n "$sp$n" link set eth0 up
	done
	ip -n "${sp}a" addr add 10.200.7.11/24 dev eth0
	ip -n "${sp}b" addr add 10.200.7.12/24 dev eth0
	mkdir -p "$CG/sockmap"
	# Client and server share CPU 0: on this VM an idle vCPU halts, and each cross-CPU wakeup then costs
	# 25+ µs, which would drown the stack's own cost that request/response latency is meant to show.
	timeout -k 5 600 taskset -c 0 "$BUILD/bench/sockmap" --cgroup "$CG/sockmap" \
		--client-ns "/run/netns/${sp}a" --server-ns "/run/netns/${sp}b" \
		--client-ip 10.200.7.11 --server-ip 10.200.7.12 \
		--rr-iters "${SOCKMAP_RR_ITERS:-20000}" --stream-secs "${SOCKMAP_STREAM_SECS:-3}" \
		--out "$BUILD/bench/sockmap.json" || die "sockmap bench failed"
	log "sockmap: $(tr -d '\n' <"$BUILD/bench/sockmap.json" | sed 's/.*"redirect_vs_tcp"/"redirect_vs_tcp"/')"
}

# END section sockmap

# ---------------------------------------------------------------------------------------------------------
# BEGIN section xdp (owner: xdp datapath). ns/packet of the XDP load balancer through BPF_PROG_TEST_RUN
# (bench/xdp.c): connection-table hit (local, remote), new flow, non-VIP pass and a bare XDP_PASS floor, method A (10^6
# calls with repeat=1, mean of the kernel's duration) and method B (one call, repeat=10^6). No interface is
# touched: the program runs in a private network namespace the bench process unshares. Options (env):
# XDP_BENCH_CALLS (default 1000000), XDP_BENCH_REPEAT (default 1000000). Result: BUILD/bench/xdp.json.
# Then bench/xdp_costs.c: what single primitives (a memory access, a per-CPU counter, hash and LRU lookups, an
# LRU insert into a full table) cost by method A on this machine, next to the same floor; the ratios above
# are sums of these. Result: BUILD/bench/xdp_costs.json.

section_xdp() {
	timeout -k 5 600 "$BUILD/bench/xdp" --calls "${XDP_BENCH_CALLS:-1000000}" \
		--repeat "${XDP_BENCH_REPEAT:-1000000}" --cpu 0 --json "$BUILD/bench/xdp.json" ||
		die "xdp bench failed"
	echo
	timeout -k 5 300 "$BUILD/bench/xdp_costs" --cpu 0 --json "$BUILD/bench/xdp_costs.json" ||
		die "xdp_costs bench failed"
}
# END section xdp

# ---------------------------------------------------------------------------------------------------------
# BEGIN section apply. The cost of one changed object at scale (bench/apply.c): APPLY_SERVICES (default
# 10000) Services with their EndpointSlices in files of 100, an agent in its own netns, child cgroup and pin
# directory; then APPLY_RELOADS (default 20) times one EndpointSlice changes (an endpoint added, the file
# replaced by a rename), with the pinned xm_conn_metrics filled (APPLY_CONN_METRICS, default 65,536 entries)
# and /metrics scraped every second meanwhile. Measured: each apply's loop time and CPU time, and the build's
# time on the config thread (the agent's "config applied ... in"
# line), the worst wait of an admin "ping" answered by the control loop during the applies, the scrapes' times, and the agent's
# RSS after each reload. Goals (issue 12): apply < 50 ms, no stall > 100 ms, RSS flat over 20 reloads.
# Result: BUILD/bench/apply.json.

section_apply() {
	local n=${APPLY_SERVICES:-10000} reloads=${APPLY_RELOADS:-20} dir="$TMP/apply-config" pid agent probe_pid r
	local scrape_pid
	local log="$TMP/apply-agent.log" ns="${P}apply" rss=() t0 times
	"$BUILD/bench/apply" gen --services "$n" --dir "$dir" >/dev/null
	netns_add apply
	mkdir "$CG/apply"
	t0=$(date +%s%N)
	timeout -k 5 1800 nsenter --net="/run/netns/$ns" -- "$BUILD/xmesh" agent --config "$dir" \
		--cgroup "$CG/apply" --bpffs "$PIN/apply" --node node1 --metrics 127.0.0.1:15190 \
		--admin "$TMP/apply-admin.sock" --state-dir "$TMP/agent-state" >"$log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_line "$log" ' ready' 600 "$pid" || die "apply: agent not ready: $(tail -n 5 "$log")"
	agent=$(pgrep -P "$pid" -x xmesh) || die "apply: no agent process under timeout $pid"
	log "apply: $n services, agent ready in $((($(date +%s%N) - t0) / 1000000)) ms:" \
		"$(grep -m1 'config applied' "$log" | sed 's/.*config applied/config applied/')"
	rss+=("$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")")
	# A busy node's socket-path Istio metrics: every scrape walks and labels all of them, on the metrics thread.
	"$BUILD/bench/apply" fill --pin "$PIN/apply" --count "${APPLY_CONN_METRICS:-65536}" | sed 's/^/  /'
	"$BUILD/bench/apply" probe --admin "$TMP/apply-admin.sock" --seconds $((reloads + 5)) \
		>"$TMP/apply-probe.txt" 2>&1 &
	probe_pid=$!
	PIDS+=("$probe_pid")
	nsenter --net="/run/netns/$ns" -- "$BUILD/bench/apply" probe --metrics 127.0.0.1:15190 --path /metrics \
		--interval-ms 1000 --seconds $((reloads + 5)) >"$TMP/apply-scrape.txt" 2>&1 &
	scrape_pid=$!
	PIDS+=("$scrape_pid")
	sleep 1
	for ((r = 1; r <= reloads; r++)); do
		"$BUILD/bench/apply" change --dir "$dir" --round "$r"
		local deadline=$((SECONDS + 60))
		while [ "$(grep -c 'config applied (config changed)' "$log")" -lt "$r" ]; do
			[ "$SECONDS" -lt "$deadline" ] || die "apply: reload $r not applied in 60 s: $(tail -n 3 "$log")"
			kill -0 "$pid" 2>/dev/null || die "apply: the agent died: $(tail -n 5 "$log")"
			sleep 0.05
		done
		rss+=("$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")")
		sleep 0.3
	done
	wait "$probe_pid" || die "apply: probe failed: $(cat "$TMP/apply-probe.txt")"
	wait "$scrape_pid" || die "apply: scrapes failed: $(cat "$TMP/apply-scrape.txt")"
	times=$(grep 'config applied (config changed)' "$log" |
		sed -E 's/.* in ([0-9.]+) ms of the control loop \(CPU ([0-9.]+) ms\), built in ([0-9.]+) ms on the config thread \(CPU ([0-9.]+) ms\)$/\1 \2 \3 \4/')
	python3 - "$BUILD/bench/apply.json" "$n" "$(cat "$TMP/apply-probe.txt")" "${rss[*]}" "$(cat /proc/loadavg)" \
		"$(cat "$TMP/apply-scrape.txt")" <<PY || die "apply: report"
import json, statistics, sys
out, n, probe, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), [int(x) for x in sys.argv[4].split()]
load = sys.argv[5]
sc = dict(zip(sys.argv[6].split()[0::2], sys.argv[6].split()[1::2]))
rows = [tuple(map(float, l.split())) for l in '''$times'''.strip().splitlines()]
wall, cpu = [r[0] for r in rows], [r[1] for r in rows]
build, build_cpu = [r[2] for r in rows], [r[3] for r in rows]
p = dict(zip(probe[0::2], probe[1::2]))
worst = float(p["worst_ms"])
res = {"services": n, "reloads": len(rows), "apply_ms": wall, "apply_cpu_ms": cpu,
       "apply_ms_median": statistics.median(wall), "apply_ms_max": max(wall),
       "apply_cpu_ms_median": statistics.median(cpu), "build_ms": build, "build_cpu_ms": build_cpu,
       "build_ms_median": statistics.median(build), "build_cpu_ms_median": statistics.median(build_cpu), "worst_stall_ms": worst, "probe_answers": int(p["answers"]),
       "rss_kb": rss, "rss_growth_kb": rss[-1] - rss[1] if len(rss) > 2 else 0,
       "rss_growth_after_5_kb": rss[-1] - rss[min(5, len(rss) - 1)], "loadavg": load,
       "scrapes": int(sc["answers"]), "scrape_worst_ms": float(sc["worst_ms"]), "scrape_mean_ms": float(sc["mean_ms"])}
json.dump(res, open(out, "w"), indent=2)
print(f"  one changed EndpointSlice at {n} services, {len(rows)} reloads:")
print(f"  apply loop time  median {res['apply_ms_median']:.1f} ms, max {res['apply_ms_max']:.1f} ms "
      f"(goal < 50 ms: {res['apply_ms_max'] / 50:.2f}x the goal)")
print(f"  apply CPU time   median {res['apply_cpu_ms_median']:.1f} ms, max {max(cpu):.1f} ms (the control loop's share)")
print(f"  build on the config thread: median {res['build_ms_median']:.1f} ms (CPU {res['build_cpu_ms_median']:.1f} ms),"
      f" max {max(build):.1f} ms: load through the parse cache, validate, compile; the loop keeps serving meanwhile")
print(f"  worst loop stall {worst:.1f} ms over {p['answers']} admin pings (goal < 100 ms: {worst / 100:.2f}x)")
print(f"  scrapes of /metrics meanwhile: {res['scrapes']}, worst {res['scrape_worst_ms']:.1f} ms, mean "
      f"{res['scrape_mean_ms']:.1f} ms (the metrics thread: they never hold the control loop)")
w = min(5, len(rss) - 1)
print(f"  RSS {rss[0] / 1024:.1f} MB after the first apply, {rss[1] / 1024:.1f} MB after reload 1, "
      f"{rss[w] / 1024:.1f} MB after reload {w}, {rss[-1] / 1024:.1f} MB after reload {len(rss) - 1} "
      f"(growth after reload 1: {res['rss_growth_kb'] / 1024:.1f} MB, after reload {w}: "
      f"{(rss[-1] - rss[w]) / 1024:.1f} MB; goal: flat)")
print("  RSS per reload (MB): " + " ".join(f"{x / 1024:.0f}" for x in rss))
print(f"  (the loop time is wall clock: on a shared machine it includes waiting for a CPU; loadavg {load})")
print(f"wrote {out}")
PY
}
# END section apply

# ---------------------------------------------------------------------------------------------------------
# BEGIN section l7 (issue 13). HTTP/1.1 keep-alive through a reverse proxy on the node: direct to one backend,
# HAProxy 2.6 and nginx 1.22 (Debian's; round-robin over the same three backends, keep-alive to them, one worker
# each), and the agent's L7 proxy (`xmesh agent --proxy-workers N`: the client dials the service VIP and the
# kernel hands the connection to the proxy). Load from wrk in the client pod. Per target: requests/s, proxy CPU
# time per request (utime+stime of all its threads from /proc/PID/stat, before/after, over wrk's request count),
# p50/p99 latency at -c1 and -c32 (wrk --latency), and the proxy's VmRSS with 1,000 idle keep-alive connections
# (xm-http-load --hold). Before timing, 30 requests on one keep-alive connection must reach b1, b2 and b3 ten
# times each (direct: b1 only), which proves a per-request proxy is in the path. A target that fails (e.g. an
# agent without the L7 proxy) is an error row; the others still print. Result: BUILD/bench/l7.json.
#
# node   br0 10.200.9.1/24, no route out; HAProxy :8001, nginx :8002, the agent (each pinned to CPU 1, one
#        at a time)
# b1-b3  10.200.9.11-13: xm-http on :8080, answering "bN\n" (3 bytes) with x-backend (pinned to CPU 0)
# cli    10.200.9.101: wrk -t1 (pinned to CPU 0); inside the agent's child cgroup only for the xmesh target
# Pinning: on 2 CPUs the proxy gets one CPU to itself and the client and backends share the other, so a proxy
# cannot starve the client, and its CPU time is its own. Options (env): L7_SECS (seconds per wrk run, default
# 5), L7_WORKERS (workers/threads of every proxy, default 1), L7_IDLE (idle connections, default 1000),
# L7_TARGETS (default "direct haproxy nginx xmesh xmesh_policy"; also xmesh_tcp: the agent with --no-sockmap, so
# the pod <-> proxy hop takes TCP/IP; xmesh_policy: the same route with retries, a fault at 0%, outlier detection
# and a connection pool, reported as ratios to xmesh), L7_ROUNDS (the target list run N times in turn, rows
# NAME.2 ...; the xmesh_policy ratios are the median over rounds), L7_CPU_CLI and L7_CPU_PROXY (default 0 and 1; equal values
# put everything on one CPU, which removes the cross-CPU wakeups that dominate -c1 latency on a VM).

L7_NET=10.200.9
L7_VIP=10.96.0.10

# L7_EXEC=exec in a background subshell makes the subshell become timeout(1), so that its $! is the PID that
# stop_pid must signal (a signalled bash would leave its child running).
l7_in_cli() { # l7_in_cli CMD...: CMD in the client pod, pinned, bounded
	${L7_EXEC:-} timeout -k 5 120 nsenter --net="/run/netns/${P}cli" -- taskset -c "$L7_CPU_CLI" "$@"
}

l7_in_mesh() { # l7_in_mesh CMD...: CMD in the client pod inside the agent's child cgroup, pinned, bounded
	# shellcheck disable=SC2016 # $$ and $0 are for the inner shell
	${L7_EXEC:-} timeout -k 5 120 nsenter --net="/run/netns/${P}cli" -- \
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/mesh-l7" taskset -c "$L7_CPU_CLI" "$@"
}

l7_cpu_ticks() { # utime+stime of all threads of PID, in clock ticks
	[ -r "/proc/$1/stat" ] || return 1
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

l7_rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# l7_measure NAME ADDR PID: the runs against ADDR (PID: the proxy process, empty for direct), into
# $TMP/l7-NAME.res as key=value lines; returns nonzero with the reason on stderr when the target is broken.
l7_measure() {
	local name=$1 addr=$2 pid=$3 res="$TMP/l7-$1.res" run=l7_in_cli c t0="" t1 held load_pid i ids want
	local secs=${L7_SECS:-5} idle=${L7_IDLE:-1000}
	: >"$res"
	case $name in xmesh*) run=l7_in_mesh ;; esac
	$run "$BUILD/tools/xm-http-load" --addr "$addr" --conns 1 --requests 30 --timeout-ms 3000 \
		>"$TMP/l7-$name-probe.txt" 2>&1 || {
		echo "probe of $addr failed: $(tr '\n' ' ' <"$TMP/l7-$name-probe.txt")" >&2
		return 1
	}
	ids=$(awk '$1 == "id" { print $2 "=" $3 }' "$TMP/l7-$name-probe.txt" | sort | tr '\n' ' ')
	if [ "${name%%.*}" = direct ]; then
		want="b1=30 "
	else # round-robin gives 10 each; any per-request balancing gives each at least a few
		want=$(awk '$1 == "id" && $2 ~ /^b[123]$/ && $3 >= 5 { n++ } END { print n == 3 ? "b1=* b2=* b3=* " : "" }' \
			"$TMP/l7-$name-probe.txt")
		[ -n "$want" ] && want=$ids
	fi
	if [ "$ids" != "${want:-none}" ]; then
		echo "30 requests on one keep-alive connection to $addr reached ${ids:-nothing}, expected" \
			"$([ "${name%%.*}" = direct ] && echo b1 only || echo each of b1 b2 b3 at least 5 times)" >&2
		return 1
	fi
	$run wrk -t1 -c32 -d1s "http://$addr/" >/dev/null 2>&1 || true # warm-up
	for c in 1 32; do
		if [ -n "$pid" ]; then t0=$(l7_cpu_ticks "$pid"); fi
		$run wrk -t1 -c"$c" -d"${secs}s" --latency --timeout 5s "http://$addr/" >"$TMP/l7-$name-c$c.txt" 2>&1 || {
			echo "wrk -c$c failed: $(tail -n 3 "$TMP/l7-$name-c$c.txt")" >&2
			return 1
		}
		if [ -n "$pid" ]; then
			t1=$(l7_cpu_ticks "$pid") || {
				echo "the proxy (pid $pid) died during wrk -c$c" >&2
				return 1
			}
			echo "cpu_ticks_c$c=$((t1 - t0))" >>"$res"
		fi
		echo "wrk_c$c=$TMP/l7-$name-c$c.txt" >>"$res"
	done
	[ -n "$pid" ] || return 0
	echo "rss_base_kb=$(l7_rss_kb "$pid")" >>"$res"
	(L7_EXEC="exec" $run "$BUILD/tools/xm-http-load" --addr "$addr" --conns "$idle" --requests 1 --hold 60) \
		>"$TMP/l7-$name-idle.txt" 2>&1 &
	load_pid=$!
	PIDS+=("$load_pid")
	for ((i = 0; i < 300; i++)); do
		grep -q '^holding' "$TMP/l7-$name-idle.txt" 2>/dev/null && break
		kill -0 "$load_pid" 2>/dev/null || break
		sleep 0.1
	done
	held=$(awk '$1 == "holding" { print $2 }' "$TMP/l7-$name-idle.txt")
	sleep 0.5
	echo "rss_idle_kb=$(l7_rss_kb "$pid")" >>"$res"
	echo "idle_held=${held:-0}" >>"$res"
	stop_pid "$load_pid"
	if [ "${held:-0}" != "$idle" ]; then
		echo "only ${held:-0} of $idle idle connections held: $(tail -n 2 "$TMP/l7-$name-idle.txt" | tr '\n' ' ')" >&2
		return 1
	fi
}

l7_haproxy() { # writes HAProxy's config and starts it (foreground, one process); L7_PROXY_PID: its wrapper
	local cfg="$TMP/haproxy.cfg" i
	{
		printf 'global\n  nbthread %s\n  maxconn 5000\n\n' "${L7_WORKERS:-1}"
		printf 'defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n'
		printf '  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n\n'
		printf 'frontend fe\n  bind %s.1:8001\n  default_backend be\n\n' "$L7_NET"
		printf 'backend be\n  balance roundrobin\n'
		for i in 1 2 3; do printf '  server b%s %s.1%s:8080\n' "$i" "$L7_NET" "$i"; done
	} >"$cfg"
	timeout -k 5 900 nsenter --net="/run/netns/${P}node" -- taskset -c "$L7_CPU_PROXY" haproxy -db -f "$cfg" \
		>"$TMP/haproxy.log" 2>&1 &
	L7_PROXY_PID=$!
	PIDS+=("$L7_PROXY_PID")
}

l7_nginx() { # writes nginx's config and starts it (no daemon, no master: one process); L7_PROXY_PID
	local d="$TMP/nginx" i
	mkdir -p "$d"
	{
		printf 'daemon off;\nmaster_process off;\nworker_processes %s;\nworker_rlimit_nofile 16384;\n' "${L7_WORKERS:-1}"
		printf 'pid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$d" "$d"
		printf 'events { worker_connections 5000; }\n'
		printf 'http {\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 120s;\n'
		printf '  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n' "$d" "$d"
		printf '  fastcgi_temp_path %s/fcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n' "$d" "$d" "$d"
		printf '  upstream be {\n'
		for i in 1 2 3; do printf '    server %s.1%s:8080;\n' "$L7_NET" "$i"; done
		printf '    keepalive 64;\n    keepalive_requests 100000000;\n  }\n'
		printf '  server {\n    listen %s.1:8002 backlog=4096;\n' "$L7_NET"
		printf '    location / {\n      proxy_pass http://be;\n      proxy_http_version 1.1;\n'
		printf '      proxy_set_header Connection "";\n    }\n  }\n}\n'
	} >"$d/nginx.conf"
	# Several workers need the master; then the CPU time of the workers is not in the master's /proc/PID/stat.
	[ "${L7_WORKERS:-1}" = 1 ] || die "l7: nginx is measured with one worker only (L7_WORKERS=1)"
	timeout -k 5 900 nsenter --net="/run/netns/${P}node" -- taskset -c "$L7_CPU_PROXY" nginx -e "$d/error.log" \
		-p "$d" -c "$d/nginx.conf" >"$TMP/nginx.log" 2>&1 &
	L7_PROXY_PID=$!
	PIDS+=("$L7_PROXY_PID")
}

l7_agent() { # the agent with its L7 proxy, on the child cgroup $CG/mesh-l7 (the teardown's cleanup expects mesh-NAME); L7_PROXY_PID
	# ARGS: extra agent options (--no-sockmap: the pod <-> proxy hop over TCP/IP); L7_POLICY=1: l7_config's
	# resilience policy on the route
	l7_config >"$TMP/l7-config.yaml"
	timeout -k 5 900 nsenter --net="/run/netns/${P}node" -- taskset -c "$L7_CPU_PROXY" "$BUILD/xmesh" agent \
		--config "$TMP/l7-config.yaml" --cgroup "$CG/mesh-l7" --bpffs "$PIN/l7" --node node1 \
		--metrics 127.0.0.1:15290 --admin "$TMP/l7-admin.sock" --state-dir "$TMP/agent-state" --proxy-workers "${L7_WORKERS:-1}" "$@" \
		>"$TMP/l7-agent.log" 2>&1 &
	L7_PROXY_PID=$!
	PIDS+=("$L7_PROXY_PID")
}

l7_config() { # the agent's config: Service reviews (port "http", appProtocol http) on b1-b3, the node, the pods
	local i name
	printf -- '---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node1\nstatus:\n  addresses:\n'
	printf '  - type: InternalIP\n    address: %s.1\n' "$L7_NET"
	printf -- '---\napiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n'
	printf '  type: ClusterIP\n  clusterIP: %s\n  clusterIPs:\n  - %s\n  ipFamilies:\n  - IPv4\n' "$L7_VIP" "$L7_VIP"
	printf '  ports:\n  - name: http\n    appProtocol: http\n    port: 80\n    protocol: TCP\n    targetPort: 8080\n'
	printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: reviews-ipv4\n'
	printf '  namespace: default\n  labels:\n    kubernetes.io/service-name: reviews\naddressType: IPv4\n'
	printf 'ports:\n- name: http\n  port: 8080\n  protocol: TCP\nendpoints:\n'
	for i in 1 2 3; do
		printf -- '- addresses:\n  - "%s.1%s"\n  conditions:\n    ready: true\n  nodeName: node1\n' "$L7_NET" "$i"
		printf '  targetRef:\n    kind: Pod\n    name: b%s\n    namespace: default\n' "$i"
	done
	# the same algorithm as HAProxy's and nginx's
	printf -- '---\napiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: reviews\n'
	printf '  namespace: default\nspec:\n  host: reviews.default.svc.cluster.local\n  trafficPolicy:\n'
	printf '    loadBalancer:\n      simple: ROUND_ROBIN\n'
	# xmesh_policy: everything configured, nothing firing. L7_POLICY_PARTS (default "retries fault outlier pool")
	# picks the parts, to attribute a cost: the VirtualService route exists whenever retries or fault is chosen.
	local parts=" ${L7_POLICY_PARTS:-retries fault outlier pool} "
	[ "${L7_POLICY:-0}" = 1 ] || parts=""
	if [[ $parts == *" outlier "* ]]; then
		printf '    outlierDetection:\n      consecutive5xxErrors: 5\n      consecutiveGatewayErrors: 5\n'
		printf '      interval: 10s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 50\n'
	fi
	if [[ $parts == *" pool "* ]]; then
		printf '    connectionPool:\n      tcp:\n        maxConnections: 100000\n        connectTimeout: 5s\n'
		printf '      http:\n        http1MaxPendingRequests: 100000\n        http2MaxRequests: 100000\n'
		printf '        maxRetries: 100000\n'
	fi
	if [[ $parts == *" retries "* || $parts == *" fault "* ]]; then
		printf -- '---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n'
		printf '  namespace: default\nspec:\n  hosts:\n  - reviews.default.svc.cluster.local\n  http:\n'
		printf '  - name: policy\n    route:\n    - destination:\n        host: reviews.default.svc.cluster.local\n'
	fi
	if [[ $parts == *" retries "* ]]; then
		printf '    retries:\n      attempts: 3\n      perTryTimeout: 2s\n      retryOn: 5xx,connect-failure\n'
	fi
	if [[ $parts == *" fault "* ]]; then
		# percentage 0: the fault is compiled into the route and sampled on every request, never firing
		printf '    fault:\n      delay:\n        fixedDelay: 2s\n        percentage:\n          value: 0\n'
		printf '      abort:\n        httpStatus: 503\n        percentage:\n          value: 0\n'
	fi
	for i in b1:11 b2:12 b3:13 cli:101; do
		name=${i%%:*}
		printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n' "$name"
		printf '  labels:\n    app: %s\nspec:\n  nodeName: node1\n  serviceAccountName: default\n' \
			"$([ "$name" = cli ] && echo productpage || echo reviews)"
		printf 'status:\n  phase: Running\n  podIP: %s.%s\n' "$L7_NET" "${i#*:}"
	done
}

# l7_pid_under PID: the process at the end of a timeout -> nsenter -> taskset chain (nsenter forks once, taskset
# execs), found by walking down single children.
l7_pid_under() {
	local p=$1 c i
	for ((i = 0; i < 50; i++)); do
		c=$(pgrep -P "$p" | head -n 1) || true
		if [ -n "$c" ]; then
			p=$c
			i=0
			c=$(pgrep -P "$p" | head -n 1) || true
			[ -n "$c" ] || break
			continue
		fi
		sleep 0.1
	done
	echo "$p"
}

# l7_wait_listen ADDR PORT: until something listens there in the node namespace (10 s)
l7_wait_listen() {
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "${P}node" ss -Hltn "( sport = :$2 )" 2>/dev/null | grep "$1:$2" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

section_l7() {
	local n name addr pid err rows="$TMP/l7-rows" keep
	for n in wrk haproxy nginx python3; do
		command -v "$n" >/dev/null || die "l7: $n not installed (scripts/install-deps.sh)"
	done
	{ [ -x "$BUILD/tools/xm-http" ] && [ -x "$BUILD/tools/xm-http-load" ]; } || die "l7: test tools not built"
	L7_CPU_CLI=${L7_CPU_CLI:-0}
	L7_CPU_PROXY=${L7_CPU_PROXY:-$(($(nproc) > 1 ? 1 : 0))}

	netns_add node
	ip -n "${P}node" link add br0 type bridge
	ip -n "${P}node" addr add "$L7_NET.1/24" dev br0
	ip -n "${P}node" link set br0 up
	ip netns exec "${P}node" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
	for n in b1:11 b2:12 b3:13 cli:101; do
		name=${n%%:*}
		netns_add "$name"
		ip -n "${P}node" link add "v-$name" type veth peer name eth0 netns "$P$name"
		ip -n "${P}node" link set "v-$name" master br0 up
		ip -n "$P$name" addr add "$L7_NET.${n#*:}/24" dev eth0
		ip -n "$P$name" link set eth0 up
		ip -n "$P$name" route add 10.96.0.0/16 via "$L7_NET.1"
		ip netns exec "$P$name" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
	done
	for n in 1 2 3; do
		timeout -k 5 900 nsenter --net="/run/netns/${P}b$n" -- taskset -c "$L7_CPU_CLI" \
			"$BUILD/tools/xm-http" --id "b$n" --port 8080 >"$TMP/l7-b$n.log" 2>&1 &
		PIDS+=("$!")
		wait_line "$TMP/l7-b$n.log" ' ready$' 10 "$!" || die "l7: xm-http b$n did not start: $(cat "$TMP/l7-b$n.log")"
	done
	mkdir -p "$CG/mesh-l7"
	log "l7: wrk and backends on CPU $L7_CPU_CLI, the proxy on CPU $L7_CPU_PROXY; ${L7_SECS:-5} s per run," \
		"${L7_WORKERS:-1} worker(s) per proxy"

	: >"$rows"
	for ((round = 1; round <= ${L7_ROUNDS:-1}; round++)); do
		for target in ${L7_TARGETS:-direct haproxy nginx xmesh xmesh_policy}; do
			name=$target
			((round == 1)) || name="$target.$round" # a row per round: xmesh, xmesh.2, ...
			err=""
			pid=""
			L7_PROXY_PID=""
			case $target in
			direct) addr="$L7_NET.11:8080" ;;
			haproxy)
				addr="$L7_NET.1:8001"
				l7_haproxy
				l7_wait_listen "$L7_NET.1" 8001 || err="HAProxy did not listen: $(tail -n 3 "$TMP/haproxy.log")"
				;;
			nginx)
				addr="$L7_NET.1:8002"
				l7_nginx
				l7_wait_listen "$L7_NET.1" 8002 ||
					err="nginx did not listen: $(tail -n 3 "$TMP/nginx.log" "$TMP/nginx/error.log" 2>/dev/null)"
				;;
			xmesh | xmesh_tcp | xmesh_policy) # xmesh_tcp: the pod <-> proxy hop over TCP/IP instead of the sockmap;
				# xmesh_policy: retries, a fault that never fires, outlier detection and a connection pool on the route
				addr="$L7_VIP:80"
				case $target in
				xmesh) l7_agent ;;
				xmesh_tcp) l7_agent --no-sockmap ;;
				xmesh_policy) L7_POLICY=1 l7_agent ;;
				esac
				wait_line "$TMP/l7-agent.log" '\<ready\>' 60 "$L7_PROXY_PID" ||
					err="agent not ready: $(grep -m1 -iE 'error|unrecognized|unknown|invalid|fail' "$TMP/l7-agent.log" ||
						tail -n 3 "$TMP/l7-agent.log")"
				;;
			*) die "l7: unknown target $target (L7_TARGETS)" ;;
			esac
			[ -z "$L7_PROXY_PID" ] || pid=$(l7_pid_under "$L7_PROXY_PID")
			if [ -z "$err" ]; then
				log "l7: $name at $addr${pid:+ (proxy pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-60))}"
				l7_measure "$name" "$addr" "$pid" 2>"$TMP/l7-$name.err" || err=$(cat "$TMP/l7-$name.err")
			fi
			err=${err//[$'\n\t']/ }
			if [ -n "$err" ]; then
				log "l7: $name: ERROR: $err"
				printf '%s\terror\t%s\n' "$name" "$err" >>"$rows"
			else
				printf '%s\tok\t%s\t%s\n' "$name" "$TMP/l7-$name.res" "$addr" >>"$rows"
			fi
			if [ -n "$L7_PROXY_PID" ]; then # one proxy at a time on its CPU
				stop_pid "$L7_PROXY_PID"
				keep=()
				for pid in "${PIDS[@]}"; do [ "$pid" = "$L7_PROXY_PID" ] || keep+=("$pid"); done
				PIDS=("${keep[@]}")
			fi
		done
	done
	python3 - "$BUILD/bench/l7.json" "$rows" "$(getconf CLK_TCK)" "${L7_SECS:-5}" "${L7_WORKERS:-1}" \
		"$(haproxy -v 2>/dev/null | head -n 1)" "$(nginx -v 2>&1)" "$(wrk -v 2>&1 | head -n 1)" \
		"$(uname -r)" "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
		"$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(cat /proc/loadavg)" \
		"$L7_CPU_CLI" "$L7_CPU_PROXY" "${L7_IDLE:-1000}" <bench/l7_report.py || die "l7: report"
}
# END section l7

# ---------------------------------------------------------------------------------------------------------
# BEGIN section l7hop (owner: L7 capture). The pod -> L7 proxy hop: a pod dials an HTTP service VIP, the
# socket LB sends it to a listener on the node's address; request/response latency and new-connection cost
# with TCP, with both ends on the sockmap, and with the client writing before the proxy added its socket
# (bench/l7_hop.c). Result: BUILD/bench/l7_hop.json.
#
# node   netns xml<PID>-node, br0 10.200.8.1/24 (the proxy's address, as a node InternalIP); pod xml<PID>-a
# 10.200.8.11 on a veth. Options (env): L7HOP_RR_ITERS (default 20000), L7HOP_CONN_ITERS (default 2000).

section_l7hop() {
	local sp="xml$$-" n
	for n in node a; do
		ip netns add "$sp$n"
		NETNS+=("$sp$n")
		ip -n "$sp$n" link set lo up
	done
	ip -n "${sp}node" link add br0 type bridge
	ip -n "${sp}node" addr add 10.200.8.1/24 dev br0
	ip -n "${sp}node" link set br0 up
	ip -n "${sp}node" link add v-a type veth peer name eth0 netns "${sp}a"
	ip -n "${sp}node" link set v-a master br0 up
	ip -n "${sp}a" link set eth0 up
	ip -n "${sp}a" addr add 10.200.8.11/24 dev eth0
	# The VIP routes to the node, as a pod's default route does (the socket LB rewrites it before routing).
	ip -n "${sp}a" route add default via 10.200.8.1
	mkdir -p "$CG/l7hop" "$CG/l7hop-proxy"
	# One CPU for both ends, as in section sockmap: cross-CPU wakeups on this VM cost more than the stack.
	timeout -k 5 600 taskset -c 0 "$BUILD/bench/l7_hop" --cgroup "$CG/l7hop" --proxy-cgroup "$CG/l7hop-proxy" \
		--pod-ns "/run/netns/${sp}a" --node-ns "/run/netns/${sp}node" \
		--proxy-ip 10.200.8.1 --pod-ip 10.200.8.11 \
		--rr-iters "${L7HOP_RR_ITERS:-20000}" --conn-iters "${L7HOP_CONN_ITERS:-2000}" \
		--out "$BUILD/bench/l7_hop.json" || die "l7hop bench failed"
	log "l7hop: $(tr -d '\n' <"$BUILD/bench/l7_hop.json" | sed 's/.*"sockmap_vs_tcp"/"sockmap_vs_tcp"/')"
}

# END section l7hop

# ---------------------------------------------------------------------------------------------------------
# BEGIN section mtls (owner: mTLS bench, issue 15). Cross-node pod-to-pod TCP in plaintext, through the xmesh
# HBONE tunnel (both agents --hbone, the client pod's connection captured into the tunnel on node A), and through
# HAProxy as a TLS 1.3 TCP tunnel (plain in on node A, TLS between the nodes, plain out on node B) with the
# ciphersuite the xmesh tunnel negotiates (checked with openssl s_client against agent B). Per target: stream
# throughput (64 KiB writes, MTLS_SECS), 64-byte request/response p50/p99 on one connection (MTLS_RR), and
# MTLS_CONNS new connections (4 at a time) each with one 64-byte exchange, with the tunnels' CPU time over each
# run (/proc/PID/stat of both ends) and, for xmesh, agent A's client handshakes over the new connections (the
# share that rode an existing TLS connection). Then handshake CPU: bench/mtls handshake (full, then resumed
# with the previous connection's ticket) from node A against agent B's 15008 and HAProxy B's 9443: each server's
# CPU time per handshake (/proc), the client's (getrusage); and bench/hbone_handshake (the agent's tunnel code,
# both sides, per-thread CPU, full and resumed connections). Result: BUILD/bench/mtls.json.
#
#        a0 │ (l2: br0)  b0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2 ── HAProxy B :9443 (TLS in, plain out); agent B (HBONE :15008)
#   br0 10.200.5.1         br0 10.200.6.1 ── srv 10.200.6.11: bench/mtls serve :8080
#   HAProxy A 10.200.5.1:9001 (plain in, TLS out), agent A (capture, HBONE client)
#    └─ cli 10.200.5.11: bench/mtls clients; inside agent A's cgroup ($CG/mesh-a) for the xmesh target only
# Pinning (2 CPUs): clients and the server pod on CPU MTLS_CPU_APP (0), both ends of each tunnel (the agents,
# the HAProxies) on MTLS_CPU_TUNNEL (1); for one more request/response run (rr1) the tunnel's processes are moved
# to CPU MTLS_CPU_APP (taskset -a -p) and back. Options (env): MTLS_SECS (3), MTLS_RR (10000), MTLS_CONNS (2000),
# MTLS_TARGETS ("plain haproxy xmesh"), MTLS_ROUNDS (3), MTLS_RR_SLICES (10) of MTLS_RR_SLICE (1000) exchanges
# (request/response with the three targets interleaved, after the rounds; 0: none), MTLS_HS (500 handshakes per server and kind), MTLS_PERF
# (set: perf record -g of both tunnel ends during each stream run, BUILD/bench/mtls-perf-NAME.{data,txt};
# "rr" or "rr1": during that request/response run instead),
# MTLS_STRACE (set: strace -c -f of both tunnel ends during each stream run, BUILD/bench/mtls-strace-NAME.txt;
# "rr" or "rr1": during that request/response run instead, for system calls per exchange; it slows the tunnel: for
# system calls, not for throughput or latency).

MTLS_A=10.200.5
MTLS_B=10.200.6
MTLS_SRV=10.200.6.11:8080
declare -A MTLS_PID=() # agent-a, agent-b, hap-a, hap-b: the processes whose CPU time is measured

mtls_in_cli() { # mtls_in_cli CG|- CMD...: CMD in the client pod (in cgroup CG unless -), pinned, bounded
	local cg=$1
	shift
	if [ "$cg" = - ]; then
		timeout -k 5 120 nsenter --net="/run/netns/${P}cli" -- taskset -c "$MTLS_CPU_APP" "$@"
	else
		# shellcheck disable=SC2016 # $$ and $0 are for the inner shell
		timeout -k 5 120 nsenter --net="/run/netns/${P}cli" -- \
			sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" taskset -c "$MTLS_CPU_APP" "$@"
	fi
}

mtls_config() { # pods cli (node A) and srv (node B), the Nodes, a mesh-wide PERMISSIVE PeerAuthentication
	local n name node ip sa
	for n in nodea:10.199.0.1 nodeb:10.199.0.2; do
		printf -- '---\napiVersion: v1\nkind: Node\nmetadata:\n  name: %s\nstatus:\n  addresses:\n' "${n%%:*}"
		printf '  - type: InternalIP\n    address: %s\n' "${n#*:}"
	done
	for n in cli:nodea:$MTLS_A.11:client srv:nodeb:$MTLS_B.11:server; do
		IFS=: read -r name node ip sa <<<"$n"
		printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n' "$name"
		printf '  labels:\n    app: %s\nspec:\n  nodeName: %s\n  serviceAccountName: %s\n' "$name" "$node" "$sa"
		printf 'status:\n  phase: Running\n  podIP: %s\n' "$ip"
	done
	# PERMISSIVE: the plaintext and HAProxy targets reach srv as they are; the tunnel is used for mesh pods
	printf -- '---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n'
	printf '  namespace: istio-system\nspec:\n  mtls:\n    mode: PERMISSIVE\n'
}

mtls_agent() { # mtls_agent a|b NODE_NS NODE_NAME: an agent with --hbone on up0; MTLS_PID[agent-a|b] = its PID
	local n=$1 pid
	mkdir -p "$CG/mesh-$n"
	timeout -k 5 900 nsenter --net="/run/netns/$P$2" -- taskset -c "$MTLS_CPU_TUNNEL" "$BUILD/xmesh" agent \
		--config "$TMP/mtls-config.yaml" --cgroup "$CG/mesh-$n" --bpffs "$PIN/$n" --node "$3" --iface up0 --hbone \
		--metrics 127.0.0.1:15090 --admin "$TMP/mtls-admin-$n.sock" --state-dir "$TMP/mtls-state" \
		>"$TMP/mtls-agent-$n.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_line "$TMP/mtls-agent-$n.log" '\<ready\>' 60 "$pid" ||
		die "mtls: agent $n not ready: $(tail -n 5 "$TMP/mtls-agent-$n.log")"
	MTLS_PID[agent-$n]=$(l7_pid_under "$pid")
}

mtls_metric() { # mtls_metric NODE_NS SERIES: a value of that agent's /metrics (0 when absent)
	ip netns exec "$P$1" curl -sS --max-time 10 http://127.0.0.1:15090/metrics 2>/dev/null |
		awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }'
}

mtls_leaf() { # mtls_leaf NAME SPIFFE_SA: an ECDSA P-256 leaf from the agents' root, as the agent mints them
	local d=$TMP/mtls-pki ca=$TMP/mtls-state/ca
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth,clientAuth" \
		"subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/$2" >"$d/$1.ext"
	if ! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$1.key" -subj "/O=bench" \
		-out "$d/$1.csr" >>"$d/openssl.log" 2>&1 ||
		! openssl x509 -req -in "$d/$1.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial \
			-days 1 -extfile "$d/$1.ext" -out "$d/$1.crt" >>"$d/openssl.log" 2>&1; then
		die "mtls: openssl: $(tail -n 3 "$d/openssl.log")"
	fi
	cat "$d/$1.crt" "$d/$1.key" >"$d/$1.pem"
}

mtls_haproxy() { # both HAProxies (one thread each, on the tunnel CPU); MTLS_PID[hap-a|b] = their PIDs
	local d=$TMP/mtls-pki s=$1 side pid
	cat >"$d/hap-a.cfg" <<EOC
global
	nbthread 1
	maxconn 4000
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
listen out
	bind $MTLS_A.1:9001
	server b 10.199.0.2:9443 ssl verify required ca-file $TMP/mtls-state/ca/root-cert.pem crt $d/hap-client.pem ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3 ciphersuites $s
EOC
	cat >"$d/hap-b.cfg" <<EOC
global
	nbthread 1
	maxconn 4000
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
listen in
	bind 10.199.0.2:9443 ssl crt $d/hap-server.pem ca-file $TMP/mtls-state/ca/root-cert.pem verify required ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3 ciphersuites $s curves X25519
	server srv $MTLS_SRV
EOC
	for side in a b; do
		timeout -k 5 900 nsenter --net="/run/netns/${P}node$side" -- taskset -c "$MTLS_CPU_TUNNEL" \
			haproxy -db -f "$d/hap-$side.cfg" >"$TMP/mtls-haproxy-$side.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		MTLS_PID[hap-$side]=$(l7_pid_under "$pid")
	done
}

mtls_pin() { # mtls_pin CPU PID...: every thread of each PID onto CPU
	local cpu=$1 p
	shift
	for p in "$@"; do taskset -a -p -c "$cpu" "$p" >/dev/null || true; done
}

mtls_wait_listen() { # mtls_wait_listen NS PORT: until something listens on PORT in NS (10 s)
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$P$1" ss -Hltn "( sport = :$2 )" 2>/dev/null | grep ":$2" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

mtls_ticks() { # CPU ticks (utime+stime, all threads) of the PIDs given, summed
	local p t=0
	for p in "$@"; do t=$((t + $(l7_cpu_ticks "$p"))); done
	echo "$t"
}

mtls_observed_run() { # which run MTLS_PERF / MTLS_STRACE=VALUE observes: rr or rr1 when named, else stream
	case $1 in
	rr | rr1) echo "$1" ;;
	*) echo stream ;;
	esac
}

mtls_ctxsw() { # context switches (voluntary + involuntary) of all threads of the PIDs given, summed
	local p t=0
	for p in "$@"; do
		t=$((t + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }')))
	done
	echo "$t"
}

mtls_segs() { # TCP segments sent so far in the section's network namespaces (both nodes, the pods), summed
	local ns t=0
	for ns in nodea nodeb cli srv; do
		t=$((t + $(ip netns exec "$P$ns" awk '/^Tcp: [0-9]/ { print $12 }' /proc/net/snmp 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# mtls_measure NAME ADDR CG TUNNEL_PIDS...: the three runs of one target into $TMP/mtls-NAME.res (key=value);
# returns nonzero with the reason on stderr when the target is broken.
mtls_measure() {
	local name=$1 addr=$2 cg=$3 res="$TMP/mtls-$1.res" t0 t1 cs0 cs1 sg0 sg1 hs0 hs1 st0 st1 rd0 rd1 k perf_pid strace_pid
	shift 3
	: >"$res"
	# Probe: 20 exchanges; for xmesh, agent A must have opened a client TLS connection, i.e. the capture works.
	hs0=$(mtls_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}')
	st0=$(mtls_b_streams)
	mtls_in_cli "$cg" "$BUILD/bench/mtls" rr --addr "$addr" --count 20 --warmup 0 --timeout-ms 5000 \
		>"$TMP/mtls-$name-probe.txt" 2>&1 || {
		echo "probe of $addr failed: $(tr '\n' ' ' <"$TMP/mtls-$name-probe.txt")" >&2
		return 1
	}
	if [ "${name%%.*}" = xmesh ]; then
		st1=$(mtls_b_streams)
		[ "$st1" -gt "$st0" ] || {
			echo "not tunnelled: the probe reached $addr, but agent B opened no HBONE stream for it (agent A's" \
				"client handshakes $hs0 -> $(mtls_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}');" \
				"no client-side capture in this build?)" >&2
			return 1
		}
	fi
	for k in stream rr rr1 conns; do
		# rr1: the same exchanges with the tunnel's processes moved to the application's CPU for the run (no
		# cross-CPU wakeup: what the tunnel's own processing adds, rather than the VM's IPI latency)
		[ "$k" != rr1 ] || mtls_pin "$MTLS_CPU_APP" "$@"
		perf_pid=""
		# where the tunnel's CPU goes: during the stream run, or the run MTLS_PERF names (rr, rr1)
		if [ -n "${MTLS_PERF:-}" ] && [ "$k" = "$(mtls_observed_run "$MTLS_PERF")" ] && [ $# -gt 0 ]; then
			perf record -q -g -o "$BUILD/bench/mtls-perf-$name.data" -p "$(
				IFS=,
				echo "$*"
			)" >/dev/null 2>&1 &
			perf_pid=$!
			PIDS+=("$perf_pid")
			sleep 0.5
		fi
		strace_pid=""
		# system calls of the tunnel: during the stream run, or the run MTLS_STRACE names (rr, rr1)
		if [ -n "${MTLS_STRACE:-}" ] && [ "$k" = "$(mtls_observed_run "$MTLS_STRACE")" ] && [ $# -gt 0 ]; then
			# shellcheck disable=SC2046 # one -p per PID
			timeout -k 5 60 strace -c -f -qq -o "$BUILD/bench/mtls-strace-$name.txt" $(printf -- '-p %s ' "$@") &
			strace_pid=$!
			PIDS+=("$strace_pid")
			sleep 0.5
		fi
		t0=$(mtls_ticks "$@")
		cs0=$(mtls_ctxsw "$@")
		sg0=$(mtls_segs)
		rd0="$(mtls_redirected a) $(mtls_redirected b)"
		hs0=$(mtls_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}')
		st0=$(mtls_b_streams)
		case $k in
		stream) mtls_in_cli "$cg" "$BUILD/bench/mtls" stream --addr "$addr" --secs "${MTLS_SECS:-3}" ;;
		rr | rr1) mtls_in_cli "$cg" "$BUILD/bench/mtls" rr --addr "$addr" --count "${MTLS_RR:-10000}" ;;
		conns) mtls_in_cli "$cg" "$BUILD/bench/mtls" conns --addr "$addr" --count "${MTLS_CONNS:-2000}" --parallel 4 ;;
		esac >"$TMP/mtls-$name-$k.json" 2>"$TMP/mtls-$name-$k.err" || {
			[ "$k" != rr1 ] || mtls_pin "$MTLS_CPU_TUNNEL" "$@"
			echo "$k: $(tr '\n' ' ' <"$TMP/mtls-$name-$k.err")" >&2
			return 1
		}
		[ "$k" != rr1 ] || mtls_pin "$MTLS_CPU_TUNNEL" "$@"
		t1=$(mtls_ticks "$@")
		cs1=$(mtls_ctxsw "$@")
		sg1=$(mtls_segs)
		if [ -n "$strace_pid" ]; then
			kill -INT "$strace_pid" 2>/dev/null
			wait "$strace_pid" 2>/dev/null || true
		fi
		if [ -n "$perf_pid" ]; then
			kill -INT "$perf_pid" 2>/dev/null
			wait "$perf_pid" 2>/dev/null || true
			perf report -i "$BUILD/bench/mtls-perf-$name.data" --no-children --sort dso,sym --stdio 2>/dev/null |
				grep -v '^$' | grep -v '^#' | grep -E '^ +[0-9.]+%' | head -n 40 >"$BUILD/bench/mtls-perf-$name.txt" || true
		fi
		hs1=$(mtls_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}')
		st1=$(mtls_b_streams)
		rd1="$(mtls_redirected a) $(mtls_redirected b)"
		{
			echo "$k=$(cat "$TMP/mtls-$name-$k.json")"
			echo "${k}_tunnel_ticks=$((t1 - t0))"
			echo "${k}_tunnel_ctxsw=$((cs1 - cs0))"
			echo "${k}_tcp_segments=$((sg1 - sg0))"
			echo "${k}_client_handshakes=$((hs1 - hs0))"
			echo "${k}_server_streams=$((st1 - st0))"
			# same-node hops through the sockmap on node A and node B (sk_msg redirected bytes)
			echo "${k}_sockmap_bytes_a=$((${rd1% *} - ${rd0% *}))"
			echo "${k}_sockmap_bytes_b=$((${rd1#* } - ${rd0#* }))"
		} >>"$res"
	done
}

# mtls_hs NAME ADDR full|resumed SERVER_PID: MTLS_HS handshakes from node A (bench/mtls handshake: ALPN h2, the
# client certificate; resumed: each offers the previous connection's ticket), with the server's CPU ticks
# around them; one JSON line appended to $TMP/mtls-hs.res
mtls_hs() {
	local name=$1 addr=$2 mode=$3 pid=$4 d=$TMP/mtls-pki t0 t1 r0 r1 j0 j1 out resume=()
	[ "$mode" = full ] || resume=(--resume)
	t0=$(l7_cpu_ticks "$pid")
	r0=$(mtls_metric nodeb 'xmesh_tls_resumptions_total{side="server"}')
	j0=$(mtls_metric nodeb 'xmesh_tls_tickets_rejected_total{side="server"}')
	out=$(timeout -k 5 120 nsenter --net="/run/netns/${P}nodea" -- taskset -c "$MTLS_CPU_APP" "$BUILD/bench/mtls" \
		handshake --addr "$addr" --count "${MTLS_HS:-500}" --cert "$d/hs-client.crt" --key "$d/hs-client.key" \
		--ca "$TMP/mtls-state/ca/root-cert.pem" "${resume[@]}" 2>&1) ||
		out=$(python3 -c 'import json, sys; print(json.dumps({"error": " ".join(sys.argv[1].split())[:300]}))' "$out")
	t1=$(l7_cpu_ticks "$pid")
	r1=$(mtls_metric nodeb 'xmesh_tls_resumptions_total{side="server"}')
	j1=$(mtls_metric nodeb 'xmesh_tls_tickets_rejected_total{side="server"}')
	printf '{"server":"%s","kind":"%s","server_ticks":%s,"agent_b_resumptions":%s,"agent_b_tickets_rejected":%s,"run":%s}\n' \
		"$name" "$mode" "$((t1 - t0))" "$((r1 - r0))" "$((j1 - j0))" "$out" >>"$TMP/mtls-hs.res"
}

mtls_redirected() { # mtls_redirected a|b: bytes that agent's sockmap redirected so far (sk_msg, "sockmap status")
	timeout -k 2 10 python3 - "$TMP/mtls-admin-$1.sock" <<'PY' 2>/dev/null || echo 0
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"sockmap status\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
v = [l.split()[1] for l in out.decode().splitlines() if l.startswith("redirected_bytes ")]
print(v[0] if v else 0)
PY
}

mtls_b_streams() { # HBONE streams agent B opened to its pods so far (xmesh status --json)
	timeout -k 5 20 "$BUILD/xmesh" status --json --admin "$TMP/mtls-admin-b.sock" 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get("hbone", {}).get("streams", 0))' 2>/dev/null ||
		echo 0
}

mtls_rr_slices() { # one JSON line per (slice, target): {"slice":I,"target":T,"run":RR_JSON}
	local i t order out
	for ((i = 1; i <= ${MTLS_RR_SLICES:-10}; i++)); do
		order="plain haproxy xmesh"
		((i % 2)) || order="xmesh haproxy plain"
		for t in $order; do
			case $t in
			plain) out=$(mtls_in_cli - "$BUILD/bench/mtls" rr --addr "$MTLS_SRV" --count "${MTLS_RR_SLICE:-1000}" \
				--warmup 100 2>&1) ;;
			haproxy) out=$(mtls_in_cli - "$BUILD/bench/mtls" rr --addr "$MTLS_A.1:9001" \
				--count "${MTLS_RR_SLICE:-1000}" --warmup 100 2>&1) ;;
			xmesh) out=$(mtls_in_cli "$CG/mesh-a" "$BUILD/bench/mtls" rr --addr "$MTLS_SRV" \
				--count "${MTLS_RR_SLICE:-1000}" --warmup 100 2>&1) ;;
			esac || out=$(python3 -c 'import json, sys; print(json.dumps({"error": " ".join(sys.argv[1].split())[:300]}))' "$out")
			printf '{"slice":%d,"target":"%s","run":%s}\n' "$i" "$t" "$out"
		done
	done
}

section_mtls() {
	local n name target round addr cg pids err rows="$TMP/mtls-rows" suite group
	for n in haproxy openssl curl python3; do
		command -v "$n" >/dev/null || die "mtls: $n not installed (scripts/install-deps.sh)"
	done
	[ -x "$BUILD/bench/mtls" ] || die "mtls: build/bench/mtls not built"
	MTLS_CPU_APP=${MTLS_CPU_APP:-0}
	MTLS_CPU_TUNNEL=${MTLS_CPU_TUNNEL:-$(($(nproc) > 1 ? 1 : 0))}

	# The two-node topology of tests/e2e (xdp_lib.sh xmx_two_nodes), with a pod on each node.
	netns_add l2
	ip -n "${P}l2" link add br0 type bridge
	ip -n "${P}l2" link set br0 up
	for n in a:5 b:6; do
		name=node${n%%:*}
		netns_add "$name"
		ip netns exec "$P$name" sysctl -qw net.ipv4.ip_forward=1 net.core.somaxconn=65535
		ip -n "$P$name" link add br0 type bridge
		ip -n "$P$name" addr add "10.200.${n#*:}.1/24" dev br0
		ip -n "$P$name" link set br0 up
		ip -n "$P$name" link add up0 type veth peer name "${n%%:*}0" netns "${P}l2"
		ip -n "$P$name" link set up0 up
		ip -n "${P}l2" link set "${n%%:*}0" master br0 up
	done
	ip -n "${P}nodea" addr add 10.199.0.1/24 dev up0
	ip -n "${P}nodeb" addr add 10.199.0.2/24 dev up0
	ip -n "${P}nodea" route add "$MTLS_B.0/24" via 10.199.0.2
	ip -n "${P}nodeb" route add "$MTLS_A.0/24" via 10.199.0.1
	for n in cli:nodea:$MTLS_A srv:nodeb:$MTLS_B; do
		IFS=: read -r name node net <<<"$n"
		netns_add "$name"
		ip -n "$P$node" link add "v-$name" type veth peer name eth0 netns "$P$name"
		ip -n "$P$node" link set "v-$name" master br0 up
		ip -n "$P$name" addr add "$net.11/24" dev eth0
		ip -n "$P$name" link set eth0 up
		ip -n "$P$name" route add default via "$net.1"
		ip netns exec "$P$name" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
	done
	timeout -k 5 900 nsenter --net="/run/netns/${P}srv" -- taskset -c "$MTLS_CPU_APP" "$BUILD/bench/mtls" serve \
		--port 8080 >"$TMP/mtls-srv.log" 2>&1 &
	PIDS+=("$!")
	wait_line "$TMP/mtls-srv.log" '^ready$' 10 "$!" || die "mtls: server did not start: $(cat "$TMP/mtls-srv.log")"

	# Agents: A first (it generates the root under the shared state directory), then B with the same root.
	mtls_config >"$TMP/mtls-config.yaml"
	mtls_agent a nodea nodea
	mtls_agent b nodeb nodeb
	wait_line "$TMP/mtls-agent-b.log" 'hbone: serving HBONE' 10 "${MTLS_PID[agent-b]}" ||
		die "mtls: agent B's HBONE server did not start: $(tail -n 5 "$TMP/mtls-agent-b.log")"
	mkdir -p "$TMP/mtls-pki"
	mtls_leaf hap-client client
	mtls_leaf hap-server server
	mtls_leaf hs-client client

	# The suite and group the xmesh tunnel negotiates: OpenSSL's default TLS 1.3 offer (what agent A sends) to
	# agent B, as s_client sees it. HAProxy is then configured with exactly that suite.
	n=$(timeout -k 5 20 nsenter --net="/run/netns/${P}nodea" -- openssl s_client -connect "$MTLS_B.11:15008" \
		-alpn h2 -cert "$TMP/mtls-pki/hs-client.crt" -key "$TMP/mtls-pki/hs-client.key" \
		-CAfile "$TMP/mtls-state/ca/root-cert.pem" -brief </dev/null 2>&1 | tr -d '\0') || true
	suite=$(awk -F': ' '/^Ciphersuite/ { print $2 }' <<<"$n")
	group=$(awk -F': ' '/^Server Temp Key|^Peer Temp Key|^Negotiated TLS1.3 group/ { print $2 }' <<<"$n" | head -n 1)
	[ -n "$suite" ] || die "mtls: no TLS 1.3 handshake with agent B on $MTLS_B.11:15008: $(tr '\n' ' ' <<<"$n")"
	log "mtls: the xmesh tunnel negotiates $suite ($group); HAProxy is configured with it"
	mtls_haproxy "$suite"
	mtls_wait_listen nodea 9001 || die "mtls: HAProxy A did not listen: $(tail -n 3 "$TMP/mtls-haproxy-a.log")"
	mtls_wait_listen nodeb 9443 || die "mtls: HAProxy B did not listen: $(tail -n 3 "$TMP/mtls-haproxy-b.log")"
	n=$(timeout -k 5 20 nsenter --net="/run/netns/${P}nodea" -- openssl s_client -connect 10.199.0.2:9443 \
		-cert "$TMP/mtls-pki/hs-client.crt" -key "$TMP/mtls-pki/hs-client.key" \
		-CAfile "$TMP/mtls-state/ca/root-cert.pem" -brief </dev/null 2>&1 | tr -d '\0') || true
	log "mtls: HAProxy B negotiates $(awk -F': ' '/^Ciphersuite/ { print $2 }' <<<"$n")"
	log "mtls: clients and server on CPU $MTLS_CPU_APP, both ends of each tunnel on CPU $MTLS_CPU_TUNNEL;" \
		"agents ${MTLS_PID[agent-a]} ${MTLS_PID[agent-b]}, HAProxies ${MTLS_PID[hap-a]} ${MTLS_PID[hap-b]}"

	: >"$rows"
	for ((round = 1; round <= ${MTLS_ROUNDS:-3}; round++)); do
		for target in ${MTLS_TARGETS:-plain haproxy xmesh}; do
			name=$target
			((round == 1)) || name="$target.$round"
			case $target in
			plain) addr=$MTLS_SRV cg=- pids=() ;;
			haproxy) addr=$MTLS_A.1:9001 cg=- pids=("${MTLS_PID[hap-a]}" "${MTLS_PID[hap-b]}") ;;
			xmesh) addr=$MTLS_SRV cg=$CG/mesh-a pids=("${MTLS_PID[agent-a]}" "${MTLS_PID[agent-b]}") ;;
			*) die "mtls: unknown target $target (MTLS_TARGETS)" ;;
			esac
			log "mtls: $name at $addr"
			err=""
			mtls_measure "$name" "$addr" "$cg" "${pids[@]}" 2>"$TMP/mtls-$name.err" || err=$(cat "$TMP/mtls-$name.err")
			err=${err//[$'\n\t']/ }
			if [ -n "$err" ]; then
				log "mtls: $name: ERROR: $err"
				printf '%s\terror\t%s\n' "$name" "$err" >>"$rows"
			else
				printf '%s\tok\t%s\n' "$name" "$TMP/mtls-$name.res" >>"$rows"
			fi
		done
	done

	# Request/response in slices, the targets interleaved (MTLS_RR_SLICES of MTLS_RR_SLICE exchanges each, the
	# order turned every slice): each target's p50 then comes from the same minutes as the others', so the
	# VM's drift (idle-vCPU wake-ups, other tenants) falls on all alike, unlike the rounds' back-to-back runs.
	: >"$TMP/mtls-rr-slices.res"
	if [ "$(grep -c $'\tok\t' "$rows")" -ge 3 ] && [ "${MTLS_RR_SLICES:-10}" -gt 0 ]; then
		log "mtls: request/response in ${MTLS_RR_SLICES:-10} interleaved slices of ${MTLS_RR_SLICE:-1000}"
		mtls_rr_slices >>"$TMP/mtls-rr-slices.res"
	fi

	# Handshake CPU: MTLS_HS handshakes from node A against each server, full then resumed.
	: >"$TMP/mtls-hs.res"
	for n in full resumed; do
		mtls_hs xmesh "$MTLS_B.11:15008" "$n" "${MTLS_PID[agent-b]}"
		mtls_hs haproxy 10.199.0.2:9443 "$n" "${MTLS_PID[hap-b]}"
	done
	# Both sides of the agent's own tunnel code (bench/hbone_handshake: library, CA, peer check; per-thread CPU).
	echo '{}' >"$TMP/mtls-hbone-hs.json"
	if [ -x "$BUILD/bench/hbone_handshake" ]; then
		timeout -k 5 120 taskset -c "$MTLS_CPU_TUNNEL" "$BUILD/bench/hbone_handshake" -n "${MTLS_HS:-500}" \
			--json "$TMP/mtls-hbone-hs.json" >"$TMP/mtls-hbone-hs.txt" 2>&1 ||
			log "mtls: hbone_handshake failed: $(tail -n 3 "$TMP/mtls-hbone-hs.txt")"
	fi

	python3 - "$BUILD/bench/mtls.json" "$rows" "$TMP/mtls-hs.res" "$TMP/mtls-hbone-hs.json" "$(getconf CLK_TCK)" \
		"$suite" "$group" \
		"$(haproxy -v 2>/dev/null | head -n 1)" "$(openssl version)" "$(uname -r)" \
		"$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
		"$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(cat /proc/loadavg)" \
		"$MTLS_CPU_APP" "$MTLS_CPU_TUNNEL" "${MTLS_SECS:-3}" "$TMP/mtls-rr-slices.res" <bench/mtls_report.py ||
		die "mtls: report"
}
# END section mtls

# ---------------------------------------------------------------------------------------------------------
# BEGIN section authz: ns per CONNECT of the AuthorizationPolicy check (bench/authz_eval.c; no root needed).
section_authz() {
	timeout -k 5 300 "$BUILD/bench/authz_eval" || die "authz: authz_eval failed"
}
# END section authz

# ---------------------------------------------------------------------------------------------------------
# Main: after every section's definition.

ran=0
setup_common
for s in "${SECTIONS[@]}"; do
	[ -z "$ONLY" ] || [ "$ONLY" = "$s" ] || continue
	echo "==> bench: $s"
	"section_$s"
	ran=1
done
[ "$ran" = 1 ] || die "no section named $ONLY (sections: ${SECTIONS[*]})"
