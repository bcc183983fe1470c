# shellcheck shell=bash
# Helpers for the e2e tests (sourced): a topology of network namespaces (a node with a bridge, pods on
# veths), a child cgroup the mesh serves, the agent, YAML configs, and one teardown that removes all of it.
#
# Nothing here touches the machine's own interfaces or the root cgroup: every link lives inside namespaces
# this file creates, and the agent attaches only to the child cgroup XMT_CG. Names carry the test's PID so
# parallel runs do not collide. Used by tests/e2e/test_*.sh and scripts/demo.sh.
#
# A test: `. lib.sh; xmt_init "$@"; xmt_topology 3 1; xmt_config_std ...; xmt_agent_start; ...; xmt_pass`.

XMT_CGROOT=/sys/fs/cgroup/unified
XMT_BPFFS=/sys/fs/bpf
XMT_SUBNET=10.200.1
XMT_SUBNET6=fd00:200:
XMT_VIP=10.96.0.10
XMT_VIP6=fd00:96::10
XMT_PORT=80
XMT_TARGET=8080
XMT_NODE_NAME=node1
XMT_CMD_TIMEOUT=${XMT_CMD_TIMEOUT:-60}	 # bound of one foreground command in a pod
XMT_BG_TIMEOUT=${XMT_BG_TIMEOUT:-300}	 # bound of a background process (servers, held connections)
XMT_READY_TIMEOUT=${XMT_READY_TIMEOUT:-15} # agent start to its "ready" line

# Set once by xmt_init; the teardown only removes what these name.
XMT_P="xmt$$-"
XMT_NODE="${XMT_P}node"
XMT_CG="$XMT_CGROOT/xmesh-test-$$"
XMT_PIN="$XMT_BPFFS/xmesh-test-$$"
XMT_TMP=""
XMT_CONF=""
XMT_ADMIN=""
XMT_BUILD=""
XMESH=""
XM_SERVER=""
XM_CLIENT=""
XM_HTTP=""	# the HTTP/1.1 backend of the L7 tests (tests/tools/xm-http.c)
XM_HTTP_LOAD="" # the keep-alive HTTP load client (tests/tools/xm-http-load.c)
XMT_NETNS=()
XMT_PIDS=()
XMT_AGENT_PID=""
XMT_AGENT_LOG=""
XMT_AGENT_N=0
XMT_CG_MADE=0
XMT_SUBTEST="" # named in failure messages
declare -gA XMT_BG=()	  # background process name -> PID (of its timeout(1) wrapper)
declare -gA XMT_POD_IDX=() # pod name -> host part of its addresses
declare -gA XMT_IP_POD=()  # pod IPv4/IPv6 address -> pod name (EndpointSlice targetRef)

xmt_log() { echo "# $(date +%T.%3N) $*"; }

# A figure worth seeing in the runner's one-line result; the runner passes XMT_NOTE_FILE.
xmt_note() {
	echo "NOTE: $*"
	if [ -n "${XMT_NOTE_FILE:-}" ]; then echo "$*" >>"$XMT_NOTE_FILE"; fi
}

# A skip that tests/e2e/run.sh counts as one only when it is a kernel limitation (xmt_skip_kernel); any
# other reason (a tool or build missing, no root) counts as a failure: the test did not run.
xmt_skip() {
	echo "SKIP: $*"
	exit 77
}

# xmt_require_py_h2: PY = Debian's python3 with python3-h2 (the independent HTTP/2 peer of the HBONE tests;
# scripts/install-deps.sh installs it), or the test fails: a missing test dependency is no skip.
xmt_require_py_h2() {
	PY=/usr/bin/python3
	"$PY" -c 'import h2' 2>/dev/null || xmt_fail "python3-h2 missing (scripts/install-deps.sh installs it)"
}

xmt_skip_kernel() {
	xmt_skip "KERNEL: $*"
}

