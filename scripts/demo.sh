#!/usr/bin/env bash
# `make demo`: the main job on this machine. Builds a node namespace with three reviews pods and a client
# pod and an external host, starts the agent on examples/demo/*.yaml (XDP on the node's uplink), and shows
# 300 connections to the Service VIP spread over the pods with getpeername() answering the VIP, 300 from
# outside to the external VIP balanced by XDP, `xmesh status`, a pod dying and being ejected by the kernel
# and coming back, HTTP requests routed per request by the agent's L7 proxy (a header match and an 80/20 canary),
# and an excerpt of the metrics. Then three resilience scenes, each installing the Istio YAML of
# examples/demo/scenes/NAME/ into the agent's config directory (a copy of examples/demo): a retry hiding a pod
# that answers 503, a fault-injected 2 s delay, and a pod answering 500 ejected by outlierDetection (the kernel
# state the proxy, the socket LB and XDP read, one per service port across its ClusterIP and externalIP).
# Last, the mTLS scene (scripts/demo-mtls.sh, two nodes of its own): a cross-node call in mutual TLS with the
# SPIFFE identities, and a plaintext attempt refused under STRICT. Removes everything before it exits.
#
#   scripts/demo.sh BUILD_DIR [--keep]     --keep: leave it running and print commands to explore it
#   scripts/demo.sh [BUILD_DIR] --teardown remove a kept demo
#
# Fixed names (not per-PID as in the tests) so that --teardown finds a kept demo: namespaces xmdemo-*,
# cgroup /sys/fs/cgroup/unified/xmesh-demo, pins /sys/fs/bpf/xmesh-demo, state in /run/xmesh-demo.
# shellcheck disable=SC2119 # lib functions with optional arguments are called without
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=build keep_running=0 teardown=0
for a in "$@"; do
	case $a in
	--keep) keep_running=1 ;;
	--teardown) teardown=1 ;;
	-h | --help)
		sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) build=$a ;;
	esac
done

# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"
XMT_P=xmdemo-
XMT_NODE=xmdemo-node
XMT_CG="$XMT_CGROOT/xmesh-demo"
XMT_PIN="$XMT_BPFFS/xmesh-demo"
XMT_TMP=/run/xmesh-demo
XMT_CONF=/run/xmesh-demo/config # a copy of examples/demo/*.yaml: the scenes replace files in it
XMT_ADMIN="$XMT_TMP/admin.sock"
XMT_NODE_NAME=node1
state="$XMT_TMP/state"
xmt_log() { :; } # the narration below says what matters

# Removes a demo, this run's or a kept one: the processes recorded in the state file (only if they are still
# ours), the agent's programs and pins, the cgroup, the xmdemo-* namespaces, the state directory.
demo_teardown() {
	# shellcheck disable=SC2320 # the status the script exits with, as the trap starts
	local rc=$? pid ns
	XMT_PIDS=()
	if [ -r "$state" ]; then
		while read -r pid; do
			# A PID is reused after its process ended: stop it only if it is still a demo process.
			if grep -qa xmdemo- "/proc/$pid/cmdline" 2>/dev/null; then XMT_PIDS+=("$pid"); fi
		done <"$state"
	fi
	XMT_AGENT_PID=""
	XMT_NETNS=()
	while read -r ns _; do
		case $ns in xmdemo-*) XMT_NETNS+=("$ns") ;; esac
	done < <(ip netns list 2>/dev/null)
	XMT_CG_MADE=1
	[ -x "$XMESH" ] || XMESH="$root/build/xmesh"
	XMT_KEEP_LOGS=0
	xmt_teardown "$rc"
}

XMT_BUILD=$(cd "$build" 2>/dev/null && pwd) || XMT_BUILD="$root/build"
XMESH="$XMT_BUILD/xmesh"
XM_SERVER="$XMT_BUILD/tools/xm-server"
XM_CLIENT="$XMT_BUILD/tools/xm-client"
XM_HTTP="$XMT_BUILD/tools/xm-http"
XM_HTTP_LOAD="$XMT_BUILD/tools/xm-http-load"

if [ "$teardown" = 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "demo: --teardown needs root" >&2; exit 1; }
	echo "demo: removing the kept demo"
	trap demo_teardown EXIT
	exit 0
fi

# The demo is not a test: a machine that cannot run it is an error, with the reason.
xmt_skip() {
	echo "demo: cannot run: $*" >&2
	exit 1
}
xmt_require

