# shellcheck shell=bash
# Helpers of the XDP e2e tests (sourced after lib.sh, before xmx_init): uplinks, an `ext` client namespace,
# a second node, agents started with --iface, and YAML for external VIPs. Everything lives in namespaces
# named xmx<PID>-*; the only interfaces that get XDP or TC are veths inside them.

XMT_P="xmx$$-"
# shellcheck disable=SC2034 # read by lib.sh
XMT_NODE="${XMT_P}node"
XMX_AGENTS=() # PIDs of agents started by xmx_agent
XMX_PINS=()   # their pin directories
XMX_NS=()     # and network namespaces
XMX_CGS=()    # child cgroups of XMT_CG they serve

# Stops our agents, removes their pins (xmesh cleanup in the agent's namespace: TC filters live there) and
# cgroups, then hands over to lib.sh's teardown. Installed over lib.sh's EXIT trap by xmx_init.
xmx_teardown() {
	local rc=$? pid i
	set +e
	trap - ERR
	for pid in "${XMX_AGENTS[@]}"; do xmt_stop_pid "$pid"; done
	for i in "${!XMX_PINS[@]}"; do
		[ -d "${XMX_PINS[$i]}" ] || continue
		timeout -k 5 20 nsenter --net="/run/netns/${XMX_NS[$i]}" -- "$XMESH" cleanup --bpffs "${XMX_PINS[$i]}" \
			>/dev/null 2>&1 || echo "teardown: xmesh cleanup ${XMX_PINS[$i]} failed" >&2
		case "${XMX_PINS[$i]}" in "$XMT_BPFFS"/xmesh-test-*) [ -e "${XMX_PINS[$i]}" ] && rm -rf -- "${XMX_PINS[$i]}" ;; esac
	done
	for i in "${XMX_CGS[@]}"; do
		rmdir "$i-l7-proxy" 2>/dev/null # the agent's L7 proxy cgroup (cleanup ran without --cgroup)
		echo 1 >"$i/cgroup.kill" 2>/dev/null
		for pid in 1 2 3 4 5 6 7 8 9 10; do
			rmdir "$i" 2>/dev/null && break
			sleep 0.1
		done
	done
	xmt_teardown "$rc"
}

xmx_init() {
	xmt_init "$@"
	trap xmx_teardown EXIT
	[ -r "$XMT_BUILD/bpf/xdp_pass.bpf.o" ] || xmt_skip "$XMT_BUILD/bpf/xdp_pass.bpf.o not built"
	command -v python3 >/dev/null || xmt_skip "python3 not installed (turns veth checksum offload off)"
	xmt_require_kernel "program_type xdp" "program_type sched_cls" "map_type lru_hash"
}

# xmx_sysctl NS KEY=VALUE...
xmx_sysctl() {
	local ns=$1
	shift
	xmt_nsrun "$ns" sysctl -qw "$@" >/dev/null
}

# xmx_tx_csum_off NS IFACE: full checksums in every packet IFACE sends (ethtool -K IFACE tx off, without
# ethtool). A veth otherwise hands CHECKSUM_PARTIAL skbs around, whose L4 checksum field holds only the
# pseudo-header sum: fine inside one host, wrong once XDP_TX turns the frame into bytes on a "wire".
xmx_tx_csum_off() {
	xmt_nsrun "$1" python3 -c '
import ctypes, fcntl, socket, struct, sys
ev = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))  # ETHTOOL_STXCSUM, off
ifr = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(ev)).ljust(40, b"\0")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s.fileno(), 0x8946, ifr)  # SIOCETHTOOL
' "$2"
}

# xmx_xdp_pass NS IFACE: the trivial XDP program on a veth that receives XDP_TX frames (a veth delivers
# them only to a peer running native XDP).
xmx_xdp_pass() {
	ip -n "$XMT_P$1" link set dev "$2" xdpdrv obj "$XMT_BUILD/bpf/xdp_pass.bpf.o" sec xdp
}

# xmx_link NS_A IF_A NS_B IF_B: a veth pair between two of our namespaces, both ends up.
xmx_link() {
	ip -n "$XMT_P$1" link add "$2" type veth peer name "$4" netns "$XMT_P$3"
	ip -n "$XMT_P$1" link set "$2" up
	ip -n "$XMT_P$3" link set "$4" up
}

# xmx_node NS POD_SUBNET: a node namespace with a bridge br0 at POD_SUBNET.1/24 for its pods, forwarding on.
xmx_node() {
	xmt_netns_add "$1"
	ip -n "$XMT_P$1" link add br0 type bridge
	ip -n "$XMT_P$1" addr add "$2.1/24" dev br0
	ip -n "$XMT_P$1" link set br0 up
	xmx_sysctl "$1" net.ipv4.ip_forward=1
}

