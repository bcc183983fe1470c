#!/usr/bin/env bash
# The pod <-> proxy hop on the sockmap: the agent makes the proxy's listeners in a cgroup of its own next to the
# served one (<cgroup>-l7-proxy) with sockmap's sockops attached there, so a captured connection's two ends
# join the sockhash at setup. A 10 MiB download and a 10 MiB upload through the proxy stay byte-exact while the
# redirected-bytes counter moves by the payload (and at most a few KiB of heads) and the client pod's veth
# carries almost nothing; with the switch off the same transfer takes the veth and redirects nothing; after a
# restart the handed-over listeners keep their cgroup; cleanup and --detach-on-exit remove the cgroup.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/sockmap_lib.sh
. "$(dirname "$0")/sockmap_lib.sh"
xms_init "$@"
for c in curl python3 sha256sum bpftool; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_node_create
xmt_pod_add b1 11
xmt_pod_add c1 101
xmt_http_server b1
t="$XMT_TMP"
vip="http://$XMT_VIP:$XMT_PORT"
pcg="$XMT_CG-l7-proxy"
n=$((10 * 1024 * 1024))
heads=4096 # request and response heads redirected besides the payload, generously
{
	# c1 is a Pod on this node (a local peer for the proxy's socket); the Node's InternalIP is the client's peer.
	xmt_yaml_pod c1 app=c1
	xmt_yaml_node
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip b1)"
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2
curl_c1() { xmt_in_pod c1 curl -sS --max-time 30 "$@"; }

# download: 10 MiB from b1 through the proxy (Content-Length framing), checked byte for byte.
download() {
	curl_c1 -o "$t/dl" -H 'Host: reviews' "$vip/bytes/$n"
	[ "$(sha256sum <"$t/dl" | cut -d' ' -f1)" = "$want_dl" ] ||
		xmt_fail "10 MiB download differs ($(stat -c %s "$t/dl") bytes)"
}
upload() {
	curl_c1 -H 'Host: reviews' -T "$t/up" -o "$t/up.json" "$vip/upload"
	python3 - "$t/up.json" "$want_up" "$n" <<'PY' || xmt_fail "upload: $(cat "$t/up.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["body_sha256"] == sys.argv[2] and e["body_len"] == int(sys.argv[3]), e
PY
}
want_dl=$(python3 -c "import hashlib,sys; n=int(sys.argv[1]); h=hashlib.sha256()
for k in range(0, n // 16 + 1): h.update(b'%015x\n' % k if (k + 1) * 16 <= n else (b'%015x\n' % k)[:n - k * 16])
print(h.hexdigest())" "$n")
head -c "$n" /dev/urandom >"$t/up"
want_up=$(sha256sum <"$t/up" | cut -d' ' -f1)

# redirected WHAT: runs WHAT (download|upload); checks that the payload went over the sockmap, not the veth.
redirected() {
	local r0 v0 r1 v1 dr dv
	r0=$(xms_stat redirected_bytes)
	v0=$(xms_veth_bytes c1)
	"$1"
	r1=$(xms_stat redirected_bytes)
	v1=$(xms_veth_bytes c1)
	dr=$((r1 - r0)) dv=$((v1 - v0))
	((dr >= n && dr <= n + heads)) || xmt_fail "$1: $dr bytes redirected for a $n-byte body (want $n..$((n + heads)))"
	((dv < 512 * 1024)) || xmt_fail "$1: c1's veth carried $dv bytes: the hop took TCP/IP"
	xmt_note "$1: redirected $dr B, c1's veth $dv B"
}

XMT_SUBTEST="the proxy cgroup"
[ -d "$pcg" ] || xmt_fail "no proxy cgroup $pcg"
[ -e "$XMT_PIN/links/xm_sockmap_ops_l7proxy" ] || xmt_fail "no pinned link xm_sockmap_ops_l7proxy"
bpftool cgroup show "$pcg" | grep sock_ops >/dev/null || xmt_fail "no sockops on $pcg: $(bpftool cgroup show "$pcg")"
grep -q "l7: listeners in cgroup $pcg" "$XMT_AGENT_LOG" || xmt_fail "listeners not in $pcg: $(grep l7 "$XMT_AGENT_LOG")"
[ ! -s "$pcg/cgroup.procs" ] || xmt_fail "processes in the proxy cgroup: $(cat "$pcg/cgroup.procs")"

XMT_SUBTEST="10 MiB download over the sockmap"
redirected download
XMT_SUBTEST="10 MiB upload over the sockmap"
redirected upload

XMT_SUBTEST="switch off: the hop takes TCP/IP"
xms_admin sockmap off | grep '^ok' >/dev/null || xmt_fail "sockmap off refused"
r0=$(xms_stat redirected_bytes)
v0=$(xms_veth_bytes c1)
download
upload
[ "$(xms_stat redirected_bytes)" = "$r0" ] || xmt_fail "switched off, yet $(($(xms_stat redirected_bytes) - r0)) bytes redirected"
(($(xms_veth_bytes c1) - v0 >= 2 * n)) || xmt_fail "switched off, yet c1's veth carried only $(($(xms_veth_bytes c1) - v0)) bytes"
xms_admin sockmap on | grep '^ok' >/dev/null || xmt_fail "sockmap on refused"

XMT_SUBTEST="restart: the handed-over listeners keep their cgroup"
xmt_agent_stop
xmt_agent_start --proxy-workers 2
grep -q 'took over [1-9][0-9]* listening sockets' "$XMT_AGENT_LOG" ||
	xmt_fail "the new agent took no listening socket over: $(grep 'l7' "$XMT_AGENT_LOG" | head -n 5)"
redirected download
redirected upload

XMT_SUBTEST="--detach-on-exit removes the proxy cgroup"
xmt_agent_stop
xmt_agent_start --proxy-workers 2 --detach-on-exit
[ -d "$pcg" ] || xmt_fail "no proxy cgroup $pcg after the second restart"
xmt_agent_stop || xmt_fail "the agent exited non-zero with --detach-on-exit"
[ ! -d "$pcg" ] || xmt_fail "--detach-on-exit left $pcg"
[ ! -e "$XMT_PIN/links/xm_sockmap_ops_l7proxy" ] || xmt_fail "--detach-on-exit left the link pin"

XMT_SUBTEST="xmesh cleanup removes the proxy cgroup"
xmt_agent_start --proxy-workers 2
[ -d "$pcg" ] || xmt_fail "no proxy cgroup $pcg"
xmt_agent_stop
xmt_xmesh cleanup --bpffs "$XMT_PIN" --cgroup "$XMT_CG" >"$t/cleanup" 2>&1 || xmt_fail "cleanup: $(cat "$t/cleanup")"
[ ! -d "$pcg" ] || xmt_fail "xmesh cleanup left $pcg"
[ ! -e "$XMT_PIN/links/xm_sockmap_ops_l7proxy" ] || xmt_fail "xmesh cleanup left the link pin"
XMT_SUBTEST=""
xmt_pass "pod <-> proxy hop on the sockmap both ways (10 MiB each, byte-exact), TCP when switched off, across a restart; cleanup removes the cgroup"