if [ -e "$XMT_CG" ] || [ -e "$XMT_PIN" ] || ip netns list | grep '^xmdemo-' >/dev/null; then
	echo "demo: a previous demo is still there; removing it first"
	(demo_teardown) || true
fi
mkdir -p "$XMT_TMP" "$XMT_CONF"
cp "$root"/examples/demo/*.yaml "$XMT_CONF"/
: >"$state"
trap demo_teardown EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
if [ "$keep_running" = 1 ]; then
	XMT_BG_TIMEOUT=3600 # a kept demo still ends by itself, after an hour
fi
mkdir "$XMT_CG"

say() { printf '%s\n' "$*"; }
t0=$(date +%s%3N)

say "== xmesh demo: Service default/reviews 10.96.0.10:80 -> pods reviews-v1..v3 :8080 (ROUND_ROBIN)"
xmt_node_create
for v in 1 2 3; do
	xmt_pod_add "reviews-v$v" $((10 + v))
	xmt_server "reviews-v$v"
	xmt_http_server "reviews-v$v" "reviews-v$v" --port 9080
done
xmt_pod_add productpage 101
# North-south: an external host on the node's uplink (up0), pods answering it through the node.
xmt_netns_add ext
ip -n "$XMT_NODE" link add up0 type veth peer name eth0 netns "${XMT_P}ext"
ip -n "$XMT_NODE" addr add 10.199.0.1/24 dev up0
ip -n "$XMT_NODE" link set up0 up
ip -n "${XMT_P}ext" addr add 10.199.0.100/24 dev eth0
ip -n "${XMT_P}ext" link set eth0 up
ip -n "${XMT_P}ext" route add 10.97.0.0/16 via 10.199.0.1
xmt_nsrun node sysctl -qw net.ipv4.ip_forward=1 >/dev/null
for v in 1 2 3; do ip -n "${XMT_P}reviews-v$v" route add default via "$XMT_SUBNET.1"; done
say "   topology: node namespace $XMT_NODE (no route out), 4 pods on its bridge, cgroup $XMT_CG,"
say "   and an external host (10.199.0.100) on the node's uplink up0"

xmt_agent_start --iface up0 --access-log "$XMT_TMP/access.log" --access-log-format json
demo_save_state() { printf '%s\n' "${XMT_PIDS[@]}" "$XMT_AGENT_PID" >"$state"; }
demo_save_state
say "   agent: ready in the node namespace; config $XMT_CONF/*.yaml; pins $XMT_PIN"

out="$XMT_TMP/spread"
say ""
say "== productpage (10.200.1.101) opens 300 TCP connections to 10.96.0.10:80, one after another"
xmt_client productpage "$out" spread --addr 10.96.0.10:80 -n 300 || true
ok=$(xmt_field "$out" ok)
[ -n "$ok" ] || xmt_fail "the client printed nothing: $(cat "$out.err")"
sort -k2 "$out" | awk '$1 == "id" { printf "   %-11s %4d  (%2d%%)  ", $2, $3, $3 * 100 / 300; for (i = 0; i < $3 / 5; i++) printf "#"; print "" }'
errors=$(xmt_field "$out" errors)
mism=$(xmt_field "$out" getpeername_mismatch)
say "   $ok of 300 connected ($errors errors), slowest connect $(xmt_field "$out" max_connect_ms) ms"
say "   getpeername() said 10.96.0.10:80 for $((ok - mism)) of $ok: the app sees the VIP; the kernel's connect"
say "   hook picked a pod and rewrote the destination before the SYN, so no packet was NATed."

say ""
say "== the external host opens 300 TCP connections to 10.97.0.10:80 (an externalIP), through XDP on up0"
ext="$XMT_TMP/ext"
xmt_nsrun ext "$XM_CLIENT" spread --addr 10.97.0.10:80 -n 300 >"$ext" 2>"$ext.err" || true
sort -k2 "$ext" | awk '$1 == "id" { printf "   %-11s %4d  (%2d%%)  ", $2, $3, $3 * 100 / 300; for (i = 0; i < $3 / 5; i++) printf "#"; print "" }'
xok=$(xmt_field "$ext" ok)
say "   ${xok:-0} of 300 connected ($(xmt_field "$ext" errors) errors); XDP picked a pod by Maglev, pinned the flow in"
say "   its connection table and DNATed in the driver; TC on up0 rewrote every reply back to 10.97.0.10:80."

say ""
say "== xmesh status"
xmt_xmesh status --admin "$XMT_ADMIN" 2>&1 | sed 's/^/   /' || say "   (xmesh status failed)"

rc=0
say ""
say "== reviews-v3 dies; outlier detection (consecutive5xxErrors 3) runs in the kernel, in sockops"
xmt_bg_stop srv-reviews-v3 || true
dead="$XMT_TMP/dead"
xmt_client productpage "$dead" spread --addr 10.96.0.10:80 -n 30 || true
failed=$(xmt_field "$dead" errors)
say "   30 connects while it is dead: $failed refused, then the kernel ejected it ($(grep -o 'outlier: ejected.*' "$XMT_AGENT_LOG" | head -n 1))"
xmt_client productpage "$dead" spread --addr 10.96.0.10:80 -n 100 || true
after=$(xmt_field "$dead" errors)
say "   next 100 connects: $after failed; spread $(xmt_ids "$dead")"
[ "${failed:-9}" -le 3 ] && [ "${after:-1}" = 0 ] || rc=1
xmt_server reviews-v3
sleep 3.2
xmt_client productpage "$dead" spread --addr 10.96.0.10:80 -n 90 || true
say "   reviews-v3 restarted; after its 3 s ejection: spread $(xmt_ids "$dead") ($(xmt_field "$dead" errors) errors)"
[ "$(xmt_id_count "$dead" reviews-v3)" -gt 0 ] || rc=1

say ""
say "== L7: reviews' port 9080 is HTTP; the kernel hands productpage's connections to the agent's proxy,"
say "   which routes every request by virtualservice.yaml (one keep-alive connection each run)"
l7="$XMT_TMP/l7"
xmt_in_pod productpage "$XM_HTTP_LOAD" --addr 10.96.0.10:9080 --conns 1 --requests 100 --header 'end-user: jason' \
	>"$l7.jason" 2>&1 || true
say "   100 requests with 'end-user: jason' (route jason-to-v2): $(xmt_ids "$l7.jason") ($(xmt_field "$l7.jason" failed) failed)"
xmt_in_pod productpage "$XM_HTTP_LOAD" --addr 10.96.0.10:9080 --conns 1 --requests 500 >"$l7.canary" 2>&1 || true
say "   500 requests from anyone else (route canary, v1 80% / v3 20%):"
sort -k2 "$l7.canary" | awk '$1 == "id" { printf "   %-11s %4d  (%2d%%)  ", $2, $3, $3 * 100 / 500; for (i = 0; i < $3 / 10; i++) printf "#"; print "" }'
[ "$(xmt_id_count "$l7.jason" reviews-v2)" = 100 ] || rc=1
v1=$(xmt_id_count "$l7.canary" reviews-v1) v3=$(xmt_id_count "$l7.canary" reviews-v3)
{ [ $((v1 + v3)) = 500 ] && [ "$v3" -ge 50 ] && [ "$v3" -le 150 ]; } || rc=1
say "   xmesh routes:"
xmt_xmesh routes --admin "$XMT_ADMIN" 2>&1 | sed 's/^/     /' | head -n 20 || say "   (xmesh routes failed)"

say ""
say "== metrics (curl http://127.0.0.1:15090/metrics in the node namespace), an excerpt"
nsenter --net="/run/netns/$XMT_NODE" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics >"$XMT_TMP/metrics" || true
grep -E '^(istio_requests_total|istio_tcp_connections_opened_total|xmesh_endpoint_ejections_total|xmesh_sock_lb_connects_total|xmesh_xdp_packets_total\{action="(dnat_local|tc_rev_nat)"|xmesh_conntrack_entries)' \
	"$XMT_TMP/metrics" | sed -E 's/(source_principal|destination_principal|source_app|request_protocol|connection_security_policy|response_flags|destination_service_name|destination_service_namespace|source_workload_namespace|destination_workload_namespace)="[^"]*",?//g; s/,}/}/' |
	head -n 9 | sed 's/^/   /'
[ -s "$XMT_TMP/metrics" ] || { say "   (no metrics answer)"; rc=1; }

# ---------------------------------------------------------------------------------------------------------
# Resilience scenes (issue 14): each installs the Istio YAML of examples/demo/scenes/NAME/ into the agent's
# config directory, changes a pod's HTTP server, and shows what real traffic gets and what the metrics say.

# demo_scene NAME: each file of examples/demo/scenes/NAME replaces the config copy's file of the same name (a
# rename, so the agent never reads half a file); returns once the agent applied it and no reload followed for
# 300 ms (two files may land in two debounce windows). A config the agent did not apply ends the demo.
demo_scene() {
	local f n0 n i
	n0=$(grep -c 'config applied' "$XMT_AGENT_LOG" || true)
	for f in "$root/examples/demo/scenes/$1"/*.yaml; do
		cp "$f" "$XMT_TMP/.scene.yaml"
		mv -f "$XMT_TMP/.scene.yaml" "$XMT_CONF/${f##*/}"
	done
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c 'config applied' "$XMT_AGENT_LOG" || true)" -gt "$n0" ] && break
		sleep 0.05
	done
	[ "$i" -lt 100 ] || xmt_fail "the agent did not apply scenes/$1: $(tail -n 3 "$XMT_AGENT_LOG" | paste -sd '|')"
	for ((i = 0; i < 20; i++)); do
		n=$(grep -c 'config applied' "$XMT_AGENT_LOG" || true)
		sleep 0.3
		[ "$(grep -c 'config applied' "$XMT_AGENT_LOG" || true)" = "$n" ] && break
	done
}

