#!/usr/bin/env bash
# An agent restart under tunnelled traffic (docs/mtls.md "Restart"), on node A (the client side: the outbound
# listener 10.199.0.1:15002 the capture sends pa's connections to) and then on node B (the server side: 15008
# on sa's IP, steered to the agent). sa is STRICT, so a connection that went around the tunnel is refused.
#   (a) one tunnelled connection does request/response (random sizes, every reply compared byte for byte)
#       across the SIGTERM and ends within the drain period: the stopping agent keeps splicing it;
#   (b) four clients open new tunnelled connections in a loop across the restart: none refused, reset or
#       corrupted (connects made while no agent runs wait in the listener's queue);
#   (c) the listening sockets went through the holder (<admin>.hbone) to the next agent, and the stopping
#       agent drained before its deadline; the holder's socket is gone afterwards.
# Then, with no agent coming back on node A, the holder turns the capture off and removes the steering 10 s
# after the agent exited.
# Topology as test_hbone_tunnel.sh:
#   nodea up0 10.199.0.1 ── pa 10.200.1.11        nodeb up0 10.199.0.2 ── sa 10.200.2.11 (xm-stream 9000)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls" "program_type cgroup_sock_addr" "program_type sock_ops"
XM_STREAM="$XMT_BUILD/tools/xm-stream"
[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"

SA=10.200.2.11
PA=10.200.1.11

xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmt_bg stream-sa sa plain "$XM_STREAM" serve --port 9000
xmt_wait_for "$(xmt_bg_log stream-sa)" 'ready' 5 || xmt_fail "xm-stream in sa did not start"
xmx_pod nodea pa "$PA" 10.200.1.1
{
	xmh_yaml_nodes_pods "$SA" "$PA"
	xmh_yaml_sa_mode STRICT
} | xmt_config_write mesh.yaml

xmh_agent_a 'hbone: capturing'
xmh_agent_b

# loop SECONDS (for xmh_bg_py): 4 threads open new connections to sa:9000 for SECONDS, each one exchange checked
# byte for byte; prints one "conn START_MS DURATION_MS" line per connection, then a summary; exits 1 on any error.
LOOP='
import os, random, socket, sys, threading, time
end = time.monotonic() + float(sys.argv[3])
lock = threading.Lock()
errors = []
lines = []
def worker():
    while time.monotonic() < end:
        t0 = time.time()
        try:
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
            s.settimeout(30)
            m = os.urandom(random.randint(1, 4096))
            err = echo_exact(s, m)
            if err:
                raise Exception(err)
            s.close()
        except Exception as e:
            with lock:
                errors.append("%.3f %r" % (t0, e))
            continue
        with lock:
            lines.append("conn %d %d" % (t0 * 1000, (time.time() - t0) * 1000))
        time.sleep(0.01)
ts = [threading.Thread(target=worker) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(lines))
print("loop conns=%d errors=%d %s" % (len(lines), len(errors), "; ".join(errors[:5])))
sys.exit(1 if errors else 0)
'
# restart NAME NODE INDEX: SIGTERM agent NAME (XMX_AGENTS[INDEX]), waits for it to exit (its drain: at most
# 10 s), starts it again; sets STOP_MS, EXIT_MS, READY_MS (epoch ms); the old log is agent-NAME-old.log.
restart() {
	local name=$1 node=$2 idx=$3 pid=${XMX_AGENTS[$3]}
	STOP_MS=$(date +%s%3N)
	xmh_stop_agent "$pid" "$name"
	EXIT_MS=$(date +%s%3N)
	# No agent runs now: the 15008 steering must still be there (a peer's connect waits in the held listener).
	ip -n "$XMT_P$node" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the steering rule went with agent $name"
	mv "$XMT_TMP/agent-$name.log" "$XMT_TMP/agent-$name-old.log"
	xmx_agent "$name" "$node" "$node" up0 --hbone
	READY_MS=$(date +%s%3N)
	XMX_AGENTS[idx]=${XMX_AGENTS[-1]}
	unset 'XMX_AGENTS[-1]'
}

# across NAME NODE INDEX: (a), (b) and (c) across a restart of agent NAME.
across() {
	local name=$1 node=$2 idx=$3 out during
	XMT_SUBTEST="restart of agent $name under tunnelled traffic"
	xmh_bg_py "rr-$name" "$XMH_RR_PY" "$SA" 9000 5
	xmh_bg_py "loop-$name" "$LOOP" "$SA" 9000 12
	sleep 1.5
	restart "$name" "$node" "$idx"
	wait "${XMT_BG[rr-$name]}" || xmt_fail "(a) the tunnelled connection broke across the restart of agent $name: $(tail -n 3 "$XMT_TMP/rr-$name.log")"
	wait "${XMT_BG[loop-$name]}" || xmt_fail "(b) new tunnelled connections failed across the restart of agent $name: $(tail -n 1 "$XMT_TMP/loop-$name.log")"
	# (b) the loop really connected while no agent served: from the SIGTERM until the next agent was ready.
	during=$(awk -v a="$STOP_MS" -v b="$READY_MS" '$1 == "conn" && $2 >= a && $2 <= b { n++ } END { print n + 0 }' "$XMT_TMP/loop-$name.log")
	[ "$during" -ge 3 ] || xmt_fail "(b) only $during connections were made during the restart of agent $name"
	# (a) the drain: the stopping agent spliced until the connection ended, well within its 10 s.
	grep -q 'hbone: drained in' "$XMT_TMP/agent-$name-old.log" ||
		xmt_fail "(a) agent $name did not drain: $(grep 'hbone' "$XMT_TMP/agent-$name-old.log" | tail -n 4)"
	# (c) the sockets went through the holder.
	grep -q 'hbone: 2 listening sockets held for the next agent' "$XMT_TMP/agent-$name-old.log" ||
		xmt_fail "(c) agent $name handed nothing over: $(grep 'hbone' "$XMT_TMP/agent-$name-old.log" | tail -n 4)"
	grep -q 'hbone: took over the 15008 listener, the IPv4 outbound listener' "$XMT_TMP/agent-$name.log" ||
		xmt_fail "(c) the new agent $name took nothing over: $(grep 'hbone' "$XMT_TMP/agent-$name.log" | head -n 4)"
	[ ! -e "$XMT_TMP/admin-$name.sock.hbone" ] || xmt_fail "(c) the holder's socket is still there after the handover"
	out="$(tail -n 1 "$XMT_TMP/rr-$name.log"); $(tail -n 1 "$XMT_TMP/loop-$name.log" | cut -d' ' -f1-3), $during during the restart; exit $((EXIT_MS - STOP_MS)) ms after SIGTERM, ready $((READY_MS - EXIT_MS)) ms later; $(grep -o 'drained in [0-9]* ms' "$XMT_TMP/agent-$name-old.log")"
	xmt_note "agent $name: $out"
	SUMMARY+="agent $name: $out. "
}

SUMMARY=""
across a nodea 0
across b nodeb 1

XMT_SUBTEST="no agent comes back: the holder turns the capture off, removes the steering"
xmh_stop_agent "${XMX_AGENTS[0]}" a
XMX_AGENTS=("${XMX_AGENTS[1]}")
[ "$(xmh_hbone_proxy_state)" = set ] || xmt_fail "the capture went off at once although a holder keeps the listener"
[ -S "$XMT_TMP/admin-a.sock.hbone" ] || xmt_fail "no holder socket at $XMT_TMP/admin-a.sock.hbone"
for ((i = 0; i < 150; i++)); do
	[ "$(xmh_hbone_proxy_state)" = clear ] && break
	sleep 0.1
done
[ "$(xmh_hbone_proxy_state)" = clear ] || xmt_fail "xm_hbone_proxy still set 15 s after agent a stopped with nobody taking over"
[ ! -e "$XMT_TMP/admin-a.sock.hbone" ] || xmt_fail "the holder left its socket behind"
! ip -n "${XMT_P}nodea" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the steering rule outlived agent a's holder"

xmt_pass "restart: $SUMMARY"