# xmx_pod NODE_NS NAME IP GW: a pod namespace on NODE_NS's br0 with IP/24, a default route via GW, and an
# xm-server answering with NAME on 8080.
xmx_pod() {
	local node=$1 name=$2 ip=$3 gw=$4
	xmt_netns_add "$name"
	ip -n "$XMT_P$node" link add "v-$name" type veth peer name eth0 netns "$XMT_P$name"
	ip -n "$XMT_P$node" link set "v-$name" master br0 up
	ip -n "$XMT_P$name" addr add "$ip/24" dev eth0
	ip -n "$XMT_P$name" link set eth0 up
	ip -n "$XMT_P$name" route add default via "$gw"
	xmt_server "$name"
}

# xmx_single_node N: the one-node topology: node 10.199.0.1 on uplink up0 with pods b1..bN (10.200.1.11..)
# on its br0, and an external host ext 10.199.0.100 (eth0) routing the external VIPs 10.97.0.0/16 via up0.
xmx_single_node() {
	local i
	xmx_node node 10.200.1
	for i in $(seq 1 "$1"); do xmx_pod node "b$i" "10.200.1.1$i" 10.200.1.1; done
	xmt_netns_add ext
	xmx_link node up0 ext eth0
	ip -n "${XMT_P}node" addr add 10.199.0.1/24 dev up0
	ip -n "${XMT_P}ext" addr add 10.199.0.100/24 dev eth0
	ip -n "${XMT_P}ext" route add 10.97.0.0/16 via 10.199.0.1
}

# xmx_two_nodes: nodes A (10.199.0.1, no pods) and B (10.199.0.2, pod bridge 10.200.2.1/24) and an external
# host ext (10.199.0.100, routing the external VIPs 10.97.0.0/16 via A) on one L2 segment: a bridge in its
# own namespace l2, ports a0, b0, e0.
xmx_two_nodes() {
	local p
	xmt_netns_add l2
	ip -n "${XMT_P}l2" link add br0 type bridge
	ip -n "${XMT_P}l2" link set br0 up
	xmt_netns_add nodea
	xmx_sysctl nodea net.ipv4.ip_forward=1
	xmx_node nodeb 10.200.2
	xmt_netns_add ext
	xmx_link nodea up0 l2 a0
	xmx_link nodeb up0 l2 b0
	xmx_link ext eth0 l2 e0
	for p in a0 b0 e0; do ip -n "${XMT_P}l2" link set "$p" master br0; done
	ip -n "${XMT_P}nodea" addr add 10.199.0.1/24 dev up0
	ip -n "${XMT_P}nodeb" addr add 10.199.0.2/24 dev up0
	ip -n "${XMT_P}ext" addr add 10.199.0.100/24 dev eth0
	ip -n "${XMT_P}ext" route add 10.97.0.0/16 via 10.199.0.1
}

# xmx_two_nodes_pods: xmx_two_nodes with a pod bridge on node A too (br0 10.200.1.1/24) and each node routing
# the other's pod subnet through it: the mesh pods of two nodes (the mTLS tests' topology).
xmx_two_nodes_pods() {
	xmx_two_nodes
	ip -n "${XMT_P}nodea" link add br0 type bridge
	ip -n "${XMT_P}nodea" addr add 10.200.1.1/24 dev br0
	ip -n "${XMT_P}nodea" link set br0 up
	ip -n "${XMT_P}nodea" route add 10.200.2.0/24 via 10.199.0.2
	ip -n "${XMT_P}nodeb" route add 10.200.1.0/24 via 10.199.0.1
}

# xmx_node6 NS POD_PREFIX6: xmx_node for IPv6 pods only: br0 at POD_PREFIX6::1/64 (e.g. fd00:200:1), IPv6
# forwarding on (bpf_fib_lookup and the DNATed packets' way to the pods need it).
xmx_node6() {
	xmt_netns_add "$1"
	ip -n "$XMT_P$1" link add br0 type bridge
	ip -n "$XMT_P$1" addr add "$2::1/64" dev br0 nodad
	ip -n "$XMT_P$1" link set br0 up
	xmx_sysctl "$1" net.ipv6.conf.all.forwarding=1
}