# demo_http_restart POD [xm-http options]: replaces the pod's HTTP server on :9080; served_before is how many
# requests the old one answered (its exit line).
demo_http_restart() {
	local pod=$1 log
	shift
	log=$(xmt_bg_log "http-$pod")
	xmt_bg_stop "http-$pod" >/dev/null 2>&1 || true
	served_before=$(xmt_field "$log" requests)
	xmt_http_server "$pod" "$pod" --port 9080 "$@"
	demo_save_state
}

# demo_load FILE N [ARGS]: N requests from productpage to reviews:9080 on one keep-alive connection
demo_load() {
	local out=$1 n=$2
	shift 2
	xmt_in_pod productpage "$XM_HTTP_LOAD" --addr 10.96.0.10:9080 --conns 1 --requests "$n" "$@" >"$out" 2>&1 || true
}
demo_statuses() { awk '$1 == "status" { printf "%s%s=%s", sep, $2, $3; sep = " " }' "$1"; }
demo_status_count() { awk -v s="$2" '$1 == "status" && $2 == s { n = $3 } END { print n + 0 }' "$1"; }
demo_metrics() {
	nsenter --net="/run/netns/$XMT_NODE" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics >"$XMT_TMP/metrics" || true
}
# demo_requests_total: istio_requests_total of reviews:9080 as "code flags value" lines
demo_requests_total() {
	awk '/^istio_requests_total\{/ && /destination_service="reviews.default.svc.cluster.local"/ {
		c = $0; sub(/.*response_code="/, "", c); sub(/".*/, "", c)
		f = $0; sub(/.*response_flags="/, "", f); sub(/".*/, "", f)
		n[c " " f] += $NF } END { for (k in n) print k, n[k] }' "$XMT_TMP/metrics" | sort
}
access_lines() { wc -l <"$XMT_TMP/access.log" 2>/dev/null || echo 0; }