# xmt_require_kernel "program_type xdp" "map_type sockhash"...: skips, as a kernel limitation, unless
# `bpftool feature probe kernel` says each is available. The probe loads tiny programs and creates tiny
# maps of each type: it reads the kernel, never the agent, so a broken agent still fails its tests.
xmt_require_kernel() {
	local f probe="$XMT_TMP/kernel-features"
	[ -s "$probe" ] || bpftool feature probe kernel >"$probe" 2>/dev/null || true
	for f in "$@"; do
		grep -q "^eBPF $f is available" "$probe" || xmt_skip_kernel "eBPF $f is not available (bpftool feature probe kernel)"
	done
}

# Fails the test with what differed, plus the agent's last words (most failures are explained there).
xmt_fail() {
	echo "FAIL: ${XMT_SUBTEST:+$XMT_SUBTEST: }$*" >&2
	if [ -n "$XMT_AGENT_LOG" ] && [ -s "$XMT_AGENT_LOG" ]; then
		echo "--- agent log (last 15 lines of $XMT_AGENT_LOG)" >&2
		tail -n 15 "$XMT_AGENT_LOG" >&2
	fi
	exit 1
}

xmt_pass() {
	echo "PASS: ${*:-ok}"
	exit 0
}

# Skips on a machine that cannot run the tests, and says which requirement is missing (run.sh counts every
# skip but a kernel limitation as a failure).
xmt_require() {
	local c
	[ "$(id -u)" -eq 0 ] || xmt_skip "needs root (network namespaces, cgroups, BPF)"
	[ "$(stat -f -c %T "$XMT_CGROOT" 2>/dev/null)" = cgroup2fs ] ||
		xmt_skip "cgroup v2 is not mounted at $XMT_CGROOT"
	[ -r /sys/kernel/btf/vmlinux ] || xmt_skip_kernel "kernel has no BTF (/sys/kernel/btf/vmlinux)"
	for c in ip nsenter timeout bpftool; do
		command -v "$c" >/dev/null || xmt_skip "command $c not installed"
	done
	if [ "${XMT_NEEDS_AGENT:-1}" = 1 ]; then
		[ -x "$XMESH" ] || xmt_skip "agent binary $XMESH not built (make)"
	fi
	{ [ -x "$XM_SERVER" ] && [ -x "$XM_CLIENT" ] && [ -x "$XM_HTTP" ] && [ -x "$XM_HTTP_LOAD" ]; } ||
		xmt_skip "test tools not built (make tools)"
	if ! mountpoint -q "$XMT_BPFFS"; then
		mount -t bpf bpf "$XMT_BPFFS" 2>/dev/null || xmt_skip "cannot mount bpffs at $XMT_BPFFS"
	fi
}

# xmt_init BUILD_DIR: checks the machine, names everything, installs the teardown trap.
# XMT_NEEDS_AGENT=0 before it: a test of the topology and tools alone, which runs without build/xmesh.
xmt_init() {
	XMT_BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || xmt_skip "build directory ${1:-build} missing"
	XMESH="$XMT_BUILD/xmesh"
	XM_SERVER="$XMT_BUILD/tools/xm-server"
	XM_CLIENT="$XMT_BUILD/tools/xm-client"
	XM_HTTP="$XMT_BUILD/tools/xm-http"
	XM_HTTP_LOAD="$XMT_BUILD/tools/xm-http-load"
	xmt_require
	trap xmt_teardown EXIT
	# set -e ends a test at the first unexpected failure; say where, instead of ending silently.
	trap 'xmt_fail "line $LINENO: unexpected failure of: $BASH_COMMAND"' ERR
	# A signal ends the test through the EXIT trap, so the teardown runs exactly once.
	trap 'exit 143' TERM
	trap 'exit 130' INT
	XMT_TMP=$(mktemp -d "/tmp/xmesh-test-$$.XXXXXX")
	XMT_CONF="$XMT_TMP/config"
	XMT_ADMIN="$XMT_TMP/admin.sock"
	mkdir -p "$XMT_CONF"
	mkdir "$XMT_CG"
	XMT_CG_MADE=1
	xmt_log "test $$: netns ${XMT_P}*, cgroup $XMT_CG, pins $XMT_PIN, files $XMT_TMP"
}

