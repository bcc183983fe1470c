#!/usr/bin/env bash
# consistentHash {useSourceIp: true} (Maglev) keeps a client on one backend: 100 connects from one client pod
# all land on one backend, for each of two client pods. A socket bound to a source address is identified by
# that address: each of 8 source addresses stays on one backend, and together they use more than one
# (all 8 on one backend of 3 by chance: 3 * (1/3)^8 = 0.05%). Then the same with Service sessionAffinity:
# ClientIP and no DestinationRule.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 2
srcs=()
for i in $(seq 150 157); do
	xmt_pod_add_addr c1 "$XMT_SUBNET.$i"
	srcs+=("$XMT_SUBNET.$i")
done
xmt_config_std --lb MAGLEV b1 b2 b3
xmt_agent_start

out="$XMT_TMP/out"
# one_backend FILE N: all N connects succeeded, with the VIP as peer, on a single backend; sets ONE to it.
# (A variable, not output: xmt_fail must run in this shell, not in a command substitution.)
ONE=""
one_backend() {
	local ids
	if [ "$(xmt_field "$1" ok)" != "$2" ] || [ "$(xmt_field "$1" getpeername_mismatch)" != 0 ]; then
		xmt_fail "connects failed: $(tail -n 1 "$1") $(head -n 2 "$1.err" | tr '\n' ' ')"
	fi
	ids=$(awk '$1 == "id"' "$1" | wc -l)
	[ "$ids" = 1 ] || xmt_fail "one client reached $ids backends: $(xmt_ids "$1"), expected one"
	ONE=$(awk '$1 == "id" { print $2 }' "$1")
}

notes=()
for mode in "DestinationRule consistentHash" "sessionAffinity ClientIP"; do
	if [ "$mode" = "sessionAffinity ClientIP" ]; then
		xmt_config_std --affinity ClientIP b1 b2 b3
		xmt_settle
	fi
	XMT_SUBTEST="$mode, client pods"
	per_pod=""
	for pod in c1 c2; do
		xmt_client "$pod" "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 100 || true
		one_backend "$out" 100
		per_pod+="$pod->$ONE "
	done
	XMT_SUBTEST="$mode, bound source addresses"
	used=()
	for s in "${srcs[@]}"; do
		xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" --bind "$s" -n 20 || true
		one_backend "$out" 20
		used+=("$ONE")
	done
	distinct=$(printf '%s\n' "${used[@]}" | sort -u | wc -l)
	[ "$distinct" -ge 2 ] || xmt_fail "8 source addresses all landed on ${used[0]}: the source is not hashed"
	notes+=("$mode: ${per_pod}sources->$(printf '%s\n' "${used[@]}" | sort | uniq -c | awk '{ printf "%s%s=%s", s, $2, $1; s = "," }')")
done
XMT_SUBTEST=""
for n in "${notes[@]}"; do xmt_note "$n"; done
xmt_pass "consistent hashing keeps each client on one backend"