say ""
say "== a retry hides a failing pod: reviews-v3 now answers every request 503 (xm-http --fail-status 503)"
demo_scene retries
demo_http_restart reviews-v3 --fail-status 503
say "   scenes/retries: one route to all three pods with retries {attempts: 3, perTryTimeout: 2s,"
say "   retryOn: 5xx,connect-failure}, and a DestinationRule without outlierDetection (only the retries help)"
metrics_before=$(demo_metrics && demo_requests_total)
al0=$(access_lines)
ra="$XMT_TMP/retries"
demo_load "$ra" 90
demo_http_restart reviews-v3 # its count of 503s, and a healthy v3 for the next scene
v3_503=${served_before:-0}
say "   90 requests from productpage: status $(demo_statuses "$ra"); answered by $(xmt_ids "$ra")"
say "   reviews-v3 was tried $v3_503 times (its own count of requests, every one a 503)"
sleep 0.2 # the access log's writer thread drains within 50 ms
demo_metrics
say "   istio_requests_total for reviews, by response_code and response_flags (before -> after):"
demo_requests_total | awk -v before="$metrics_before" 'BEGIN { n = split(before, l, "\n"); for (i = 1; i <= n; i++) {
		split(l[i], f, " "); b[f[1] " " f[2]] = f[3] } }
	{ printf "     response_code=%s response_flags=%s  %d -> %d\n", $1, $2, b[$1 " " $2], $3 }'
{ grep -iE '^(xmesh|envoy)[a-z_]*retr[a-z_]*(\{|[[:space:]])' "$XMT_TMP/metrics" || true; } | awk '$NF != 0' |
	head -n 4 | sed 's/^/     /'