# Stops one background process: SIGTERM, up to 5 s, then SIGKILL. Returns its exit status.
xmt_stop_pid() {
	local pid=$1 i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# xmt_teardown [STATUS]: the EXIT trap; exits with STATUS, by default the status the script was exiting with.
xmt_teardown() {
	local rc=${1:-$?} pid ns i
	set +e
	trap - EXIT INT TERM ERR
	for pid in "${XMT_PIDS[@]}"; do
		xmt_stop_pid "$pid"
	done
	[ -n "$XMT_AGENT_PID" ] && xmt_stop_pid "$XMT_AGENT_PID"
	# The agent leaves its programs attached on SIGTERM by design; cleanup is what removes them.
	# The kernel releases a dead process's links asynchronously, hence a few tries; the cgroup's removal
	# below detaches whatever is left in any case.
	if [ -d "$XMT_PIN" ] && [ -x "$XMESH" ]; then
		for i in 1 2 3 4 5; do
			if timeout -k 5 20 "$XMESH" cleanup --bpffs "$XMT_PIN" --cgroup "$XMT_CG" >"$XMT_TMP/cleanup.log" 2>&1; then
				i=ok
				break
			fi
			sleep 0.2
		done
		[ "$i" = ok ] || echo "teardown: xmesh cleanup failed: $(tail -n 3 "$XMT_TMP/cleanup.log")" >&2
	fi
	# The L7 proxy's cgroup the agent makes next to the served one: cleanup removes it; this is the fallback.
	# It holds only the proxy's sockets (no process), so rmdir succeeds once the agent is gone.
	# Agents served on child cgroups of XMT_CG make theirs inside it.
	if [ "$XMT_CG_MADE" = 1 ]; then
		for i in "$XMT_CG-l7-proxy" "$XMT_CG"/*-l7-proxy; do
			[ -d "$i" ] || continue
			rmdir "$i" 2>/dev/null || echo "teardown: could not remove $i" >&2
		done
	fi
	if [ "$XMT_CG_MADE" = 1 ] && [ -d "$XMT_CG" ]; then
		# Kill whatever still runs in the child cgroup (never moving anything to the root), then remove it.
		echo 1 >"$XMT_CG/cgroup.kill" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			[ -s "$XMT_CG/cgroup.procs" ] || break
			sleep 0.05
		done
		for ((i = 0; i < 20; i++)); do
			rmdir "$XMT_CG" 2>/dev/null && break
			sleep 0.1
		done
		[ -d "$XMT_CG" ] && echo "teardown: could not remove $XMT_CG" >&2
	fi
	case "$XMT_PIN" in
	"$XMT_BPFFS"/xmesh-test-*) [ -e "$XMT_PIN" ] && rm -rf -- "$XMT_PIN" ;;
	esac
	for ns in "${XMT_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$XMT_TMP" ] && [ -d "$XMT_TMP" ]; then
		if [ "${XMT_KEEP_LOGS:-0}" = 1 ]; then
			echo "teardown: logs kept in $XMT_TMP" >&2
		else
			rm -rf -- "$XMT_TMP"
		fi
	fi
	exit "$rc"
}

# ---------------------------------------------------------------------------------------------------------
# Topology

xmt_nsrun() { # NETNS_SUFFIX CMD... : a short command in one of our namespaces, outside the mesh cgroup
	local ns="$XMT_P$1"
	shift
	timeout -k 5 "$XMT_CMD_TIMEOUT" nsenter --net="/run/netns/$ns" -- "$@"
}

xmt_netns_add() {
	ip netns add "$XMT_P$1"
	XMT_NETNS+=("$XMT_P$1")
	ip -n "$XMT_P$1" link set lo up
}

# The node: a namespace with a bridge for the pods and no route anywhere else.
xmt_node_create() {
	xmt_netns_add node
	ip -n "$XMT_NODE" link add br0 type bridge
	ip -n "$XMT_NODE" addr add "$XMT_SUBNET.1/24" dev br0
	ip -n "$XMT_NODE" addr add "${XMT_SUBNET6}:1/64" dev br0 nodad
	ip -n "$XMT_NODE" link set br0 up
}

# xmt_pod_add NAME IDX: a pod namespace on the node's bridge with $XMT_SUBNET.IDX and ${XMT_SUBNET6}:IDX.
# The veth is created inside the node namespace and its peer directly inside the pod: nothing in the root.
xmt_pod_add() {
	local name=$1 idx=$2 ns="$XMT_P$1"
	xmt_netns_add "$name"
	ip -n "$XMT_NODE" link add "v-$name" type veth peer name eth0 netns "$ns"
	ip -n "$XMT_NODE" link set "v-$name" master br0 up
	ip -n "$ns" addr add "$XMT_SUBNET.$idx/24" dev eth0
	ip -n "$ns" addr add "${XMT_SUBNET6}:$idx/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
	XMT_POD_IDX[$name]=$idx
	XMT_IP_POD["$XMT_SUBNET.$idx"]=$name
	XMT_IP_POD["${XMT_SUBNET6}:$idx"]=$name
}

xmt_pod_ip() { echo "$XMT_SUBNET.${XMT_POD_IDX[$1]}"; }
xmt_pod_ip6() { echo "${XMT_SUBNET6}:${XMT_POD_IDX[$1]}"; }

# xmt_pod_add_addr POD IP: an extra address on the pod's interface (clients with several source addresses).
xmt_pod_add_addr() {
	case "$2" in
	*:*) ip -n "$XMT_P$1" addr add "$2/64" dev eth0 nodad ;;
	*) ip -n "$XMT_P$1" addr add "$2/24" dev eth0 ;;
	esac
}

# xmt_in_pod POD CMD...: runs CMD in the pod's namespace and inside the mesh cgroup (XMT_POD_CG when set: the
# cgroup of one of several agents), bounded in time.
# The shell moves itself into the cgroup before exec, so every socket CMD opens belongs to the cgroup.
xmt_in_pod() {
	local ns="$XMT_P$1"
	shift
	# shellcheck disable=SC2016 # $$ and $0 are for the inner shell
	timeout -k 5 "$XMT_CMD_TIMEOUT" nsenter --net="/run/netns/$ns" -- \
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "${XMT_POD_CG:-$XMT_CG}" "$@"
}

# xmt_bg NAME POD mesh|plain CMD...: starts CMD in the background in POD (inside the mesh cgroup or not),
# output to $XMT_TMP/NAME.log; the teardown stops it.
xmt_bg() {
	local name=$1 ns="$XMT_P$2" where=$3
	shift 3
	if [ "$where" = mesh ]; then
		# shellcheck disable=SC2016 # $$ and $0 are for the inner shell
		timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/$ns" -- \
			sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$XMT_CG" "$@" >"$XMT_TMP/$name.log" 2>&1 &
	else
		timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/$ns" -- "$@" >"$XMT_TMP/$name.log" 2>&1 &
	fi
	XMT_BG[$name]=$!
	XMT_PIDS+=("$!")
}

xmt_bg_log() { echo "$XMT_TMP/$1.log"; }

# xmt_bg_stop NAME: SIGTERM and wait; returns the process's exit status.
xmt_bg_stop() {
	local pid=${XMT_BG[$1]} rc=0 p keep=()
	xmt_stop_pid "$pid" || rc=$?
	for p in "${XMT_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	XMT_PIDS=("${keep[@]}")
	return "$rc"
}

# xmt_wait_for FILE REGEX SECONDS [PID]: polls until FILE has a line matching REGEX; fails early if PID died.
xmt_wait_for() {
	local file=$1 re=$2 secs=$3 pid=${4:-} deadline
	deadline=$(($(date +%s%3N) + secs * 1000))
	while [ "$(date +%s%3N)" -lt "$deadline" ]; do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			grep -qE -- "$re" "$file" 2>/dev/null && return 0
			return 2
		fi
		sleep 0.05
	done
	return 1
}

# xmt_server POD [ID] [extra args]: an xm-server answering with ID (default: the pod's name) on $XMT_TARGET.
xmt_server() {
	local pod=$1 id=${2:-$1}
	shift $(($# >= 2 ? 2 : 1))
	xmt_bg "srv-$pod" "$pod" plain "$XM_SERVER" --id "$id" --port "$XMT_TARGET" "$@"
	xmt_wait_for "$(xmt_bg_log "srv-$pod")" ' ready$' 5 "${XMT_BG[srv-$pod]}" ||
		xmt_fail "xm-server in $pod did not start: $(cat "$(xmt_bg_log "srv-$pod")")"
}

# xmt_http_server POD [ID] [extra args]: an xm-http (HTTP/1.1 backend) answering as ID (default: the pod's name)
# on $XMT_TARGET, IPv4 and IPv6; its log is $(xmt_bg_log http-POD).
xmt_http_server() {
	local pod=$1 id=${2:-$1}
	shift $(($# >= 2 ? 2 : 1))
	xmt_bg "http-$pod" "$pod" plain "$XM_HTTP" --id "$id" --port "$XMT_TARGET" "$@"
	xmt_wait_for "$(xmt_bg_log "http-$pod")" ' ready$' 5 "${XMT_BG[http-$pod]}" ||
		xmt_fail "xm-http in $pod did not start: $(cat "$(xmt_bg_log "http-$pod")")"
}

# xmt_topology NB NC: the node, backend pods b1..bNB (.11, .12, ...) each running xm-server, and client
# pods c1..cNC (.101, ...).
xmt_topology() {
	local nb=$1 nc=$2 i
	xmt_node_create
	for ((i = 1; i <= nb; i++)); do
		xmt_pod_add "b$i" $((10 + i))
		xmt_server "b$i"
	done
	for ((i = 1; i <= nc; i++)); do
		xmt_pod_add "c$i" $((100 + i))
	done
}

xmt_backends() { # the backend pod names of xmt_topology NB: "b1 b2 ... bNB"
	local i out=""
	for ((i = 1; i <= $1; i++)); do out+="b$i "; done
	echo "${out% }"
}

# ---------------------------------------------------------------------------------------------------------
# Agent

# xmt_agent_start [ARGS...]: starts the agent in the node namespace on the child cgroup and waits for its
# "ready" line on stderr. Each start has its own log (agent-N.log); XMT_AGENT_LOG is the current one. The
# state directory (the generated root CA) is the test's own, kept across restarts of the test.
xmt_agent_start() {
	local r=0
	XMT_AGENT_N=$((XMT_AGENT_N + 1))
	XMT_AGENT_LOG="$XMT_TMP/agent-$XMT_AGENT_N.log"
	timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/$XMT_NODE" -- \
		"$XMESH" agent --config "$XMT_CONF" --cgroup "$XMT_CG" --bpffs "$XMT_PIN" --node "$XMT_NODE_NAME" \
		--metrics 127.0.0.1:15090 --admin "$XMT_ADMIN" --state-dir "$XMT_TMP/agent-state" "$@" >"$XMT_AGENT_LOG" 2>&1 &
	XMT_AGENT_PID=$!
	# The word only: "already attached" is no ready line.
	xmt_wait_for "$XMT_AGENT_LOG" '\<ready\>' "$XMT_READY_TIMEOUT" "$XMT_AGENT_PID" || r=$?
	case $r in
	0) xmt_log "agent $XMT_AGENT_N ready (pid $XMT_AGENT_PID)" ;;
	2) xmt_fail "agent exited before printing 'ready'" ;;
	*) xmt_fail "agent printed no 'ready' line within ${XMT_READY_TIMEOUT}s" ;;
	esac
}

# xmt_agent_stop: SIGTERM; returns the agent's exit status.
xmt_agent_stop() {
	local rc=0
	[ -n "$XMT_AGENT_PID" ] || return 0
	xmt_stop_pid "$XMT_AGENT_PID" || rc=$?
	XMT_AGENT_PID=""
	return "$rc"
}

xmt_agent_alive() { [ -n "$XMT_AGENT_PID" ] && kill -0 "$XMT_AGENT_PID" 2>/dev/null; }

xmt_xmesh() { # CLI subcommands against this test's agent and pins
	timeout -k 5 "$XMT_CMD_TIMEOUT" "$XMESH" "$@"
}

# ---------------------------------------------------------------------------------------------------------
# Config: generators print YAML documents on stdout; xmt_config_write installs them atomically.

# xmt_config_write FILE < yaml: writes a staging file next to (not inside) the watched directory, then
# renames it in, so the agent never sees a half-written file.
xmt_config_write() {
	local stage="$XMT_TMP/.staging.$$"
	cat >"$stage"
	mv -f "$stage" "$XMT_CONF/$1"
}

xmt_config_rm() { rm -f "$XMT_CONF/$1"; }

# xmt_yaml_service --name N [--ns NS] --vip IP [--vip IP6] [--port P] [--target T] [--proto TCP|UDP]
#                  [--port-name NAME] [--affinity ClientIP]
xmt_yaml_service() {
	local name="" ns=default port=$XMT_PORT target=$XMT_TARGET proto=TCP pname="" affinity=None
	local vips=() fams=() v
	while [ $# -gt 0 ]; do
		case $1 in
		--name) name=$2 ;;
		--ns) ns=$2 ;;
		--vip) vips+=("$2") ;;
		--port) port=$2 ;;
		--target) target=$2 ;;
		--proto) proto=$2 ;;
		--port-name) pname=$2 ;;
		--affinity) affinity=$2 ;;
		*) xmt_fail "xmt_yaml_service: unknown option $1" ;;
		esac
		shift 2
	done
	[ -n "$pname" ] || pname=${proto,,}
	for v in "${vips[@]}"; do
		case $v in *:*) fams+=(IPv6) ;; *) fams+=(IPv4) ;; esac
	done
	cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: $name
  namespace: $ns
spec:
  type: ClusterIP
  clusterIP: ${vips[0]}
  clusterIPs:
$(for v in "${vips[@]}"; do echo "  - $v"; done)
  ipFamilies:
$(for v in "${fams[@]}"; do echo "  - $v"; done)
  ipFamilyPolicy: $([ ${#vips[@]} -gt 1 ] && echo RequireDualStack || echo SingleStack)
  sessionAffinity: $affinity
  ports:
  - name: $pname
    port: $port
    protocol: $proto
    targetPort: $target
EOF
}

# xmt_yaml_slice --service S [--ns NS] [--name N] [--family 4|6] [--target T] [--proto P] [--port-name NAME]
#                ADDR... : one EndpointSlice; an address written !ADDR is listed with ready: false.
xmt_yaml_slice() {
	local svc="" ns=default name="" fam=4 target=$XMT_TARGET proto=TCP pname="" a ready pod
	while [ $# -gt 0 ]; do
		case $1 in
		--service) svc=$2 ;;
		--ns) ns=$2 ;;
		--name) name=$2 ;;
		--family) fam=$2 ;;
		--target) target=$2 ;;
		--proto) proto=$2 ;;
		--port-name) pname=$2 ;;
		*) break ;;
		esac
		shift 2
	done
	[ -n "$pname" ] || pname=${proto,,}
	[ -n "$name" ] || name="$svc-ipv$fam"
	cat <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $name
  namespace: $ns
  labels:
    kubernetes.io/service-name: $svc
addressType: IPv$fam
ports:
- name: $pname
  port: $target
  protocol: $proto
EOF
	if [ $# -eq 0 ]; then
		echo "endpoints: []"
		return
	fi
	echo "endpoints:"
	for a in "$@"; do
		ready=true
		if [ "${a#!}" != "$a" ]; then
			ready=false
			a=${a#!}
		fi
		pod=${XMT_IP_POD[$a]:-}
		cat <<EOF
- addresses:
  - "$a"
  conditions:
    ready: $ready
  nodeName: $XMT_NODE_NAME
EOF
		if [ -n "$pod" ]; then
			cat <<EOF
  targetRef:
    kind: Pod
    name: $pod
    namespace: $ns
EOF
		fi
	done
}

# xmt_yaml_dr --host HOST [--name N] [--ns NS] --lb ROUND_ROBIN|RANDOM|LEAST_REQUEST|MAGLEV
# (MAGLEV writes consistentHash: {useSourceIp: true}).
xmt_yaml_dr() {
	local host="" name="" ns=default lb=LEAST_REQUEST
	while [ $# -gt 0 ]; do
		case $1 in
		--host) host=$2 ;;
		--name) name=$2 ;;
		--ns) ns=$2 ;;
		--lb) lb=$2 ;;
		*) xmt_fail "xmt_yaml_dr: unknown option $1" ;;
		esac
		shift 2
	done
	[ -n "$name" ] || name=${host%%.*}
	cat <<EOF
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: $name
  namespace: $ns
spec:
  host: $host
  trafficPolicy:
    loadBalancer:
EOF
	if [ "$lb" = MAGLEV ]; then
		printf '      consistentHash:\n        useSourceIp: true\n'
	else
		printf '      simple: %s\n' "$lb"
	fi
}

# xmt_yaml_pod NAME [LABEL=VALUE...]: a Pod object for a pod of the topology (its addresses from the pod).
xmt_yaml_pod() {
	local name=$1 l
	shift
	cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: default
  labels:
$(for l in "$@"; do echo "    ${l%%=*}: ${l#*=}"; done)
spec:
  nodeName: $XMT_NODE_NAME
  serviceAccountName: default
status:
  phase: Running
  podIP: $(xmt_pod_ip "$name")
  podIPs:
  - ip: $(xmt_pod_ip "$name")
  - ip: $(xmt_pod_ip6 "$name")
EOF
}

xmt_yaml_node() {
	cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $XMT_NODE_NAME
status:
  addresses:
  - type: InternalIP
    address: $XMT_SUBNET.1
  - type: Hostname
    address: $XMT_NODE_NAME
EOF
}

# xmt_config_std [--lb ALGO] [--affinity ClientIP] [--dual] [--proto TCP|UDP] [--out PATH] [BACKEND_POD...]:
# the usual config, Service default/reviews at $XMT_VIP:$XMT_PORT (and $XMT_VIP6 with --dual) ->
# pods:$XMT_TARGET, installed as reviews.yaml (or only written to PATH, to be renamed in later).
xmt_config_std() {
	local lb="" affinity=None dual=0 proto=TCP out="" svc_args=() eps=() eps6=() p
	while [ $# -gt 0 ]; do
		case $1 in
		--lb) lb=$2; shift 2 ;;
		--affinity) affinity=$2; shift 2 ;;
		--proto) proto=$2; shift 2 ;;
		--out) out=$2; shift 2 ;;
		--dual) dual=1; shift ;;
		*) break ;;
		esac
	done
	for p in "$@"; do
		eps+=("$(xmt_pod_ip "$p")")
		eps6+=("$(xmt_pod_ip6 "$p")")
	done
	svc_args=(--name reviews --vip "$XMT_VIP" --proto "$proto" --affinity "$affinity")
	[ "$dual" = 1 ] && svc_args+=(--vip "$XMT_VIP6")
	{
		xmt_yaml_service "${svc_args[@]}"
		xmt_yaml_slice --service reviews --proto "$proto" "${eps[@]}"
		if [ "$dual" = 1 ]; then xmt_yaml_slice --service reviews --family 6 --proto "$proto" "${eps6[@]}"; fi
		if [ -n "$lb" ]; then xmt_yaml_dr --host reviews.default.svc.cluster.local --lb "$lb"; fi
	} >"$XMT_TMP/.std.yaml"
	if [ -n "$out" ]; then
		mv -f "$XMT_TMP/.std.yaml" "$out"
	else
		xmt_config_write reviews.yaml <"$XMT_TMP/.std.yaml"
	fi
}

# ---------------------------------------------------------------------------------------------------------
# Reading xm-client output

# xmt_id_count FILE ID: how many connections/replies FILE's "id ID N" line counts (0 when absent).
xmt_id_count() { awk -v id="$2" '$1 == "id" && $2 == id { n = $3 } END { print n + 0 }' "$1"; }

# xmt_field FILE KEY: the value of KEY=VALUE on the last line of FILE that has it.
xmt_field() {
	awk -v k="$2" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) v = substr($i, length(k) + 2) }
		END { print v }' "$1"
}

# xmt_ids FILE: "b1=N b2=N ..." for the note lines.
xmt_ids() { awk '$1 == "id" { printf "%s%s=%s", sep, $2, $3; sep = " " }' "$1"; }

# xmt_client POD OUTFILE ARGS...: xm-client in POD inside the mesh; keeps its output; never fails the caller
# (the exit status is returned for the caller to judge with the output at hand).
xmt_client() {
	local pod=$1 out=$2 rc=0
	shift 2
	xmt_in_pod "$pod" "$XM_CLIENT" "$@" >"$out" 2>"$out.err" || rc=$?
	return "$rc"
}

# xmt_assert_spread FILE TOTAL MIN% MAX% BACKEND...: every connection succeeded, getpeername was the VIP
# every time, and each backend got between MIN% and MAX% of TOTAL.
xmt_assert_spread() {
	local f=$1 total=$2 lo=$3 hi=$4 b n ok errs mism
	shift 4
	ok=$(xmt_field "$f" ok)
	errs=$(xmt_field "$f" errors)
	mism=$(xmt_field "$f" getpeername_mismatch)
	[ -n "$ok" ] || xmt_fail "xm-client printed no summary: $(cat "$f.err" "$f")"
	[ "$errs" = 0 ] || xmt_fail "$errs of $total connections failed ($(head -n 3 "$f.err" | tr '\n' ' '))"
	[ "$mism" = 0 ] || xmt_fail "getpeername() was not the VIP for $mism of $total connections" \
		"($(head -n 2 "$f.err" | tr '\n' ' '))"
	[ "$ok" = "$total" ] || xmt_fail "expected $total connections, got $ok"
	for b in "$@"; do
		n=$(xmt_id_count "$f" "$b")
		if ((n * 100 < lo * total || n * 100 > hi * total)); then
			xmt_fail "backend $b got $n of $total connections, expected $lo-$hi% (spread: $(xmt_ids "$f"))"
		fi
	done
	n=$(awk '$1 == "id" { s += $3 } END { print s + 0 }' "$f")
	[ "$n" = "$total" ] || xmt_fail "connections reached backends outside [$*]: $(xmt_ids "$f")"
}

# ---------------------------------------------------------------------------------------------------------
# Kernel state

# xmt_cg_progs: the attach types of the programs attached directly to the child cgroup, one per line.
xmt_cg_progs() { { bpftool cgroup show "$XMT_CG" 2>/dev/null || true; } | awk '$1 ~ /^[0-9]+$/ { print $2 }'; }

# xmt_settle [SECONDS]: the contract re-applies a changed config "well under 1 s"; waiting 1 s checks that.
xmt_settle() { sleep "${1:-1}"; }