# xmx_pod6 NODE_NS NAME IP6 GW6: xmx_pod with an IPv6 address only (/64, no DAD: usable at once).
xmx_pod6() {
	local node=$1 name=$2 ip=$3 gw=$4
	xmt_netns_add "$name"
	ip -n "$XMT_P$node" link add "v-$name" type veth peer name eth0 netns "$XMT_P$name"
	ip -n "$XMT_P$node" link set "v-$name" master br0 up
	ip -n "$XMT_P$name" addr add "$ip/64" dev eth0 nodad
	ip -n "$XMT_P$name" link set eth0 up
	ip -n "$XMT_P$name" -6 route add default via "$gw"
	xmt_server "$name"
}

# xmx_addr6 NS IFACE ADDR6: an IPv6 address in a /64, without DAD (a tentative address cannot be used, and
# the agent records its uplink's addresses once, at start).
xmx_addr6() {
	ip -n "$XMT_P$1" addr add "$3/64" dev "$2" nodad
}

# xmx_agent NAME NODE_NS NODE_NAME IFACE [ARGS...]: an agent in NODE_NS on its own child cgroup and pin
# directory, with XDP on IFACE; waits for its "ready" line. Log: $XMT_TMP/agent-NAME.log.
xmx_agent() {
	local name=$1 ns=$2 node=$3 iface=$4 pin="$XMT_PIN-$1" cg="$XMT_CG/$1" pid r=0
	shift 4
	mkdir -p "$cg"
	XMX_CGS+=("$cg")
	XMX_PINS+=("$pin")
	XMX_NS+=("$XMT_P$ns")
	timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/$XMT_P$ns" -- \
		"$XMESH" agent --config "$XMT_CONF" --cgroup "$cg" --bpffs "$pin" --node "$node" --iface "$iface" \
		--metrics 127.0.0.1:15090 --admin "$XMT_TMP/admin-$name.sock" --state-dir "$XMT_TMP/agent-state" "$@" >"$XMT_TMP/agent-$name.log" 2>&1 &
	pid=$!
	XMX_AGENTS+=("$pid")
	XMT_AGENT_LOG="$XMT_TMP/agent-$name.log"
	xmt_wait_for "$XMT_AGENT_LOG" '\<ready\>' "$XMT_READY_TIMEOUT" "$pid" || r=$?
	[ "$r" = 0 ] || xmt_fail "agent $name not ready: $(tail -n 5 "$XMT_AGENT_LOG")"
	xmt_log "agent $name ready in $ns (pid $pid, --iface $iface)"
}

xmx_status() { timeout -k 5 20 "$XMESH" status --admin "$XMT_TMP/admin-$1.sock"; }