say "   access log ($XMT_TMP/access.log), one line per request: status, upstream_host, response_flags, and the"
say "   attempt count where the line has one:"
tail -n +"$((al0 + 1))" "$XMT_TMP/access.log" | awk '{
		st = $0; sub(/.*"status":/, "", st); sub(/[,}].*/, "", st)
		up = $0; sub(/.*"upstream_host":/, "", up); sub(/[,}].*/, "", up); gsub(/"/, "", up)
		fl = $0; sub(/.*"response_flags":"/, "", fl); sub(/".*/, "", fl)
		at = ""; if (match($0, /"[a-z_]*attempt[a-z_]*":[0-9]+/)) at = " " substr($0, RSTART, RLENGTH)
		n[st " " up " " fl at]++ }
	END { for (k in n) printf "     %3d x %s\n", n[k], k }' | sort -k3
if grep -q 'retries is not supported' "$XMT_AGENT_LOG"; then
	say "   PENDING: this agent ignores VirtualService retries (its log: $(grep -m1 -o 'spec.http\[0\].retries is not supported[^"]*' "$XMT_AGENT_LOG"));"
	say "   the 503s above reached productpage. The scene is checked once retries are built (#14)."
elif [ "$(demo_status_count "$ra" 200)" != 90 ] || [ "$(xmt_id_count "$ra" reviews-v3)" != 0 ] || [ "$v3_503" -lt 1 ]; then
	rc=1
	say "   FAILED: expected 90 answers 200 from v1/v2 only, after at least one 503 from reviews-v3"
fi

say ""
say "== a fault-injected delay: requests with 'x-chaos: delay' wait 2 s in the proxy (fault.delay, flag DI)"
demo_scene fault-delay
say "   scenes/fault-delay: route chaos-delay (header x-chaos: delay) with fault {delay: {fixedDelay: 2s,"
say "   percentage: {value: 100}}}, then a plain route to all pods"
fb="$XMT_TMP/fault"
demo_metrics
di0=$(demo_requests_total | awk '$2 ~ /DI/ { n += $3 } END { print n + 0 }')
demo_load "$fb.plain" 20
t1=$(date +%s%3N)
demo_load "$fb.delay" 2 --header 'x-chaos: delay'
t2=$(date +%s%3N)
say "   20 requests without the header: status $(demo_statuses "$fb.plain"), slowest $(xmt_field "$fb.plain" max_ms) ms"
say "   2 requests with it: status $(demo_statuses "$fb.delay"), slowest $(xmt_field "$fb.delay" max_ms) ms, $((t2 - t1)) ms for both"
demo_metrics
di1=$(demo_requests_total | awk '$2 ~ /DI/ { n += $3 } END { print n + 0 }')
say "   istio_requests_total with response_flags DI: $di0 -> $di1"
delay_ms=$(xmt_field "$fb.delay" max_ms) plain_ms=$(xmt_field "$fb.plain" max_ms)
if [ "$(demo_status_count "$fb.delay" 200)" != 2 ] || [ "${delay_ms:-0}" -lt 1900 ] || [ "${delay_ms:-0}" -gt 3500 ] ||
	[ "$(demo_status_count "$fb.plain" 200)" != 20 ] || [ "${plain_ms:-9999}" -gt 1000 ] || [ $((di1 - di0)) != 2 ]; then
	rc=1
	say "   FAILED: expected 2 delayed answers 200 after about 2 s counted with DI, and 20 fast ones"
fi

