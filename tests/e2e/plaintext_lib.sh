# shellcheck shell=bash
# Plaintext to node B's pods as the kernel judges it (bpf/peer_auth.bpf.c): the set-up and probes shared by
# test_authz_plaintext.sh, test_authz_plaintext_close.sh and test_peer_auth_strict.sh, so that they build the
# same topology and judge refusals and acceptances the same way. Sourced after lib.sh, xdp_lib.sh
# and xmx_init.

# xmp_two_nodes_ext [pods-on-a]: xmx_two_nodes (xmx_two_nodes_pods with pods-on-a) with the external host
# routing node B's pod subnet through node B, its frames crossing a "wire" (full checksums, not the veths'
# CHECKSUM_PARTIAL) so the reset path sees real SYNs.
xmp_two_nodes_ext() {
	if [ "${1:-}" = pods-on-a ]; then xmx_two_nodes_pods; else xmx_two_nodes; fi
	ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
	xmx_tx_csum_off ext eth0
}

# xmp_nodeb_pods NAME=IP...: pods on node B's bridge (each with xm-server on 8080).
xmp_nodeb_pods() {
	local p
	for p in "$@"; do xmx_pod nodeb "${p%%=*}" "${p#*=}" 10.200.2.1; done
}

# xmp_policy NAME APP ACTION SOURCE [PORT]: an AuthorizationPolicy of namespace default on pods app=APP with
# one rule: from SOURCE (a source line such as 'principals: [...]'), to PORT when given.
xmp_policy() {
	printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: AuthorizationPolicy" "metadata:" \
		"  name: $1" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: $2" \
		"  action: $3" "  rules:" "  - from:" "    - source:" "        $4"
	[ -z "${5:-}" ] || printf '%s\n' "    to:" "    - operation:" "        ports: [\"$5\"]"
}

# xmp_refused NS ADDR:PORT: one plaintext connect from NS is refused by a reset (ECONNREFUSED, not a timeout).
xmp_refused() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" refuse --addr "$2" --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2 was not refused: $out"
	xmt_log "$1 -> $2: $out"
}

# xmp_accepted NS ADDR:PORT: three plaintext connections from NS reach the server.
xmp_accepted() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" spread --addr "$2" -n 3 --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2 was not accepted: $out"
}

# xmp_wait_ext ADDR:PORT refused|accepted: polls the external host's connect every 50 ms until the kernel
# answers so (a policy change applied), failing after 3 s; prints the milliseconds it took.
xmp_wait_ext() {
	local start now out rc
	start=$(date +%s%3N)
	while :; do
		rc=0
		out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "$1" --timeout-ms 500 2>&1) || rc=$?
		now=$(date +%s%3N)
		if { [ "$2" = refused ] && [ "$rc" = 0 ]; } || { [ "$2" = accepted ] && [[ "$out" == *result=connected* ]]; }; then
			echo $((now - start))
			return 0
		fi
		[ $((now - start)) -lt 3000 ] || xmt_fail "$1 still not $2 after $((now - start)) ms: $out"
		sleep 0.05
	done
}