# xmx_scrape NODE_NS: the metrics of the agent in NODE_NS (xmx_agent serves them on 127.0.0.1:15090).
xmx_scrape() { xmt_nsrun "$1" curl -sS --max-time 10 http://127.0.0.1:15090/metrics; }
# xmx_metric NODE_NS SERIES: the value of one series of that agent's metrics (0 when absent).
xmx_metric() { xmx_scrape "$1" | awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }'; }

# xmx_verdict AGENT NAME: one of the "xdp: verdicts" counters of `xmesh status` (0 when absent).
xmx_verdict() {
	xmx_status "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}

# xmx_ext_client NS OUT ARGS...: xm-client in a namespace outside any mesh cgroup (an external client).
xmx_ext_client() {
	local ns=$1 out=$2 rc=0
	shift 2
	xmt_nsrun "$ns" "$XM_CLIENT" "$@" >"$out" 2>"$out.err" || rc=$?
	return "$rc"
}

# xmx_yaml_ext_service NAME VIP [CLUSTER_IP]: a Service with external IP VIP, port 80 → 8080/TCP. With
# CLUSTER_IP (default 10.96.0.50) it also states its single family in ipFamilies (IPv6 for fd00::50).
xmx_yaml_ext_service() {
	local cip=${3:-10.96.0.50} fam
	printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: $1" "  namespace: default" \
		"spec:" "  type: LoadBalancer" "  clusterIP: $cip" "  clusterIPs:" "  - $cip"
	if [ $# -ge 3 ]; then
		case $cip in *:*) fam=IPv6 ;; *) fam=IPv4 ;; esac
		printf '%s\n' "  ipFamilyPolicy: SingleStack" "  ipFamilies:" "  - $fam"
	fi
	printf '%s\n' "  externalIPs:" "  - $2" "  ports:" "  - name: tcp" "    port: 80" "    protocol: TCP" \
		"    targetPort: 8080"
}

# xmx_yaml_slice SERVICE NODE_NAME IP...: an EndpointSlice with ready endpoints on NODE_NAME; addressType
# IPv6 when the first IP is an IPv6 address, else IPv4.
xmx_yaml_slice() {
	local svc=$1 node=$2 ip fam=IPv4
	shift 2
	case ${1:-} in *:*) fam=IPv6 ;; esac
	printf '%s\n' "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" "metadata:" \
		"  name: $svc-$node" "  namespace: default" "  labels:" "    kubernetes.io/service-name: $svc" \
		"addressType: $fam" "ports:" "- name: tcp" "  port: 8080" "  protocol: TCP"
	[ $# -gt 0 ] || echo "endpoints: []"
	[ $# -eq 0 ] || echo "endpoints:"
	for ip in "$@"; do
		printf '%s\n' "- addresses:" "  - \"$ip\"" "  conditions:" "    ready: true" "  nodeName: $node"
	done
}

# xmx_yaml_pod NAME IP NODE [SERVICEACCOUNT]: a Pod of namespace default labelled app=NAME on NODE.
xmx_yaml_pod() {
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: $1" "  namespace: default" "  labels:" \
		"    app: $1" "spec:" "  nodeName: $3"
	[ -z "${4:-}" ] || echo "  serviceAccountName: $4"
	printf '%s\n' "status:" "  podIP: $2"
}

# xmx_yaml_node NAME INTERNAL_IP
xmx_yaml_node() {
	printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: $1" "status:" "  addresses:" \
		"  - type: InternalIP" "    address: $2"
}

# xmx_two_nodes_echo: xmx_two_nodes made dual-stack (uplinks 10.199.0.0/24 and fd00:199::/64, node B's pods
# also on fd00:200:2::/64), one echo pod bs1 on node B (xm-stream serve on $XMT_TARGET, 10.200.2.11 and
# fd00:200:2::11), external Services web4 (10.97.0.10) and web6 (fd00:97::10) with bs1 as their backend, the
# Nodes' InternalIPs, and both agents started with XDP on up0. ext routes the VIPs through node A, which
# encapsulates to node B. XM_STREAM must be set.
xmx_two_nodes_echo() {
	xmx_two_nodes
	xmx_sysctl nodea net.ipv6.conf.all.forwarding=1
	xmx_sysctl nodeb net.ipv6.conf.all.forwarding=1
	ip -n "${XMT_P}nodeb" addr add fd00:200:2::1/64 dev br0 nodad
	xmx_addr6 nodea up0 fd00:199::1
	xmx_addr6 nodeb up0 fd00:199::2
	xmx_addr6 ext eth0 fd00:199::100
	ip -n "${XMT_P}ext" -6 route add fd00:97::/64 via fd00:199::1
	# As in test_xdp_two_nodes.sh: native XDP on the port that receives node A's XDP_TX frames (the IPIP
	# packets and the ICMP replies), and full checksums in the client's frames, which leave node A as bytes.
	xmx_xdp_pass l2 a0
	xmx_tx_csum_off ext eth0

	# The backend: one dual-stack pod on node B echoing every byte (xm-stream), so clients send full segments.
	xmt_netns_add bs1
	ip -n "${XMT_P}nodeb" link add v-bs1 type veth peer name eth0 netns "${XMT_P}bs1"
	ip -n "${XMT_P}nodeb" link set v-bs1 master br0 up
	ip -n "${XMT_P}bs1" addr add 10.200.2.11/24 dev eth0
	ip -n "${XMT_P}bs1" addr add fd00:200:2::11/64 dev eth0 nodad
	ip -n "${XMT_P}bs1" link set eth0 up
	ip -n "${XMT_P}bs1" route add default via 10.200.2.1
	ip -n "${XMT_P}bs1" -6 route add default via fd00:200:2::1
	xmt_bg echo-bs1 bs1 plain "$XM_STREAM" serve --port "$XMT_TARGET"
	xmt_wait_for "$(xmt_bg_log echo-bs1)" 'ready' 5 "${XMT_BG[echo-bs1]}" ||
		xmt_fail "xm-stream in bs1 did not start: $(cat "$(xmt_bg_log echo-bs1)")"

	{
		xmx_yaml_ext_service web4 10.97.0.10 10.96.0.50
		xmx_yaml_slice web4 nodeb 10.200.2.11
		xmx_yaml_ext_service web6 fd00:97::10 fd00:96::50
		xmx_yaml_slice web6 nodeb fd00:200:2::11
		printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: nodea" "status:" "  addresses:" \
			"  - type: InternalIP" "    address: 10.199.0.1" "  - type: InternalIP" "    address: fd00:199::1"
		printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: nodeb" "status:" "  addresses:" \
			"  - type: InternalIP" "    address: 10.199.0.2" "  - type: InternalIP" "    address: fd00:199::2"
	} | xmt_config_write web.yaml
	xmx_agent a nodea nodea up0
	xmx_agent b nodeb nodeb up0
}