say ""
say "== a pod answering 500 is ejected: reviews-v3 now answers every request 500 (xm-http --fail-status 500)"
demo_scene outlier-5xx
demo_http_restart reviews-v3 --fail-status 500
say "   scenes/outlier-5xx: outlierDetection {consecutive5xxErrors: 3, baseEjectionTime: 30s}; no retries block,"
say "   and Istio's default retry policy does not retry a 500 (Istio no longer lists 503 there: only connect failures, refused streams and two gRPC statuses)"
oc="$XMT_TMP/outlier"
demo_load "$oc.1" 60
n500=$(demo_status_count "$oc.1" 500)
say "   60 requests: status $(demo_statuses "$oc.1"); the proxy reported the statuses to the kernel (batched)"
say "   and the third consecutive 500 ejected it: $(grep -o 'outlier: ejected.*' "$XMT_AGENT_LOG" | tail -n 1)"
demo_load "$oc.2" 60
say "   next 60 requests through the L7 proxy: status $(demo_statuses "$oc.2"); answered by $(xmt_ids "$oc.2")"
say "   xmesh status: the kernel's outlier state, one per service port: its ClusterIP 10.96.0.10:9080 (the proxy and"
say "   the socket LB) and its externalIP 10.97.0.10:9080 (XDP) read the same:"
xmt_xmesh status --admin "$XMT_ADMIN" 2>&1 | grep -E '9080|EJECT' | head -n 8 | sed 's/^/     /' || true
ejected=$({ xmt_xmesh status --json --admin "$XMT_ADMIN" 2>/dev/null || true; } | { grep -o '"ejected":true' || true; } | wc -l)
oe="$XMT_TMP/outlier-ext"
xmt_nsrun ext "$XM_HTTP_LOAD" --addr 10.97.0.10:9080 --conns 30 --requests 1 >"$oe" 2>&1 || true
say "   the external host's 30 connections to 10.97.0.10:9080, balanced by XDP on up0 (no proxy): $(xmt_ids "$oe");"
say "   the externalIP shares the port's outlier state, so XDP skips the pod the proxy ejected, as Envoy would"
ot="$XMT_TMP/outlier-tcp"
xmt_client productpage "$ot" spread --addr 10.96.0.10:80 -n 30 || true
say "   port 80 (plain TCP, another service port, v3's TCP server is fine): $(xmt_ids "$ot");"
say "   outlier state is per service port, as Envoy's is per cluster"
if [ "$n500" -lt 1 ] || [ "$n500" -gt 3 ] || [ "$(demo_status_count "$oc.2" 200)" != 60 ] ||
	[ "$(xmt_id_count "$oc.2" reviews-v3)" != 0 ] || [ "$ejected" -lt 1 ] || [ "$(xmt_field "$oe" ok)" != 30 ] ||
	[ "$(xmt_id_count "$oe" reviews-v3)" != 0 ]; then
	rc=1
	say "   FAILED: expected 1-3 answers 500, then none from reviews-v3 through the proxy or XDP, and its ejection"
fi

# The mTLS scene needs two nodes: a topology of its own, removed when it ends.
if [ "$keep_running" = 0 ]; then
	"$root/scripts/demo-mtls.sh" "$XMT_BUILD" || rc=1
fi

say ""
if [ "$errors" != 0 ] || [ "$mism" != 0 ] || [ "$ok" != 300 ] || [ "${xok:-0}" != 300 ]; then
	rc=1
	say "== FAILED: $errors connects failed, $mism getpeername mismatches; first client errors:"
	head -n 3 "$out.err" | sed 's/^/   /'
	say "   agent log: $(tail -n 3 "$XMT_AGENT_LOG" | paste -sd '|')"
fi
if [ "$keep_running" = 1 ]; then
	cat <<EOT
== kept running (for at most an hour). Explore:
   $XMESH status --admin $XMT_ADMIN
   $XMESH maps --bpffs $XMT_PIN
   bpftool map dump pinned $XMT_PIN/xm_backends
   bpftool cgroup tree $XMT_CG
   nsenter --net=/run/netns/xmdemo-productpage sh -c 'echo \$\$ >$XMT_CG/cgroup.procs && exec $XM_CLIENT spread --addr 10.96.0.10:80 -n 30'
   edit $XMT_CONF/*.yaml and run the client again: the agent re-applies on change
   agent log: $XMT_AGENT_LOG
Tear down:
   $root/scripts/demo.sh $XMT_BUILD --teardown
EOT
	trap - EXIT INT TERM
	exit "$rc"
fi
say "== done in $(awk -v ms=$(($(date +%s%3N) - t0)) 'BEGIN { printf "%.1f", ms / 1000 }') s; removing the demo (scripts/demo.sh $build --keep leaves it running)"
exit "$rc"
